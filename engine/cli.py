"""The command line: `ponder-engine` (and `ponder` with a subcommand, see desktop/entry.py). No Qt here."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine import __version__

EXIT_FAILED, EXIT_STOPPED, EXIT_USAGE = 1, 3, 2
# Modules that add subcommands with `add_commands(subparsers)`; each keeps heavy imports inside functions.
COMMAND_MODULES: tuple[str, ...] = ("engine.export", "engine.scale", "engine.install")


def _out(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


def eta(stage: dict) -> float | None:
    """Seconds left in a stage, from its pace so far."""
    done, total, started = stage.get("progress") or 0, stage.get("total_steps") or 0, stage.get("started")
    if not (done and total and started):
        return None
    return (time.time() - started) / done * (total - done)


def _step_line(stage: dict, values: dict[str, float]) -> str:
    parts = [f"{stage['stage']} step {stage.get('progress') or 0}/{stage.get('total_steps') or '?'}"]
    for key, label in (("reward", "reward"), ("accuracy", "acc"), ("tokens/completion", "tokens"),
                       ("think_rate", "think"), ("loss", "loss")):
        if key in values:
            parts.append(f"{label} {values[key]:.3g}")
    parts.append(f"ETA {_fmt_duration(eta(stage))}")
    return "  ".join(parts)


EXIT_LEFT = 130  # the user left the worker running with a second Ctrl-C


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
            _out(f"[{ev['level']}] {ev['message']}")
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
            store.update_run(run_id, status="failed", error=error, finished=time.time())
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
        _out(f"[{ev['level']}] {ev['message']}")
    run = store.get_run(run_id)
    _out(f"run {run_id} {run['status']} ({run['run_dir']})")
    if run["status"] == "failed" and run.get("error"):
        _out(run["error"].split("\n\n", 1)[0])
    return {"succeeded": 0, "stopped": EXIT_STOPPED}.get(run["status"], EXIT_FAILED)


def load_spec_or_say(path: Path, name: str | None = None):
    """The spec at `path` (renamed to `name` if given), or None after printing every problem."""
    from engine.spec import SpecInvalid, load_spec

    try:
        spec = load_spec(path)
    except SpecInvalid as exc:
        _out(str(exc))
        return None
    if name:
        spec.name = name
    return spec


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
            m = store.last_metrics(run["id"])["values"]
            took = _fmt_duration((run["finished"] or time.time()) - run["created"]) if run["created"] else "?"
            _out(f"{run['id']:>4}  {run['status'] or '?':<9}  {run['name'] or '':<24}  "
                 f"{spec.get('rewards', {}).get('preset', ''):<9}  reward {m.get('reward', float('nan')):.3g}  "
                 f"acc {m.get('accuracy', float('nan')):.3g}  {took}")
    return 0


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
        if run.get("error"):
            _out("error: " + run["error"])
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


def cmd_data_check(args) -> int:
    from engine.data.files import validate_file

    report = validate_file(args.file, args.question, args.answer, reasoning=args.reasoning,
                           difficulty=args.difficulty)
    if args.json:
        import json

        _out(json.dumps(report.as_dict(max_problems=args.max_problems)))  # ASCII: any stdout encoding
    else:
        _out(report.format(max_problems=args.max_problems))
    return 0 if report.ok else EXIT_FAILED


def _print_summary(summary: dict) -> None:
    keys = ["accuracy", "pass@1", "tokens", "think_tokens", "answer_tokens", "think_rate", "eot"]
    labels = [k for k in summary if k != "deltas"]
    _out(f"{'':<16}" + "".join(f"{label[-22:]:>24}" for label in labels))
    extra = sorted({k for label in labels for k in summary[label] if k.startswith(("pass@", "accuracy/d"))})
    for key in keys + [k for k in extra if k not in keys]:
        _out(f"{key:<16}" + "".join(f"{summary[label].get(key, float('nan')):>24.4g}" for label in labels))
    for key, value in summary.get("deltas", {}).items():
        _out(f"{key:<16}{value:>+24.1f}")
    for label in labels:
        for point in summary[label].get("budgets") or []:
            _out(f"{label[-22:]:<24} budget {point['budget']:>5}: accuracy {point['accuracy']:.3f}, "
                 f"{point['tokens']:.1f} tokens ({point['think_tokens']:.1f} thinking)")


def _checkpoints_arg(text: str) -> str | list[int]:
    """--checkpoints final | all | 10,20,30"""
    if text in ("final", "all"):
        return text
    try:
        steps = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"write final, all, or steps like 10,20; got {text!r}") from None
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"steps start at 1; got {text!r}")
    return steps


def _budgets_arg(text: str) -> list[int]:
    try:
        budgets = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"write token budgets like 8,16,32; got {text!r}") from None
    if not budgets or budgets[0] < 1:
        raise argparse.ArgumentTypeError(f"a thinking budget is at least 1 token; got {text!r}")
    return budgets


def write_plot(store_path: Path, eval_id: int, out: Path) -> bool:
    """The efficiency-frontier chart of an evaluation as a PNG, drawn by the desktop's chart in a headless
    process (the engine itself never imports Qt)."""
    import os
    import subprocess

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    argv = [sys.executable, "-m", "desktop.widgets.evalplot", str(eval_id), "--store", str(store_path),
            "--out", str(out)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        _out(f"could not write the chart: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return done.returncode == 0


def cmd_eval(args) -> int:
    from engine.spec import EvalSpec

    # the spec's eval rules, said with the options' names
    options = {"num_samples": "--samples", "temperature": "--temperature", "max_completion_length": "--max-tokens",
               "batch_size": "--batch-size"}
    problems = [f"{options.get(e.field, e.field)}: {e.message}" for e in EvalSpec(
        num_samples=args.samples, temperature=args.temperature, max_completion_length=args.max_tokens,
        batch_size=args.batch_size).problems("")]
    if args.n < 1:
        problems.insert(0, f"--n: the number of prompts must be at least 1; got {args.n}.")
    if problems:  # before anything heavy is imported or loaded
        _err("\n".join(problems))
        return EXIT_USAGE
    from engine.evaluate import run_evaluation
    from engine.store import RunStore

    settings = {"num_samples": args.samples, "temperature": args.temperature,
                "max_completion_length": args.max_tokens, "batch_size": args.batch_size, "seed": args.seed,
                "prompt_mode": args.prompt_mode, "budgets": args.budgets or [],
                "checkpoints": args.checkpoints}
    if args.budgets and max(args.budgets) >= args.max_tokens:
        _out(f"--budgets: {max(args.budgets)} thinking tokens leave no room to answer within --max-tokens "
             f"{args.max_tokens}")
        return EXIT_USAGE
    with RunStore(args.store) as store:
        eval_id = store.create_evaluation(args.sources, args.task, args.n, settings)
        _out(f"evaluation {eval_id}: {' vs '.join(args.sources)} on {args.n} held-out prompts of {args.task}")
        last = [0.0]

        def report(done: int, total: int, started: float) -> None:
            if time.time() - last[0] >= 2 or done == total:
                last[0] = time.time()
                left = (time.time() - started) / done * (total - done) if done else None
                _out(f"progress {done}/{total} answers  ETA {_fmt_duration(left)}")

        try:
            summary = run_evaluation(store, eval_id, report=report)
        except Exception as exc:  # noqa: BLE001 - reported, not raised, at the command line
            _out(f"evaluation failed: {type(exc).__name__}: {exc}")
            return EXIT_FAILED
        _print_summary(summary)
        if args.plot is not None and write_plot(store.path, eval_id, args.plot):
            _out(f"chart: {args.plot}")
    return 0


def cmd_check(args) -> int:
    from engine.preflight import check

    spec = load_spec_or_say(args.spec)
    if spec is None:
        return EXIT_FAILED
    findings = check(spec)
    for finding in findings:
        _out(str(finding))
    errors = sum(f.level == "error" for f in findings)
    _out(f"{errors} error(s), {sum(f.level == 'warning' for f in findings)} warning(s)")
    return EXIT_FAILED if errors else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ponder", description="Reasoning fine-tuning on one workstation. "
                                     "With no command, opens the desktop app.")
    parser.add_argument("--version", action="version", version=f"ponder {__version__}")
    parser.add_argument("--store", type=Path, default=None, help="run store file (default: under PONDER_HOME)")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("run", help="run a spec file in a background worker and follow its progress")
    p.add_argument("spec", type=Path)
    p.add_argument("--name", default=None, help="override the spec's run name")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("resume", help="continue a stopped or failed run from its last checkpoint")
    p.add_argument("run_id", type=int)
    p.set_defaults(func=cmd_resume)
    sub.add_parser("runs", help="list runs").set_defaults(func=cmd_runs)
    p = sub.add_parser("show", help="a run's status, stages, last metrics and artifacts")
    p.add_argument("run_id", type=int)
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("stop", help="ask a running run to stop with a checkpoint")
    p.add_argument("run_id", type=int)
    p.set_defaults(func=cmd_stop)
    for name, count, help_ in (("eval", 1, "evaluate one source on held-out prompts"),
                               ("compare", 2, "evaluate two sources on the same prompts, same decoding")):
        p = sub.add_parser(name, help=help_, description="Sources: a model (bundled:NAME, builtin:tiny-random, a "
                           "folder, a .gguf file, a hub id), run:ID (its final adapter), run:ID:STEP (a "
                           "checkpoint), or an adapter folder with its spec.toml.")
        p.add_argument("sources", nargs=count, metavar="SOURCE")
        p.add_argument("--task", default="builtin:arithmetic", help="builtin:TASK or a data file (held-out split)")
        p.add_argument("--n", type=int, default=32, help="prompts (default 32)")
        p.add_argument("--samples", type=int, default=1, help="samples per prompt; pass@k up to this")
        p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
        p.add_argument("--max-tokens", type=int, default=256, help="max completion tokens")
        p.add_argument("--batch-size", type=int, default=16)
        p.add_argument("--prompt-mode", default="", choices=["", "think", "ellipsis", "budget"])
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--checkpoints", type=_checkpoints_arg, default="final", metavar="final|all|STEPS",
                       help="for run:ID: its final adapter (default), all saved checkpoints, or steps like 10,20 "
                            "(with the base and SFT models beside them)")
        p.add_argument("--budgets", type=_budgets_arg, default=None, metavar="B1,B2,...",
                       help="thinking budgets in tokens (budget forcing), e.g. 8,16,32,64")
        p.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                       help="write the accuracy-vs-tokens chart (efficiency frontier) to this PNG")
        p.set_defaults(func=cmd_eval)
    p = sub.add_parser("check", help="pre-flight checks of a spec: settings, model, memory, rewards")
    p.add_argument("spec", type=Path)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("data", help="work with datasets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("check", help="validate a data file with a column mapping; exit 1 if no row is usable")
    p.add_argument("file", type=Path)
    p.add_argument("--question", default="question", help="column with the question (default: question)")
    p.add_argument("--answer", default="answer", help="column with the reference answer (default: answer)")
    p.add_argument("--reasoning", default=None, help="optional column with a reasoning trace")
    p.add_argument("--difficulty", default=None, help="optional column with a difficulty level")
    p.add_argument("--max-problems", type=int, default=10, help="problems listed by row (default 10)")
    p.add_argument("--json", action="store_true",
                   help="print the report as one JSON object (counts, problems, columns, the first rows)")
    p.set_defaults(func=cmd_data_check)
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        build_parser().print_help()
        return EXIT_USAGE
    return run_command(args.func, args, getattr(args, "store", None))


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def run_command(func, args, store_path: Path | None = None) -> int:
    """The one top-level handler of the command line: a bad input or a failing file system ends in a
    message naming the file or field and a non-zero exit; the traceback goes to the log file only."""
    import sqlite3

    from engine.errors import PonderError, RunBusy, RunNotFound

    try:
        return func(args)
    except KeyboardInterrupt:
        _log_traceback()
        _err("interrupted")
        return EXIT_LEFT
    except PonderError as exc:
        _log_traceback()
        _err(f"error: {exc}")
        return EXIT_USAGE if isinstance(exc, RunNotFound | RunBusy) else EXIT_FAILED
    except sqlite3.Error as exc:
        from engine import paths
        from engine.store import describe_store_error

        _log_traceback()
        try:
            path = store_path or paths.store_path()
        except Exception:  # noqa: BLE001 - the message matters more than the path here
            path = "(the run store)"
        _err(f"error: {describe_store_error(path, exc)}")
        return EXIT_FAILED
    except OSError as exc:
        _log_traceback()
        _err(f"error: {_describe_os_error(exc)}")
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the top of the command line
        where = _log_traceback()
        _err(f"error: {type(exc).__name__}: {exc}" + (f"\n(the details are in {where})" if where else ""))
        return EXIT_FAILED


def _describe_os_error(exc: OSError) -> str:
    what = exc.strerror or str(exc)
    files = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
    return f"{what}: {files}" if files else what


def _log_traceback() -> Path | None:
    """Append the exception being handled, with its traceback, to the command line's log; its path."""
    import tempfile
    import traceback

    text = f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} ponder {' '.join(sys.argv[1:])}\n{traceback.format_exc()}\n"
    for folder in (_home_or_none(), Path(tempfile.gettempdir())):
        if folder is None:
            continue
        path = folder / "ponder-cli.log"
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(text)
            return path
        except OSError:
            continue
    return None


def _home_or_none() -> Path | None:
    from engine import paths

    try:
        return paths.ponder_home()
    except Exception:  # noqa: BLE001 - a broken home (a file, unwritable): log elsewhere
        return None


if __name__ == "__main__":
    sys.exit(main())
