"""A real allocation failure in the worker is reported as "Out of memory", naming the settings to lower.

The address space of the worker's stage process (the child that runs the GRPO stage) is capped
(RLIMIT_AS, set on the live process with prlimit) once the model is loaded, a little above what it holds then; the spec's batch and completion length
need far more for the first step's logits (16 x ~330 tokens x 49k vocabulary x 4 bytes ~ 1 GB).
"""

from __future__ import annotations

import psutil

from tests.faults.conftest import fault_spec, first_line, stage_process, start, wait_for

HEADROOM = 384 << 20  # bytes of address space over what the loaded worker maps: enough to build the trainer


def test_allocation_failure_is_reported_as_out_of_memory_with_the_settings_to_lower(store):
    spec = fault_spec(**{"grpo.batch_size": 16, "grpo.num_generations": 4, "grpo.max_completion_length": 256,
                         "grpo.max_steps": 1, "rewards.custom_file": ""})
    run_id, run_dir, proc = start(store, spec)
    # the stage logs this line after the model, tokenizer and data are loaded, before the trainer is built
    wait_for(lambda: any(e["message"].startswith("grpo: ") and "prompts" in e["message"]
                         for e in store.events_since(run_id)), what="the model to load", poll=0.05)
    stage = stage_process(proc.pid)  # the stage's own process holds the model and allocates
    limit = stage.memory_info().vms + HEADROOM
    stage.rlimit(psutil.RLIMIT_AS, (limit, psutil.RLIM_INFINITY))
    assert proc.wait(timeout=300) == 1, (run_dir / "worker.log").read_text()[-3000:]
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    message = first_line(run["error_message"])
    assert message.startswith("Out of memory: "), message
    for setting in ("grpo.batch_size", "grpo.num_generations", "grpo.max_completion_length"):
        assert setting in message, message
    assert not store.metrics_since(run_id)
