"""Ponder's Qt front end: reads the run store, starts workers; never holds a model."""

import sys


def _pin_singletons() -> None:
    """Work around a reference-count bug of PySide6 6.12 on Python 3.11.

    Its bindings give back None, True and False without taking the reference the caller
    will drop: every call of a void method (`label.setText(...)`) loses one reference to
    None, every emit of a Python signal with a bool one to True or False. After some
    ten thousand calls the count reaches zero and the interpreter aborts ("Fatal Python
    error: none_dealloc" or "bool_dealloc"): within minutes of watching a run. Python
    3.12 made these three objects immortal; here they get a reference count no session
    can use up (2**40). tests/desktop/test_qt_bug.py shows the bug and guards this.
    """
    if sys.version_info >= (3, 12):
        return
    import ctypes

    for obj in (None, True, False):
        count = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is the first field of every object
        if count.value < 1 << 39:
            count.value += 1 << 40


_pin_singletons()
