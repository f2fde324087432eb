"""The `ponder` console script: no subcommand opens the desktop app; a subcommand runs the
engine's command line without importing Qt."""

from __future__ import annotations

import sys

# the command line's options that take a value (`ponder --store DB runs`)
_GLOBAL_OPTIONS_WITH_VALUE = ("--store",)


def wants_command_line(argv: list[str]) -> bool:
    """True if `argv` names a subcommand (after any global options) or asks for help or the version."""
    if {"-h", "--help", "--version"} & set(argv):
        return True
    args = iter(argv)
    for arg in args:
        if arg in _GLOBAL_OPTIONS_WITH_VALUE:
            next(args, None)
        elif arg.startswith("-"):
            if arg.split("=", 1)[0] not in _GLOBAL_OPTIONS_WITH_VALUE:
                return False  # an option of the app's (Qt's -style, ...)
        else:
            return True  # a subcommand (argparse says so if it is not one)
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if wants_command_line(argv):
        from engine.cli import main as cli_main

        return cli_main(argv)
    from desktop.app import main as gui_main
    from engine.errors import PonderError

    try:
        return gui_main(argv)
    except PonderError as exc:  # before the window exists (a damaged store, PONDER_HOME a file): say it
        sys.stderr.write(f"ponder: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
