"""Started by bench/startup.py: the real `ponder` GUI entry point, stopped at the first painted window.

Prints one JSON line: the wall-clock time when the main window had painted, and which of the
ML stack's modules were loaded by then (none should be). Then it quits the app.
"""

from __future__ import annotations

import time

PROBE_START = time.time()  # the interpreter is up (site, encodings): everything before is Python's own start

import json  # noqa: E402
import sys  # noqa: E402

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

ML_STACK = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")


class FirstPaint(QObject):
    """On the main window's first paint event, report once the paint is done, then quit."""

    def __init__(self, app: QApplication):
        super().__init__()
        self.app, self.seen = app, False

    def eventFilter(self, obj, event):  # noqa: N802 (Qt override)
        if (not self.seen and event.type() == QEvent.Type.Paint and obj.isWidgetType()
                and isinstance(obj.window(), QMainWindow)):
            self.seen = True
            QTimer.singleShot(0, self.report)  # runs after this paint (and its siblings') finished
        return False

    def report(self) -> None:
        painted = time.time()
        sys.stdout.write(json.dumps({"painted": painted, "loaded": [m for m in ML_STACK if m in sys.modules],
                                     "marks": MARKS}) + "\n")
        sys.stdout.flush()
        self.app.quit()


MARKS: dict[str, float] = {}


def main() -> int:
    MARKS["interpreter"] = PROBE_START
    app = QApplication([sys.argv[0]])  # desktop.app.main() takes this instance
    probe = FirstPaint(app)
    app.installEventFilter(probe)
    MARKS["qapplication"] = time.time()
    from desktop.entry import main as ponder_main

    import desktop.app  # noqa: F401 - what `ponder` imports before its window exists; timed on its own

    MARKS["imports"] = time.time()
    return ponder_main([])


if __name__ == "__main__":
    sys.exit(main())
