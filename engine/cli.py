"""The command line: `ponder-engine` (and `ponder` with a subcommand, see desktop/entry.py). No Qt here.

This module holds the parser and the one top-level error handler; the commands live in cli_runs (run,
resume, runs, show, stop), cli_eval (eval, compare), cli_checks (check, data check) and the modules of
COMMAND_MODULES (export, launch-command, install).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine import __version__

EXIT_FAILED, EXIT_STOPPED, EXIT_USAGE = 1, 3, 2
EXIT_LEFT = 130  # the user left the worker running with a second Ctrl-C
# Modules that add subcommands with `add_commands(subparsers)`; each keeps heavy imports inside functions.
COMMAND_MODULES: tuple[str, ...] = ("engine.export", "engine.scale", "engine.install")


def _out(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


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


def build_parser() -> argparse.ArgumentParser:
    from engine.cli_checks import cmd_check, cmd_data_check
    from engine.cli_eval import _budgets_arg, _checkpoints_arg, cmd_eval
    from engine.cli_runs import cmd_resume, cmd_run, cmd_runs, cmd_show, cmd_stop

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
