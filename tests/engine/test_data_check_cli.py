"""`ponder data check` on broken files: a report every time, exit 1 when nothing is usable, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

GOOD = json.dumps({"question": "What is 2 + 2?", "answer": "#### 4"})


def _check(path, *extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "desktop.entry", "data", "check", str(path), *extra], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("name", "content", "code", "says"), [
    ("truncated.jsonl", f"{GOOD}\n{GOOD[:20]}\n".encode(), 0, "invalid JSON"),  # one good row is enough
    ("missing.jsonl", b'{"q": "x", "answer": "1"}\n', 1, "question"),  # the mapped column is not there
    ("empty.jsonl", b"", 1, "empty"),
    ("latin1.csv", "question,answer\nCafé costs?,3\n".encode("latin-1") + b"What is 1+1?,2\n", 0, "UTF-8"),
    ("huge.jsonl", (json.dumps({"question": "x" * 5_000_000, "answer": "1"}) + "\n" + GOOD + "\n").encode(),
     0, "too long"),
])
def test_broken_files_get_a_report(tmp_path, name, content, code, says):
    path = tmp_path / name
    path.write_bytes(content)
    out = _check(path)
    assert out.returncode == code, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert says.lower() in out.stdout.lower(), out.stdout


def test_column_mapping(tmp_path):
    path = tmp_path / "mapped.jsonl"
    path.write_text(json.dumps({"problem": "What is 3 + 4?", "solution": "3 + 4 = 7\n#### 7"}) + "\n")
    out = _check(path, "--question", "problem", "--answer", "solution")
    assert out.returncode == 0 and "1 of 1 rows kept" in out.stdout, out.stdout


def _make(tmp_path, kind):
    import gzip

    if kind == "fifo":
        path = tmp_path / "pipe.jsonl"
        os.mkfifo(path)
    elif kind == "loop":
        path = tmp_path / "loop.csv"
        path.symlink_to(path)
    elif kind == "device":
        path = "/dev/zero"
    elif kind == "gzip":
        path = tmp_path / "data.jsonl"
        path.write_bytes(gzip.compress((GOOD + "\n").encode()))
    elif kind == "dup_header":
        path = tmp_path / "dup.csv"
        path.write_text("question,answer,answer\nWhat is 2 + 2?,4,5\n")
    elif kind == "unclosed":
        path = tmp_path / "unclosed.csv"
        path.write_text('question,answer\n"What is 2 + 2?,4\nWhat is 3 + 3?,6\n')
    return path


@pytest.mark.parametrize(("kind", "says"), [
    ("fifo", "named pipe"),  # used to hang for ever
    ("loop", "symbolic link that loops"),  # used to say "no such file"
    ("device", "character device"),  # used to say "the file is empty"
    ("gzip", "gzip-compressed"),  # used to say "not valid UTF-8"
    ("dup_header", "more than once"),  # used to keep one of the two answer columns
    ("unclosed", "never closed"),  # used to say "row has 1 fields"
])
def test_special_and_misread_files_are_named(tmp_path, kind, says):
    out = _check(_make(tmp_path, kind))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert says in out.stdout, out.stdout


def test_same_column_for_question_and_answer(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(GOOD + "\n")
    out = _check(path, "--question", "answer")
    assert out.returncode == 1 and "mapped to both" in out.stdout and "Traceback" not in out.stderr, out.stdout
