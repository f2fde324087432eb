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
    try:
        home.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        from engine.errors import HomeError

        where = f"PONDER_HOME ({home})" if env else f"the Ponder home {home}"
        raise HomeError(f"{where} is a file, not a folder (or lies under one): point PONDER_HOME at a folder, "
                        "or move that file aside.") from None
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


def resources_dir() -> Path:
    """Ponder's shipped files (specs, rewards, icons, style): `resources/` of the source checkout when
    running from one (or an editable install), else the copy a wheel installs as data files under
    `{prefix}/share/ponder/resources`. Its parent holds `packaging/` too, so a spec's
    "resources/rewards/example.py" resolves against `resources_dir().parent` in both layouts."""
    checkout = Path(__file__).resolve().parents[1] / "resources"
    if (checkout / "specs").is_dir():
        return checkout
    import sys

    installed = Path(sys.prefix) / "share" / "ponder" / "resources"
    if (installed / "specs").is_dir():
        return installed
    import importlib.metadata

    try:  # a --user or --prefix install: ask the distribution where its data files went
        files = importlib.metadata.distribution("ponder").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.parts[-4:-1] == ("ponder", "resources", "specs"):
            return Path(file.locate()).resolve().parents[1]
    raise FileNotFoundError("Ponder's resources folder is missing: reinstall Ponder (the wheel installs it "
                            f"under {installed.parent}).")


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path` so a reader sees the old file or the whole new one, never half:
    a temporary file in the same folder, flushed to disk (fsync), then renamed over `path` (os.replace).
    A failure leaves `path` as it was and no temporary file behind."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: two writers never share one
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
