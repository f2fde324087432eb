"""Runs one worker and records how it ended: `python -m desktop.supervise RUN_DIR -- ARGV...`.

The GUI starts this detached (its own session, parented to init), so a worker outlives the
window and a Ctrl-C in the terminal that started the app. It runs ARGV (the engine's
`worker_argv`) with stdout and stderr appended to RUN_DIR/worker.log, waits, and writes the
exit code to RUN_DIR/worker.exit (negative: killed by that signal). The GUI reads that file
to explain a worker that died without recording an error, even after the app was reopened.
No Qt and no engine imports beyond engine.paths (standard library only): it must start fast and never
hold a model.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from engine.paths import atomic_write

EXIT_FILE = "worker.exit"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m desktop.supervise RUN_DIR -- ARGV...\n")
        return 2
    run_dir, command = Path(argv[0]), argv[2:]
    with open(run_dir / "worker.log", "ab") as log:
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        except OSError as exc:  # the program is missing or not executable: say so where the GUI looks
            log.write(f"could not start {command[0]}: {exc}\n".encode())
            _record(run_dir, 127)
            return 0

    def forward(signum, _frame):  # a terminate aimed at us reaches the worker
        proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    _record(run_dir, proc.wait())
    return 0


def _record(run_dir: Path, code: int) -> None:
    atomic_write(run_dir / EXIT_FILE, str(code))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
