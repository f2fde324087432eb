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
