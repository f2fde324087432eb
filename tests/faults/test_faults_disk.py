"""A full disk while the worker writes a checkpoint, and while a run is exported.

The run folder lives on a 64 MB tmpfs (tests/faults/conftest.py: small_fs), filled up once
checkpoint 1 is written; the run store stays on the ordinary disk, so the error can be recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.faults.conftest import (
    ROOT,
    checkpoint_steps,
    fault_spec,
    first_line,
    start,
    wait_for,
    worker_env,
)


def _export(store, run_id: int, out) -> subprocess.CompletedProcess:
    """The GUI's export command: `python -m engine.export RUN_ID --out DIR --checkpoint 1 --store DB`."""
    argv = [sys.executable, "-m", "engine.export", str(run_id), "--out", str(out), "--checkpoint", "1",
            "--store", str(store.path)]
    return subprocess.run(argv, cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=300)


def test_disk_full_during_a_checkpoint_and_during_export(store, small_fs):
    mount, fill = small_fs
    spec = fault_spec(**{"grpo.max_steps": 3, "grpo.save_steps": 1, "output_dir": str(mount / "runs")})
    run_id, run_dir, proc = start(store, spec)
    ckpts = run_dir / "checkpoints" / "grpo"

    # ---- checkpoint 1 written, then the disk fills up: checkpoint 2 cannot be written ---------------
    wait_for(lambda: 1 in checkpoint_steps(store, run_id), what="checkpoint 1", poll=0.05)
    fill(leave_bytes=16 << 10)  # 16 KB: less than checkpoint 2 needs (its adapter weights alone are ~30 KB)
    assert proc.wait(timeout=300) == 1
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    message = first_line(run["error_message"])
    assert message.startswith("No space left on device while writing "), message
    assert str(ckpts / "checkpoint-2") in message, message  # names where it was writing
    assert "free disk space or choose another output folder" in message
    assert store.last_metrics(run_id)["step"] == 2  # step 2 trained and logged; only its checkpoint failed
    assert checkpoint_steps(store, run_id) == {1}
    assert store.integrity_check() == "ok"

    # ---- the previous checkpoint is intact: each of its files loads ---------------------------------
    import torch
    from safetensors.torch import load_file

    good = ckpts / "checkpoint-1"
    assert load_file(str(good / "adapter_model.safetensors"))
    assert torch.load(good / "optimizer.pt", weights_only=False)["state"]
    assert json.loads((good / "trainer_state.json").read_text())["global_step"] == 1
    assert json.loads((good / "tokenizer.json").read_text(encoding="utf-8"))["model"]

    # ---- export while the disk is full: a clear error and no partial export left behind ----------------
    fill(leave_bytes=1 << 20)  # 1 MB: the adapter fits, the tokenizer (3.5 MB) does not
    before = sorted(p.name for p in mount.iterdir())
    out = _export(store, run_id, mount / "exports" / "run1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.splitlines()[-1].startswith("error could not write the export to "), out.stdout
    assert "no space left on the device" in out.stdout
    assert sorted(p.name for p in mount.iterdir()) == before  # no exports/ folder, no .run1.partial-*
    assert not any(a["kind"] == "export" for a in store.artifacts(run_id))

    # ---- with space again, the same checkpoint exports -----------------------------------------------
    (mount / "filler").unlink()
    out = _export(store, run_id, mount / "exports" / "run1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (mount / "exports" / "run1" / "adapter_model.safetensors").is_file()


def test_resume_ignores_an_incomplete_checkpoint(tmp_path):
    from engine.stages import last_checkpoint

    complete, partial = tmp_path / "checkpoint-1", tmp_path / "checkpoint-2"
    complete.mkdir()
    (complete / "adapter_model.safetensors").write_bytes(b"x")
    (complete / "trainer_state.json").write_text(json.dumps({"global_step": 1}))
    partial.mkdir()  # what a full disk left of checkpoint 2
    (partial / "adapter_model.safetensors").write_bytes(b"x")
    assert last_checkpoint(tmp_path) == complete
