"""The store file itself: refusing what is not a whole store, creating a new one atomically, clear errors
naming the file, and whether a recorded worker still lives."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from engine.errors import StoreError

_SQLITE_HEADER = b"SQLite format 3\x00"


def describe_store_error(path: str | Path, exc: BaseException) -> StoreError:
    """A store error a user can act on, naming the file. Ponder never deletes or overwrites a store."""
    text = str(exc)
    low = text.lower()
    if isinstance(exc, StoreError):
        return exc
    path = Path(path)
    unwritable = path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
    if "readonly" in low or "read-only" in low or isinstance(exc, PermissionError) or unwritable:
        return StoreError(f"the run store {path} cannot be written ({text}): Ponder writes to it on every command; "
                          "check the permissions of the file and its folder, or pass --store with another file.")
    if "locked" in low or "busy" in low:
        return StoreError(f"the run store {path} is locked by another process ({text}): wait for it, or close "
                          "the program holding it (another Ponder, or a database browser), then try again.")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return damaged_store(path, text)
    return StoreError(f"cannot use the run store {path}: {text}")


def damaged_store(path: str | Path, what: str) -> StoreError:
    return StoreError(f"the run store {path} is damaged: {what}. Ponder leaves it as it is: move it aside "
                      f"(for example rename it to {Path(path).name}.damaged) to start a new, empty store, or put "
                      "back a copy you trust; `sqlite3 FILE .recover` may save what is left in it.")


def _check_file(path: Path) -> None:
    """Refuse a store file that is plainly not a whole SQLite database (cheap: reads its header only)."""
    if path.is_dir():
        raise StoreError(f"the run store {path} is a folder, not a file: pass --store with a file name, "
                         "or move the folder aside.")
    if not path.is_file():
        raise StoreError(f"the run store {path} is not a regular file: pass --store with a file name.")
    with open(path, "rb") as f:
        head = f.read(100)
    size = path.stat().st_size
    if size == 0:
        raise damaged_store(path, "the file is empty (0 bytes)")
    if not head.startswith(_SQLITE_HEADER) or len(head) < 100:
        raise damaged_store(path, "the file is not an SQLite database")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    header_valid = head[24:28] == head[92:96]  # else the page count in the header is stale (old writers)
    wal = path.with_name(path.name + "-wal")
    writer_live = wal.exists() and wal.stat().st_size > 0  # a checkpoint in progress may extend the file
    if header_valid and pages and size < pages * page_size and not writer_live:
        raise damaged_store(path, f"the file is truncated ({size} bytes of {pages * page_size})")


def _create_store_file(path: Path, setup: Callable[[sqlite3.Connection], None]) -> None:
    """Create a new store with its schema under a temporary name, then link it into place: another
    process never sees a half-made (empty) store, and an existing file is never replaced."""
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}")
    for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        leftover.unlink(missing_ok=True)  # our own pid's leftover from a crash, never the store
    conn = sqlite3.connect(str(tmp), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        setup(conn)
    finally:
        conn.close()
    try:
        os.link(tmp, path)  # fails if the store appeared meanwhile: then that one is used
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: a rename, if the name is still free
        if not path.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def process_alive(pid: int | None, started: float | None) -> bool:
    """True if `pid` is a live (non-zombie) process that started at `started` (guards against pid reuse)."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False



def _create_time(pid: int | None) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time() if pid else None
    except psutil.Error:
        return None


