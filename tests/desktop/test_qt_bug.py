"""PySide6 6.12 drops a reference to True/False on every emit of a Python signal with a bool;
importing `desktop` makes True and False effectively immortal (as Python 3.12 does)."""

from __future__ import annotations

import subprocess
import sys

from PySide6.QtCore import QObject, Signal

import desktop  # noqa: F401 - the workaround runs on import
from tests.conftest import ROOT


class _Emitter(QObject):
    sig_flag = Signal(bool)
    """A bool signal, as pyqtgraph and Qt widgets emit them."""


def test_many_bool_emits_do_not_exhaust_true(qapp):
    emitter = _Emitter()
    emitter.sig_flag.connect(lambda flag: None)
    for _ in range(20000):  # far more than True's real reference count
        emitter.sig_flag.emit(True)
        emitter.sig_flag.emit(False)
    assert sys.getrefcount(True) > 1 << 38 or sys.version_info >= (3, 12)


def test_the_bug_still_needs_the_workaround():
    """Without `desktop`, 20000 emits kill the interpreter on the affected versions. When this test
    starts failing because the process survives, the PySide6 bug is fixed: drop desktop._pin_bools."""
    code = ("from PySide6.QtCore import QObject, Signal\n"
            "class E(QObject):\n    s = Signal(bool)\n"
            "e = E()\nfor _ in range(20000): e.s.emit(True)\nprint('survived')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if sys.version_info >= (3, 12):
        assert out.returncode == 0
    else:
        assert out.returncode != 0 and "bool_dealloc" in out.stderr, "fixed upstream? remove the workaround"
