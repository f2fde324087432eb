"""Checks of a user's file as a whole, before it is read: a regular file (not a FIFO or a device), not
compressed or UTF-16, no column named twice. Each returns the reason in the user's terms, or None."""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from pathlib import Path


_SPECIAL = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def path_problem(path: Path, *, allow_dir: bool = True) -> str | None:
    """Why `path` cannot be opened as a data file (None when it can), found with stat() alone,
    before anything is opened: only a regular file (or, with allow_dir, a folder) is read, since
    opening a FIFO blocks for ever and a device such as /dev/zero never ends."""
    try:
        mode = path.stat().st_mode  # follows symbolic links
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "it is a symbolic link that loops (it leads back to itself); point to the real file"
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            if path.is_symlink():
                return f"it is a symbolic link to {os.readlink(path)}, which does not exist"
            return "no such file or folder"
        return f"cannot be read: {err.strerror or err}"
    if stat.S_ISDIR(mode):
        return None if allow_dir else "it is a folder, not a file"
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _SPECIAL if test(mode)), "a special file")
        folder = " or a saved `datasets` folder" if allow_dir else ""
        return f"it is {kind}, not a regular file; only regular files{folder} are read"
    if not os.access(path, os.R_OK):
        return "permission denied: this user may not read it"
    return None


# first bytes -> (format, how to unpack it); such files are not text, whatever their name says
_PACKED = ((b"\x1f\x8b", "gzip-compressed", "gunzip FILE"), (b"PK\x03\x04", "a zip archive", "unzip FILE"),
           (b"BZh", "bzip2-compressed", "bunzip2 FILE"), (b"\xfd7zXZ\x00", "xz-compressed", "unxz FILE"),
           (b"\x28\xb5\x2f\xfd", "zstd-compressed", "unzstd FILE"),
           (b"7z\xbc\xaf\x27\x1c", "a 7z archive", "7z x FILE"))


def packed_problem(head: bytes) -> str | None:
    """Why a file whose first bytes are `head` is not a text data file: compressed, an archive or
    UTF-16 text (None for anything else, including Parquet)."""
    for magic, what, unpack in _PACKED:
        if head.startswith(magic) and _PACKED_MORE.get(magic, lambda h: True)(head):
            return f"the file is {what}, not text; unpack it first ({unpack}) and pick the unpacked file"
    little = head.startswith(b"\xff\xfe") and head[3:4] == b"\x00"  # a BOM, then ASCII as two bytes each
    big = head.startswith(b"\xfe\xff") and head[2:3] == b"\x00"
    if little or big:
        return "the file is UTF-16 text; save it as UTF-8"
    return None


# header bytes after the magic that a real file has (so a text line that happens to start alike is text)
_PACKED_MORE = {b"\x1f\x8b": lambda h: h[2:3] == b"\x08" and h[3:4] < b"\x20",  # deflate, no reserved flags
                b"BZh": lambda h: h[4:10] == b"1AY&SY"}


def duplicate_names(names: list[str]) -> str | None:
    """A message naming each column that appears more than once (1-based positions), else None:
    a reader would otherwise silently keep one of them."""
    counts = Counter(names)
    dupes = [n for n, c in counts.items() if c > 1 and str(n).strip()]
    if not dupes:
        return None
    where = "; ".join(f"{n!r} (columns {', '.join(str(i + 1) for i, m in enumerate(names) if m == n)})"
                      for n in dupes)
    return f"the header names a column more than once: {where}; rename them so each column has its own name"
