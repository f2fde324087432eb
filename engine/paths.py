"""Where Ponder keeps its files: the Ponder home (store, runs) and the model cache."""

from __future__ import annotations

import os
from pathlib import Path


def ponder_home() -> Path:
    """`PONDER_HOME`, else the platform's user data dir; created on first use."""
    env = os.environ.get("PONDER_HOME")
    if env:
        home = Path(env).expanduser()
    else:
        import platformdirs

        home = Path(platformdirs.user_data_dir("ponder", appauthor=False))
    home.mkdir(parents=True, exist_ok=True)
    return home


def model_cache() -> Path:
    """Converted models (GGUF de-quantised to safetensors). `PONDER_CACHE` overrides, so tests can share it."""
    env = os.environ.get("PONDER_CACHE")
    path = Path(env).expanduser() if env else ponder_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_path() -> Path:
    return ponder_home() / "ponder.db"


def runs_dir() -> Path:
    path = ponder_home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path
