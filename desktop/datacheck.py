"""Preview and validate a data file in a separate process.

    python -m desktop.datacheck FILE [--question COL] [--answer COL] [--reasoning COL] [--difficulty COL]

The GUI runs this with QProcess and reads one JSON object from stdout:

    {"columns": [...], "rows": [[...], ...] (the first rows, as text), "total": int | null,
     "report": {"ok": bool, "text": str, "kept": int, "dropped": int} | null, "error": str | null}

It runs outside the GUI process because reading Parquet or a saved `datasets` folder, and
the engine's validation, may import pyarrow or datasets, which the GUI never loads.
JSONL, JSON and CSV previews are read here with the standard library.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from engine.data.readers import duplicate_names, packed_problem, path_problem

PREVIEW_ROWS = 20


class NoPreview(Exception):
    """The format needs more than the standard library (Parquet, a datasets folder)."""


def _text(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def preview(path: Path, n: int = PREVIEW_ROWS) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and the first n rows of a JSONL, JSON or CSV/TSV file (standard library only)."""
    suffix = path.suffix.lower()
    rows: list[dict[str, Any]] = []
    if suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    obj = json.loads(line)
                    rows.append(obj if isinstance(obj, dict) else {"value": obj})
                if len(rows) >= n:
                    break
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        if isinstance(data, dict):  # {"data": [...]} or {"train": [...]}: the first list of rows
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        rows = [r if isinstance(r, dict) else {"value": r} for r in data[:n]]
    elif suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            problem = duplicate_names([h.strip() for h in reader.fieldnames or []])
            if problem:  # the engine refuses such a file too; DictReader would keep one of the columns
                raise csv.Error(problem)
            for row in reader:
                rows.append(row)
                if len(rows) >= n:
                    break
    else:
        raise NoPreview(suffix or "a folder")
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns, rows


def _engine_report(path: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    try:
        from engine.data.files import validate_file
    except ImportError:
        return None  # the engine's validation is not installed in this version
    report = validate_file(path, question=args.question, answer=args.answer,
                          reasoning=args.reasoning or None, difficulty=args.difficulty or None)
    kept = getattr(report, "kept", None)
    dropped = getattr(report, "dropped", None)
    out = {"ok": bool(report.ok), "text": report.format(),
           "kept": len(kept) if isinstance(kept, list | tuple) else kept,
           "dropped": (sum(dropped.values()) if isinstance(dropped, dict) else
                       len(dropped) if isinstance(dropped, list | tuple) else dropped),
           "columns": list(getattr(report, "columns_found", []) or []),
           "rows": [dict(r) for r in (kept or [])[:PREVIEW_ROWS]] if isinstance(kept, list | tuple) else []}
    return out


def check(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"columns": [], "rows": [], "report": None, "error": None}
    problem = path_problem(path)  # the engine's rule: only a regular file or a folder is opened
    if problem is None and path.is_file():
        with path.open("rb") as f:
            problem = packed_problem(f.read(16))
    if problem == "no such file or folder":
        problem = f"no such file or folder: {path}"
    if problem is not None:
        out["error"] = problem if problem.startswith("no such") else f"{path.name}: {problem}"
        return out
    try:
        columns, rows = preview(path)
        out["columns"] = columns
        out["rows"] = [[_text(r.get(c, "")) for c in columns] for r in rows]
    except NoPreview:
        pass  # Parquet or a datasets folder: the engine's report carries columns and rows
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        out["error"] = f"could not read {path.name}: {exc}"
        return out
    try:
        report = _engine_report(path, args)
    except Exception as exc:  # noqa: BLE001 - the report is shown to the user, whatever went wrong
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    if report is not None:
        cols, rows = report.pop("columns"), report.pop("rows")
        if not out["columns"]:
            out["columns"] = cols or (list(rows[0]) if rows else [])
        if not out["rows"] and rows:
            out["rows"] = [[_text(r.get(c, "")) for c in out["columns"]] for r in rows]
    out["report"] = report
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m desktop.datacheck")
    parser.add_argument("path", type=Path)
    parser.add_argument("--question", default="question")
    parser.add_argument("--answer", default="answer")
    parser.add_argument("--reasoning", default="")
    parser.add_argument("--difficulty", default="")
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(check(args.path.expanduser(), args), ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
