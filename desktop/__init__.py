"""Ponder's Qt front end: reads the run store, starts workers; never holds a model."""

import sys


def _pin_bools() -> None:
    """Work around a reference-count bug of PySide6 6.12 on Python 3.11.

    Emitting a Python-defined signal with a bool argument (`Signal(bool).emit(True)`, and
    pyqtgraph does this on every redraw) drops one reference to True or False that was never
    taken. The count reaches zero after a few thousand emits and the interpreter aborts
    ("Fatal Python error: bool_dealloc"), within minutes of watching a run. Python 3.12 made
    True and False immortal; here they get a reference count no session can use up (2**40).
    tests/desktop/test_qt_bug.py shows the bug and guards the workaround.
    """
    if sys.version_info >= (3, 12):
        return
    import ctypes

    for obj in (True, False):
        count = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is the first field of every object
        if count.value < 1 << 39:
            count.value += 1 << 40


_pin_bools()
