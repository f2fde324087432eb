"""The worker process: `python -m engine.worker RUN_DIR [--store DB] [--resume]`.

Reads RUN_DIR/spec.toml, runs the spec's stages in order and records everything in the
run store. Each stage runs in a child process of its own that reports to the same store, so what a
stage loaded (models, optimizer, caches) is gone when it ends: a pipeline costs no more memory than its
heaviest stage. The children are forked from the worker's multiprocessing fork server, which imports
the training libraries once (engine/stage_preload.py), so a stage starts in well under a second
instead of importing torch and transformers again; the worker's own process imports none of them. A stage's
process dies with the worker (SIGTERM or SIGKILL to the worker ends the stage too). The worker
catches at the top: any error, a stage's included, is recorded on the run (type, message, traceback)
and the process exits non-zero. Exit codes: 0 succeeded, 3 stopped, 1 failed, 4 refused (another
live worker runs the run, or a fresh start of a run that ran before; nothing is written then).
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

EXIT_OK, EXIT_FAILED, EXIT_STOPPED, EXIT_BUSY = 0, 1, 3, 4
log = logging.getLogger("engine.worker")
STAGE_PRELOAD = ["engine.stage_preload"]  # imported once by the fork server (if it fails, each stage imports)


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
    """The message a user reads first: out of memory and a full disk are said as such, with what to do.

    Libraries wrap both: torch's CPU allocator raises RuntimeError("DefaultCPUAllocator: can't
    allocate memory"), safetensors and tokenizers (Rust) report a full disk in their own error
    types and torch.save as "file write failed", so the exception chain and its text are read,
    not only the exception type. A full disk names the file (or folder) being written where a
    frame of the traceback holds it.
    """
    import errno

    text = f"{type(exc).__name__}: {exc}"
    chain, seen = [], set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:  # the exception and what it was raised from
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    oom_words = ("out of memory", "can't allocate memory", "cannot allocate memory", "defaultcpuallocator")
    oom = next((c for c in chain if isinstance(c, MemoryError) or getattr(c, "errno", None) == errno.ENOMEM
                or any(w in str(c).lower() for w in oom_words)), None)
    if oom is not None:
        return ("Out of memory: " + f"{type(oom).__name__}: {oom}" + "\nLower grpo.batch_size, "
                "grpo.num_generations or grpo.max_completion_length (or model.lora.r), then resume the run.")
    disk = {errno.ENOSPC: "No space left on device",
            errno.EFBIG: "File too large (a file-size limit was hit)", errno.EDQUOT: "Disk quota exceeded"}
    disk_words = (("no space left on device", errno.ENOSPC), ("storagefull", errno.ENOSPC),
                  ("file too large", errno.EFBIG), ("quota exceeded", errno.EDQUOT),
                  ("file write failed", errno.ENOSPC))  # torch.save's PytorchStreamWriter says only this
    said = None
    for c in chain:
        code = c.errno if isinstance(c, OSError) and c.errno in disk else \
            next((n for w, n in disk_words if w in str(c).lower()), None)
        if code is not None:
            said, text = disk[code], f"{type(c).__name__}: {c}"
            break
    if said is None:
        return text
    path = next((str(c.filename) for c in chain if isinstance(c, OSError) and c.filename), None)
    if path is None:  # a write to an open file, or a library's own error: find the path in the traceback
        names = ("filename", "file_path", "tokenizer_file", "save_path", "output_file", "path",
                 "save_directory", "output_dir", "checkpoint_folder")
        for c in chain:
            frames, tb = [], c.__traceback__
            while tb is not None:
                frames.append(tb.tb_frame)
                tb = tb.tb_next
            for frame in reversed(frames):  # innermost first: the file rather than its folder
                found = next((v for n in names
                              if isinstance(v := frame.f_locals.get(n), str | os.PathLike)), None)
                if found is not None:
                    path = os.fspath(found)
                    break
            if path is not None:
                break
    where = f" while writing {path}" if path else " while writing"
    return (f"{said}{where}: free disk space or choose another output folder; the last complete checkpoint "
            f"is intact.\n{text}")


def run_worker(run_dir: Path, store: RunStore, resume: bool = False) -> int:
    from engine.run_context import StageContext, is_main_process

    main = is_main_process()
    run = store.find_run_by_dir(run_dir)
    if run is None and main:  # launched by hand: register it (`ponder launch-command` registers it first)
        spec = load_spec(run_dir / "spec.toml")
        run = store.get_run(store.create_run(spec.name, spec.to_dict(), run_dir))
    while run is None:  # another rank: wait until rank 0 has registered the run
        time.sleep(0.2)
        run = store.find_run_by_dir(run_dir)
    run_id = run["id"]
    refused = store.start_worker(run_id, os.getpid(), resume) if main else None  # one run, one worker
    if refused:
        log.error("%s; this worker leaves the run alone", refused)
        return EXIT_BUSY
    stage = None
    try:
        spec = load_spec(run_dir / "spec.toml")
        ctx = StageContext(store=store, run_id=run_id, run_dir=run_dir, spec=spec, placement=None,
                           resume=resume)
        ctx.event("info", f"worker started (pid {os.getpid()})")
        done = {s["stage"] for s in store.stages(run_id) if s["status"] in ("succeeded", "skipped")} if resume else set()
        if resume:
            restore_outputs(ctx)
        else:
            from engine.run_context import check_data

            check_data(spec)  # too little data fails here, before any stage trains
        status = "succeeded"
        for stage in spec.stages:
            if stage in done:
                ctx.event("info", f"{stage}: already done, skipped", stage)
                continue
            if main:
                store.set_stage(run_id, stage, status="running", started=time.time(), finished=None)
            status = run_stage(ctx, stage)
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
        if isinstance(exc, StageError):  # said and traced in the stage's own process
            message, detail, error_type = exc.message, exc.detail, exc.error_type
        else:
            message, detail = _describe(exc), "".join(traceback.format_exception(exc))
            error_type = type(exc).__name__
        log.error("run failed: %s\n%s", message, detail)
        if main:
            store.update_run(run_id, status="failed", error_type=error_type, error_message=message,
                             error_traceback=detail, finished=time.time())
            store.log_event(run_id, "error", message, stage)
            if stage:
                store.set_stage(run_id, stage, status="failed", finished=time.time())
        return EXIT_FAILED
    finally:
        _stop_fork_server()


def _stop_fork_server() -> None:
    """End the fork server (if a stage started it) and wait for it. Waited for, its accounting of the stages'
    processes (peak RSS, CPU time) reaches the worker and, through it, `/usr/bin/time` and the benchmarks;
    not waited for, it would outlive the worker for a moment and be handed to init with those figures.
    multiprocessing has no public call for this: `_stop` is the one its own tests use (Python 3.8 to 3.13)."""
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()


class StageError(Exception):
    """A stage failed in its own process: the message the user reads, the error's type and its traceback."""

    def __init__(self, message: str, error_type: str, detail: str):
        super().__init__(message)
        self.message, self.error_type, self.detail = message, error_type, detail


def run_stage(ctx, stage: str) -> str:
    """Run one stage in a child process (forked from the fork server, not from this process) and wait for it.

    ctx.outputs goes in, the stage's status and outputs come back over a pipe; the stage's error comes
    back as a StageError. A SIGTERM to the worker (raised here as Terminated) or any other error of the
    wait kills the child before it goes on up.
    """
    import multiprocessing

    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(STAGE_PRELOAD)  # takes effect when the server starts: at the first stage
    receive, send = mp.Pipe(duplex=False)
    child = mp.Process(target=stage_main, name=f"ponder-stage-{stage}",
                       args=(send, os.getpid(), str(ctx.store.path), ctx.run_id, str(ctx.run_dir), stage,
                             ctx.resume, dict(ctx.outputs)))
    child.start()
    send.close()  # the child holds the only writer: its end (or death) ends the wait with EOF
    try:
        try:
            result = receive.recv()
        except EOFError:
            result = None
        child.join()
    except BaseException:
        child.kill()
        child.join()
        raise
    finally:
        receive.close()
    if result is None:
        import signal

        code = child.exitcode
        how = f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0 else \
            f"exited with status {code}"
        message = (f"the {stage} stage's process {how} before it finished (out of memory? the system's "
                   "log says); resume the run to continue from its last checkpoint")
        raise StageError(message, "StageDied", message)
    if "error" in result:
        raise StageError(result["error"], result["error_type"], result["traceback"])
    ctx.outputs.update(result["outputs"])
    return result["status"]


def stage_main(send, worker_pid: int, store_path: str, run_id: int, run_dir: str, stage: str, resume: bool,
               outputs: dict) -> None:
    """The stage's process: run `stage` on the run and send {"status", "outputs"} or the error back."""
    _die_with(worker_pid, stage)
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)  # stderr is the worker's: RUN_DIR/worker.log
    try:
        from engine.models import choose_placement
        from engine.stages import StageContext

        with RunStore(Path(store_path)) as store:
            spec = load_spec(Path(run_dir) / "spec.toml")
            placement = choose_placement(spec.model.device, spec.model.dtype)
            ctx = StageContext(store=store, run_id=run_id, run_dir=Path(run_dir), spec=spec, resume=resume,
                               placement=placement, outputs=dict(outputs))
            ctx.event("info", f"{stage}: process {os.getpid()} on {placement.device}, {placement.dtype_name}",
                      stage)
            status = _stage_module(stage).run(ctx)
        result = {"status": status, "outputs": ctx.outputs}
    except BaseException as exc:  # noqa: BLE001 - the top of the stage's process: the worker records it
        result = {"error": _describe(exc), "error_type": type(exc).__name__,
                  "traceback": "".join(traceback.format_exception(exc))}
    send.send(result)
    send.close()


def _die_with(worker_pid: int, stage: str) -> None:
    """This process ends as soon as the worker ends, however the worker dies: a thread waits for the worker
    (psutil's wait) and exits the process at once; the kernel also kills it when its
    parent, the fork server, dies (Linux: prctl PR_SET_PDEATHSIG). The watch is needed: the server outlives
    the worker as long as any child it forked lives (each holds the server's "alive" pipe), so the kernel's
    signal alone would never come. The process is named `ponder-STAGE` (what ps, top and the fault tests
    show)."""
    import signal
    import threading

    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig, pr_set_name = 1, 15
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        prctl(pr_set_name, ctypes.c_char_p(f"ponder-{stage}"[:15].encode()), 0, 0, 0)
    threading.Thread(target=_exit_when_gone, args=(worker_pid,), name="ponder-watch-worker", daemon=True).start()


def _exit_when_gone(pid: int) -> None:
    import psutil

    try:
        psutil.Process(pid).wait()  # a pidfd (or kqueue) wait where the system has one, else it polls
    except psutil.NoSuchProcess:  # already gone
        pass
    os._exit(EXIT_FAILED)


def restore_outputs(ctx) -> None:
    """On resume, what finished stages handed on (the SFT and prefer adapters, the judge) comes back from the
    artifacts."""
    for art in ctx.store.artifacts(ctx.run_id):
        if art["stage"] in ("sft", "prefer") and art["kind"] == "adapter":
            ctx.outputs[f"{art['stage']}_adapter"] = Path(art["path"])
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
