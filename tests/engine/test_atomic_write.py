"""engine.paths.atomic_write: a reader sees the old file or the whole new one, and a failed write leaves
the target as it was with no temporary file beside it."""

from __future__ import annotations

import os

import pytest

from engine.paths import atomic_write


def test_writes_text_and_bytes_and_replaces_the_old_file(tmp_path):
    target = tmp_path / "spec.toml"
    target.write_text("old", encoding="utf-8")
    assert atomic_write(target, "nouveau é") == target
    assert target.read_text(encoding="utf-8") == "nouveau é"
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]  # no temporary file left


def test_the_new_file_follows_the_umask_like_open(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o644


def test_a_failed_replace_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("keep", encoding="utf-8")  # a non-empty folder cannot be replaced by a file
    with pytest.raises(OSError):
        atomic_write(target, "new")
    assert (target / "inside").read_text(encoding="utf-8") == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
