"""The GUI process never loads the ML stack: checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

FORBIDDEN = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")


def test_importing_the_app_loads_no_ml_stack():
    code = ("import sys; import desktop.app, desktop.entry; "
            f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_helper_processes_do_not_import_qt():
    """supervise and `ponder data check` (the file preview) run as separate processes and must start
    fast: no Qt."""
    code = ("import sys; import desktop.supervise, desktop.entry, engine.cli, engine.data.files; "
            "bad = [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'torch'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
