"""The `ponder` console script: no arguments opens the desktop app; a subcommand runs the
engine's command line without importing Qt."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and not argv[0].startswith("-") or {"-h", "--help", "--version"} & set(argv):
        from engine.cli import main as cli_main

        return cli_main(argv)
    from desktop.app import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main())
