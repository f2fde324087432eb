"""`ponder run`, `resume`, `runs`, `show`, `stop`: start runs in a background worker and follow them."""

from __future__ import annotations

import time
from pathlib import Path

from engine.cli import EXIT_FAILED, EXIT_LEFT, EXIT_STOPPED, EXIT_USAGE, _out, load_spec_or_say
from engine.progress import eta, fmt_duration


def _step_line(stage: dict, values: dict[str, float]) -> str:
    parts = [f"{stage['stage']} step {stage.get('progress') or 0}/{stage.get('total_steps') or '?'}"]
    for key, label in (("reward", "reward"), ("accuracy", "acc"), ("tokens/completion", "tokens"),
                       ("think_rate", "think"), ("loss", "loss")):
        if key in values:
            parts.append(f"{label} {values[key]:.3g}")
    parts.append(f"ETA {fmt_duration(eta(stage))}")
    return "  ".join(parts)


def follow(store, run_id: int, proc=None, poll: float = 0.5, after_event: int = 0) -> int:
    """Print progress until the run ends; returns the exit code for the run's end.

    Events after `after_event` are printed (a resumed run does not replay its earlier attempts).
    A first Ctrl-C asks the worker to stop with a checkpoint and keeps following; a second leaves
    the worker running and returns EXIT_LEFT. Ctrl-C only sets a flag here: it never interrupts a
    store call halfway.
    """
    import signal
    import threading

    interrupts: list[int] = []
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupts.append(1)) if main_thread else None
    try:
        return _follow(store, run_id, proc, poll, after_event, interrupts)
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)


def _follow(store, run_id: int, proc, poll: float, last_event: int, interrupts: list[int]) -> int:
    last_step = None
    stop_sent = False

    def interrupted() -> bool:
        """Handle Ctrl-C presses so far; True once the user asked to leave."""
        nonlocal stop_sent
        if interrupts and not stop_sent:
            stop_sent = True
            _out("\nstopping: the worker saves a checkpoint and exits (Ctrl-C again to leave it running)")
            store.send_command(run_id, "stop")
        if len(interrupts) >= 2:
            _out(f"\nleft run {run_id} running in the background: `ponder show {run_id}` shows it, "
                 f"`ponder stop {run_id}` stops it")
            return True
        return False

    while True:
        if interrupted():
            return EXIT_LEFT
        for ev in store.events_since(run_id, last_event):
            last_event = ev["id"]
            _out(_event_line(ev))
        run = store.get_run(run_id)
        running = [s for s in store.stages(run_id) if s["status"] == "running"]
        if running:
            metrics = store.last_metrics(run_id, running[0]["stage"])
            key = (running[0]["stage"], metrics["step"])
            if metrics["step"] is not None and key != last_step:
                last_step = key
                _out(_step_line(running[0], metrics["values"]))
        if run["status"] not in ("queued", "running"):
            break
        if proc is not None and proc.poll() is not None and store.get_run(run_id)["status"] == "queued":
            # the worker exited before it took the run (it could not start): record that, do not leave it queued
            error = (f"The worker exited with code {proc.returncode} before it started the run; see worker.log "
                     f"in {run['run_dir']}.")
            store.update_run(run_id, status="failed", error_message=error, finished=time.time())
            store.log_event(run_id, "error", error)
            continue
        for _ in range(max(1, int(poll / 0.1))):  # short sleeps: a Ctrl-C is answered within 0.1 s
            if interrupts and (not stop_sent or len(interrupts) >= 2):
                break
            time.sleep(min(poll, 0.1))
    while proc is not None and proc.poll() is None:  # the worker is recording its end and exiting
        if interrupted():
            return EXIT_LEFT
        time.sleep(0.1)
    final = [s for s in store.stages(run_id) if s["status"] != "pending"]
    if final:  # the last step may land after the last poll
        metrics = store.last_metrics(run_id, final[-1]["stage"])
        if metrics["step"] is not None and (final[-1]["stage"], metrics["step"]) != last_step:
            _out(_step_line(final[-1], metrics["values"]))
    for ev in store.events_since(run_id, last_event):
        _out(_event_line(ev))
    run = store.get_run(run_id)
    _out(f"run {run_id} {run['status']} ({run['run_dir']})")
    if run["status"] == "failed" and run.get("error_message"):
        _out(run["error_message"])
    return {"succeeded": 0, "stopped": EXIT_STOPPED}.get(run["status"], EXIT_FAILED)


def _event_line(ev: dict) -> str:
    return f"[{ev['level']}] " + (f"[{ev['code']}] " if ev.get("code") else "") + ev["message"]


def cmd_run(args) -> int:
    import os

    from engine.launch import create_run, spawn_worker
    from engine.store import RunStore

    spec = load_spec_or_say(args.spec, args.name)
    if spec is None:
        return EXIT_USAGE
    with RunStore(args.store) as store:
        run_id, run_dir = create_run(spec, store, claimant=os.getpid())
        _out(f"run {run_id}: {spec.name} in {run_dir}")
        proc = spawn_worker(run_dir, store, run_id=run_id)
        return follow(store, run_id, proc)


def cmd_resume(args) -> int:
    from engine.launch import spawn_worker
    from engine.store import RunStore

    with RunStore(args.store) as store:
        run = store.get_run(args.run_id)
        if run["status"] == "succeeded":
            _out(f"run {args.run_id} already succeeded; nothing to resume")
            return 0
        if not (Path(run["run_dir"] or "") / "spec.toml").is_file():
            from engine.errors import PonderError

            raise PonderError(f"run {args.run_id} cannot be resumed: its folder {run['run_dir']} (with spec.toml "
                              "and the checkpoints) is gone.")
        before = store.last_event_id(args.run_id)  # follow this attempt only
        run = store.claim_run(args.run_id)  # RunBusy if another resume (or the app) got there first
        store.log_event(args.run_id, "info", "resuming from the last checkpoint")
        proc = spawn_worker(Path(run["run_dir"]), store, resume=True, run_id=args.run_id)
        return follow(store, args.run_id, proc, after_event=before)


def cmd_runs(args) -> int:
    from engine.store import RunStore

    with RunStore(args.store) as store:
        runs = store.list_runs()
        if not runs:
            _out("no runs yet: ponder run resources/specs/smoke.toml")
        for run in runs:
            if run.get("damaged"):
                _out(f"{run['id']:>4}  {run['status'] or '?':<9}  {run['name'] or '':<24}  "
                     f"({'; '.join(run['damaged'])})")
                continue
            spec = run["spec"] or {}
            s = store.run_summary(run["id"])
            took = fmt_duration((run["finished"] or time.time()) - run["created"]) if run["created"] else "?"
            _out(f"{run['id']:>4}  {run['status'] or '?':<9}  {run['name'] or '':<24}  "
                 f"{spec.get('rewards', {}).get('preset', ''):<9}  reward {_number(s['values'].get('reward'))}  "
                 f"batch acc {_number(s['values'].get('accuracy'))}  held-out acc {_number(s['eval_accuracy'])}  "
                 f"{took}")
    return 0


def _number(value: float | None) -> str:
    """A figure of `ponder runs`: three digits, or "-" where the run has none (no GRPO stage, no eval)."""
    return "-" if value is None or value != value else f"{value:.3g}"


def cmd_show(args) -> int:
    from engine.store import RunStore

    with RunStore(args.store) as store:
        run = store.get_run(args.run_id)
        _out(f"run {run['id']}: {run['name']}  status {run['status']}  folder {run['run_dir']}")
        for problem in run.get("damaged", []):
            _out(f"  note: {problem}")
        for stage in store.stages(run["id"]):
            _out(f"  {stage['stage']:<6} {stage['status']:<9} step {stage['progress'] or 0}/"
                 f"{stage['total_steps'] or '?'}")
        last = store.last_metrics(run["id"])
        if last["step"] is not None:
            _out(f"last metrics ({last['stage']} step {last['step']}):")
            for name, value in sorted(last["values"].items()):
                _out(f"  {name:<40} {value:.4g}")
        for art in store.artifacts(run["id"]):
            _out(f"  {art['kind']:<10} {art['path']}")
        if run.get("error_message"):
            _out("error: " + run["error_message"])
        if run.get("error_traceback"):
            _out(f"  (its traceback is in {Path(run['run_dir']) / 'worker.log'})")
    return 0


def cmd_stop(args) -> int:
    from engine.store import RunStore

    with RunStore(args.store) as store:
        run = store.get_run(args.run_id)
        if run["status"] not in ("queued", "running"):
            _out(f"run {args.run_id} is not running ({run['status']})")
            return EXIT_USAGE
        store.send_command(args.run_id, "stop")
        _out(f"asked run {args.run_id} to stop; it saves a checkpoint at the end of the current step")
    return 0
