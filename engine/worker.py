"""The worker process: `python -m engine.worker RUN_DIR [--store DB] [--resume]`.

Reads RUN_DIR/spec.toml, runs the spec's stages in order and records everything in the
run store. It catches at the top: any error is recorded on the run (type, message,
traceback) and the process exits non-zero. Exit codes: 0 succeeded, 3 stopped, 1 failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from pathlib import Path

from engine.spec import load_spec
from engine.store import RunStore

EXIT_OK, EXIT_FAILED, EXIT_STOPPED = 0, 1, 3
log = logging.getLogger("engine.worker")


def _redirect_output(run_dir: Path) -> None:
    """stdout/stderr (and every library's progress output) go to RUN_DIR/worker.log, appended."""
    log_file = open(run_dir / "worker.log", "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (lives as long as the process)
    os.dup2(log_file.fileno(), 1)
    os.dup2(log_file.fileno(), 2)
    sys.stdout = sys.stderr = log_file


class Terminated(BaseException):
    """SIGTERM reached the worker (the GUI escalates to it when a stop takes too long)."""


def _on_sigterm(signum, frame):
    raise Terminated("the worker was terminated (SIGTERM) before it could finish or stop cleanly")


def _describe(exc: BaseException) -> str:
    """The message a user reads first: out of memory is said as such, with the settings to lower."""
    text = f"{type(exc).__name__}: {exc}"
    oom = isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
    if oom:
        text = ("Out of memory: " + text + "\nLower grpo.batch_size, grpo.num_generations or "
                "grpo.max_completion_length (or model.lora.r), then resume the run.")
    return text


def run_worker(run_dir: Path, store: RunStore, resume: bool = False) -> int:
    from engine.stages import StageContext, is_main_process

    main = is_main_process()
    run = store.find_run_by_dir(run_dir)
    if run is None and main:  # launched by hand: register it (`ponder launch-command` registers it first)
        spec = load_spec(run_dir / "spec.toml")
        run = store.get_run(store.create_run(spec.name, spec.to_dict(), run_dir))
    while run is None:  # another rank: wait until rank 0 has registered the run
        time.sleep(0.2)
        run = store.find_run_by_dir(run_dir)
    run_id = run["id"]
    if main:
        import psutil

        store.update_run(run_id, status="running", pid=os.getpid(),
                         pid_started=psutil.Process().create_time(), error=None, finished=None)
    stage = None
    try:
        spec = load_spec(run_dir / "spec.toml")
        from engine.models import choose_placement

        placement = choose_placement(spec.model.device, spec.model.dtype)
        ctx = StageContext(store=store, run_id=run_id, run_dir=run_dir, spec=spec, placement=placement,
                           resume=resume)
        ctx.event("info", f"worker started (pid {os.getpid()}) on {placement.device}, {placement.dtype_name}")
        done = {s["stage"] for s in store.stages(run_id) if s["status"] in ("succeeded", "skipped")} if resume else set()
        if resume:
            restore_outputs(ctx)
        status = "succeeded"
        for stage in spec.stages:
            if stage in done:
                ctx.event("info", f"{stage}: already done, skipped", stage)
                continue
            if main:
                store.set_stage(run_id, stage, status="running", started=time.time(), finished=None)
            status = _stage_module(stage).run(ctx)
            if main:
                store.set_stage(run_id, stage, status=status, finished=time.time())
            if status == "skipped":
                status = "succeeded"
            elif status != "succeeded":
                break
        if main:
            store.update_run(run_id, status=status, finished=time.time())
        ctx.event("info", f"run {status}")
        return EXIT_OK if status == "succeeded" else EXIT_STOPPED
    except BaseException as exc:  # noqa: BLE001 - the top of the worker: record everything
        message = _describe(exc)
        detail = "".join(traceback.format_exception(exc))
        log.error("run failed: %s\n%s", message, detail)
        if main:
            store.update_run(run_id, status="failed", error=f"{message}\n\n{detail}", finished=time.time())
            store.log_event(run_id, "error", message, stage)
            if stage:
                store.set_stage(run_id, stage, status="failed", finished=time.time())
        return EXIT_FAILED


def restore_outputs(ctx) -> None:
    """On resume, what finished stages handed on (the SFT adapter, the judge) comes back from the artifacts."""
    for art in ctx.store.artifacts(ctx.run_id):
        if art["stage"] == "sft" and art["kind"] == "adapter":
            ctx.outputs["sft_adapter"] = Path(art["path"])
        elif art["kind"] == "judge":
            ctx.outputs["judge_path"] = Path(art["path"])


def _stage_module(stage: str):
    import importlib

    return importlib.import_module(f"engine.stages.{stage}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.worker", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--store", type=Path, default=None, help="run store file (default: the Ponder home's)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--no-log-file", action="store_true", help="keep stdout/stderr (for debugging)")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    if not (run_dir / "spec.toml").is_file():
        parser.error(f"{run_dir} holds no spec.toml")
    if not args.no_log_file:
        _redirect_output(run_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    with RunStore(args.store) as store:
        return run_worker(run_dir, store, resume=args.resume)


if __name__ == "__main__":
    sys.exit(main())
