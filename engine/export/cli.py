"""`ponder export RUN_ID --out DIR`, and `python -m engine.export` for the GUI's Export page (machine-readable
progress on stdout: `progress 3/5 ...`, then `exported PATH` or `error MESSAGE`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from engine.export.transaction import ExportError, Progress, export_run

def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", type=int)
    p.add_argument("--out", type=Path, required=True, help="the folder to create (with --zip: FOLDER.zip)")
    p.add_argument("--checkpoint", default=None, metavar="STEP", help="a checkpoint instead of the final "
                   "adapter: STEP (GRPO's, where SFT has one at that step too) or STAGE:STEP")
    p.add_argument("--zip", dest="zip_", action="store_true", help="pack the export into one .zip file")
    fmt = p.add_mutually_exclusive_group()  # the default: the LoRA adapter in peft's format
    fmt.add_argument("--merged", action="store_true", help="a stand-alone model: the adapter merged into the base")
    fmt.add_argument("--gguf", nargs="?", const="f16", choices=("f16", "q8_0"),
                     help="one GGUF file (default f16) for llama.cpp / Ollama, adapter merged in, and a Modelfile")
    fmt.add_argument("--gguf-adapter", action="store_true",
                     help="the adapter as a GGUF LoRA, with the base model as GGUF f16, and a Modelfile")


def _run(args, say: Progress, done: Callable[[Path], None], fail: Callable[[str], None]) -> int:
    from engine.store import RunStore

    with RunStore(args.store) as store:
        try:
            path = export_run(store, args.run_id, args.out, checkpoint=args.checkpoint, merged=args.merged,
                              zip_=args.zip_, progress=say, gguf=args.gguf, gguf_adapter=args.gguf_adapter)
        except KeyError as exc:  # no such run
            fail(str(exc.args[0]))
            return 1
        except Exception as exc:  # noqa: BLE001 - loading a model can fail in many ways: say which
            fail(str(exc) if isinstance(exc, ExportError) else f"{type(exc).__name__}: {exc}")
            return 1
    done(path)
    return 0


def cmd_export(args) -> int:
    from engine.cli import _out

    return _run(args, lambda i, n, text: _out(f"[{i}/{n}] {text}"), lambda p: _out(f"exported to {p}"),
                lambda message: _out(f"export failed: {message}"))


def add_commands(sub) -> None:
    p = sub.add_parser("export", help="export a run's trained adapter (or a merged model) for plain "
                       "transformers + peft, with the spec and a model card")
    _arguments(p)
    p.set_defaults(func=cmd_export)


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.export RUN_ID --out DIR [...]`: machine-readable progress for the GUI."""
    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    parser = argparse.ArgumentParser(prog="python -m engine.export", description=_package_doc())
    _arguments(parser)
    parser.add_argument("--store", type=Path, default=None,
                        help="run store file (default: the Ponder home's)")
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a cancel from the GUI still cleans up
    return _run(args, lambda i, n, text: emit(f"progress {i}/{n} {text}"), lambda p: emit(f"exported {p}"),
                lambda message: emit("error " + " ".join(message.split())))


def _package_doc() -> str:
    import engine.export

    return (engine.export.__doc__ or "").splitlines()[0]
