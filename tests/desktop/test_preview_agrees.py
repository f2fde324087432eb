"""The New-run preview of a user file shows what `ponder data check` reports, on the messy files of
the data tests: the same counts, problems, columns and first rows, and the same verdict."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from PySide6.QtCore import QProcess

from desktop.widgets.file_check import check_message
from engine import cli
from engine.data.files import validate_file
from tests.engine.test_data_files import GSM8K, _special, write_jsonl
from tests.processes import running_children


def _files(tmp_path) -> list[tuple[str, dict]]:
    """(path, column mapping) for each messy file; the cases of tests/engine/test_data_files.py."""
    out: list[tuple[str, dict]] = []

    def add(path, **mapping):
        out.append((str(path), {"question": "question", "answer": "answer", **mapping}))

    add(write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K))
    truncated = write_jsonl(tmp_path / "truncated.jsonl", GSM8K[:2])
    with truncated.open("a") as f:
        f.write(json.dumps(GSM8K[2])[:40])  # the writer died mid-line
    add(truncated)
    add(write_jsonl(tmp_path / "m.jsonl", [{"problem": "1+1?", "solution": "2"}] * 2), answer="solution")
    (tmp_path / "empty.jsonl").write_bytes(b"")
    add(tmp_path / "empty.jsonl")
    (tmp_path / "blank.jsonl").write_text("\n  \n\n")
    add(tmp_path / "blank.jsonl")
    add(tmp_path / "nope.jsonl")  # no such file
    good = [json.dumps(r).encode() for r in GSM8K]
    (tmp_path / "latin.jsonl").write_bytes(b"\n".join([good[0], b'{"question": "caf\xe9?", "answer": "3"}',
                                                       good[1]]) + b"\n")
    add(tmp_path / "latin.jsonl")
    (tmp_path / "bad.json").write_bytes(b'[{"question": "a", "answer": "1"},\n {"question": "b\xff", "answer": "2"}]')
    add(tmp_path / "bad.json")
    add(write_jsonl(tmp_path / "big.jsonl", [GSM8K[0], {"question": "x" * 5_000_000, "answer": "1"}, GSM8K[1]]))
    messy = [{"question": "", "answer": "1"}, {"question": "Q2", "answer": None}, {"question": "Q3", "answer": [1, 2]},
             {"question": "Q4", "answer": "\\boxed{42"}, {"question": "Q5", "answer": "steps\n####   "},
             {"question": 7, "answer": "1"}, {"question": "Q7 \ud800", "answer": "1"},
             {"question": "Q8", "answer": "a very long\nmultiline answer"},
             {"question": "Q9", "answer": "The answer is $\\boxed{\\frac{3}{4}}$."}]
    (tmp_path / "messy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in messy) + "[" * 100_000 + "\n")
    add(tmp_path / "messy.jsonl")
    (tmp_path / "d.csv").write_bytes(b'question,answer,level\nWhat is 1+1?,2,1\n"A question\nover two lines, with a '
                                     b'comma",#### 3,Level 2\ncaf\xe9?,4,1\ntoo,many,fields,here\n\nLast?,5,9\n')
    add(tmp_path / "d.csv", difficulty="level")
    (tmp_path / "h.csv").write_text("question,answer\n" + "q" * 200_000 + ",1\nok?,2\n")
    add(tmp_path / "h.csv")
    (tmp_path / "c.parquet").write_bytes(b"PAR1 this is not really parquet")
    add(tmp_path / "c.parquet")
    (tmp_path / "cols.json").write_text(json.dumps({"question": ["a?", "b?"], "answer": [1, 2]}))
    add(tmp_path / "cols.json")
    (tmp_path / "wrap.json").write_text(json.dumps({"version": 1, "data": GSM8K}))
    add(tmp_path / "wrap.json")
    (tmp_path / "broken.json").write_text('[{"question": "a", "answer": 1}, {"quest')
    add(tmp_path / "broken.json")
    for kind in ("fifo", "device", "loop", "dangling", "gzip", "gzip_csv", "utf16"):
        add(_special(tmp_path, kind))
    (tmp_path / "dup.csv").write_text("question,answer,notes,answer\nWhat is 2+2?,4,easy,5\n")
    add(tmp_path / "dup.csv")
    (tmp_path / "dup.jsonl").write_text('{"question": "What is 2+2?", "answer": "4", "answer": "5"}\n'
                                        '{"question": "What is 3+3?", "answer": "6"}\n')
    add(tmp_path / "dup.jsonl")
    (tmp_path / "q.csv").write_text('question,answer\nWhat is 1+1?,2\n"What is 2+2?,4\nWhat is 3+3?,6\n')
    add(tmp_path / "q.csv")
    (tmp_path / "late.csv").write_text('question,answer\n"What is 1+1?,2\nWhat is 2+2?",4,extra\nWhat is 5+5?,10\n')
    add(tmp_path / "late.csv")
    add(write_jsonl(tmp_path / "roles.jsonl", [{"text": "What is 2+2?", "a": "4"}]), question="text", answer="text")
    return out


def _ponder_data_check(path: str, mapping: dict) -> tuple[int, dict]:
    """`ponder data check PATH --json` with the mapping: its exit code and its JSON."""
    argv = ["data", "check", path, "--json"]
    for key, column in mapping.items():
        argv += [f"--{key}", column]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return code, json.loads(out.getvalue())


@pytest.fixture
def page(new_run_page):
    return new_run_page


def _preview_of(page, qtbot, path: str, mapping: dict) -> dict:
    data = page.data
    data.check_result = None
    page.set_spec_dict({"name": "preview", "data": {"source": path, **mapping}})
    want = (mapping["question"], mapping["answer"], mapping.get("reasoning", ""), mapping.get("difficulty", ""))
    qtbot.waitUntil(lambda: data.check_result is not None and not data.checking()
                    and data._checked_mapping == want, timeout=30000)
    table = data.preview
    return {"result": data.check_result, "status": data.check_status.text(), "error": data.check_error(),
            "headers": [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())],
            "cells": [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())],
            "numbers": [table.verticalHeaderItem(r).text().split()[-1] for r in range(table.rowCount())],
            "report": data.report_text.toPlainText()}


def test_preview_and_ponder_data_check_agree_on_messy_files(page, qtbot, tmp_path):
    files = _files(tmp_path)
    disagree, verdicts, numbers = [], {}, {}
    for path, mapping in files:
        code, reference = _ponder_data_check(path, mapping)
        report = validate_file(path, mapping["question"], mapping["answer"], difficulty=mapping.get("difficulty"))
        assert reference["kept"] == len(report.kept) and reference["fatal"] == report.fatal  # the engine's reader
        shown = _preview_of(page, qtbot, path, mapping)
        usable, message = check_message(reference)
        expected = {"result": reference, "status": message, "error": None if usable else message,
                    "headers": reference["columns"], "cells": reference["preview"], "report": reference["text"],
                    "numbers": [str(n) for n in reference["preview_numbers"]]}
        for key, value in expected.items():
            if shown[key] != value:
                disagree.append(f"{path}: {key}: preview {str(shown[key])[:300]!r} != check {str(value)[:300]!r}")
        assert usable == (code == 0), path  # the command's exit code: 1 when no row is usable
        verdicts[path.rsplit("/", 1)[-1]] = shown["status"]
        numbers[path.rsplit("/", 1)[-1]] = shown["numbers"]
    assert not disagree, "\n".join(disagree)
    # the preview says what the command says, in its words (not only "the same as itself")
    assert verdicts["gsm8k.jsonl"] == "✓ 3 rows usable"
    assert verdicts["messy.jsonl"] == "✓ 1 rows usable, 9 dropped (see below)"
    assert verdicts["d.csv"] == "✓ 3 rows usable, 2 dropped (see below)"
    assert numbers["d.csv"] == ["1", "2", "5"]  # rows 3 and 4 are unreadable: listed as problems, not shown
    assert "gzip-compressed" in verdicts["data.jsonl"] and "named pipe" in verdicts["pipe.jsonl"]
    assert verdicts["m.jsonl"].startswith("m.jsonl cannot be used: column 'question' (for question) not found")
    assert not page.start_button.isEnabled()  # the last file maps one column to two roles


def test_closing_the_page_ends_a_check_still_running(page, qtbot, tmp_path):
    path = write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K)
    page.set_spec_dict({"name": "preview", "data": {"source": str(path)}})
    qtbot.waitUntil(lambda: page.data.file_check.running(), timeout=5000)
    procs = page.findChildren(QProcess)
    assert procs and any(p.state() != QProcess.ProcessState.NotRunning for p in procs)
    page.close()
    assert all(p.state() == QProcess.ProcessState.NotRunning for p in procs)
    assert running_children() == {}  # the check's process is gone, and it started none that outlived it
