"""Shared fixtures: a fresh Ponder home per test, a shared model cache, no leftover processes."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "resources" / "specs"
# Converted models are shared by all tests (and kept between runs): converting the GGUF takes ~20 s.
os.environ.setdefault("PONDER_CACHE", str(ROOT / ".cache" / "ponder-models"))


@pytest.fixture(autouse=True)
def ponder_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "ponder-home"
    monkeypatch.setenv("PONDER_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Fail a test that leaves a child process (a worker) running."""
    yield
    me = psutil.Process()
    left = {}
    for proc in me.children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
            if proc.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in cmd:
                left[proc] = cmd
        except psutil.NoSuchProcess:
            continue
    for proc in left:
        proc.kill()
    assert not left, f"test left processes running: {list(left.values())}"


@pytest.fixture
def store(ponder_home):
    from engine.store import RunStore

    with RunStore() as s:
        yield s
