"""Reading user files record by record, turning every problem into a message, never a traceback.

Each reader yields (row_number, record, problem): a dict and None, or None and the reason the
row cannot be read. Row numbers: JSONL counts lines from 1 (blank lines are skipped and are not
rows); CSV counts data rows from 1 (the header is not a row); JSON arrays, Parquet and saved
`datasets` folders count indices from 0. A problem with the whole file raises FileProblem.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.data.file_checks import duplicate_names, packed_problem, path_problem

Records = Iterator[tuple[int, dict | None, str | None]]
ROW_LABELS = {"jsonl": "line", "csv": "row", "json": "index", "parquet": "index", "datasets": "index"}
_SAVED_DATASET_MARKERS = ("dataset_dict.json", "state.json", "dataset_info.json")


class FileProblem(Exception):
    """The file as a whole cannot be read; the message says why, in the user's terms."""


class _Keys(dict):
    """A JSON object as read, remembering the keys that appeared more than once in it."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict:
    obj = _Keys(pairs)
    obj.duplicates = list(dict.fromkeys(k for k, c in Counter(k for k, _ in pairs).items() if c > 1))
    return obj


def _loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_object)


def _record_problem(value: Any) -> str | None:
    if isinstance(value, _Keys) and value.duplicates:
        return (f"the key {', '.join(map(repr, value.duplicates))} appears more than once in this object; "
                "keep one (JSON readers silently use the last)")
    return None


def _json_record(number: int, value: Any) -> tuple[int, dict | None, str | None]:
    """(row number, record, problem) for one parsed JSON value: an object is a record, anything else a problem."""
    if not isinstance(value, dict):
        return number, None, f"not a JSON object (a JSON {type(value).__name__})"
    if (problem := _record_problem(value)) is not None:
        return number, None, problem
    return number, value, None


def detect_format(path: Path) -> str:
    """'jsonl', 'json', 'csv', 'parquet' or 'datasets', from the name, else from the first bytes."""
    if path.is_dir():
        if any((path / m).exists() for m in _SAVED_DATASET_MARKERS):
            return "datasets"
        names = ", ".join(sorted(p.name for p in path.iterdir())[:20]) or "nothing"
        raise FileProblem(
            f"the folder is not a saved `datasets` folder (it has no {' or '.join(_SAVED_DATASET_MARKERS)}); "
            f"it contains: {names}. Pick a data file or a folder written by Dataset.save_to_disk."
        )
    suffix = path.suffix.lower()
    by_suffix = {
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".json": "json",
        ".csv": "csv",
        ".tsv": "csv",
        ".parquet": "parquet",
        ".pq": "parquet",
    }
    if suffix in by_suffix:
        return by_suffix[suffix]
    with path.open("rb") as f:
        head = f.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return {b"{": "jsonl", b"[": "json"}.get(first, "csv")


def _bad_bytes(raw: bytes, err: UnicodeDecodeError, offset: int) -> str:
    snippet = raw[max(0, err.start - 8) : err.end + 8]
    return (
        f"not valid UTF-8: byte {raw[err.start]:#04x} at byte offset {offset + err.start} "
        f"(near {snippet.decode('utf-8', 'replace')!r}); save the file as UTF-8"
    )


def read_jsonl(path: Path) -> Records:
    """One JSON object per line, read line by line so a bad line costs only that line."""
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw, start = raw[3:], start + 3
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield number, None, _bad_bytes(raw, err, start)
                continue
            try:
                value = _loads(text)
            except Exception as err:  # JSONDecodeError, RecursionError on deep nesting, huge ints
                yield number, None, f"invalid JSON: {str(err)[:120]}"
                continue
            yield _json_record(number, value)


def _decode_whole(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise FileProblem(f"line {line}: {_bad_bytes(data, err, 0)}") from None


def read_json(path: Path) -> tuple[Records, str]:
    """A JSON array of objects, {"data": [...]}-style wrappers, or {column: [values]}.
    A .json file that is really JSON Lines is read as JSONL (the second value says which)."""
    text = _decode_whole(path.read_bytes())
    if not text.strip():
        raise FileProblem("the file is empty")
    try:
        value = _loads(text)
    except Exception as err:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) > 1 and lines[0].lstrip().startswith("{"):
            return read_jsonl(path), "jsonl"
        raise FileProblem(f"not valid JSON: {str(err)[:160]}") from None
    if isinstance(value, dict):
        if (problem := _record_problem(value)) is not None:
            raise FileProblem(f"the top-level object: {problem}")
        value = _records_in(value)
    if not isinstance(value, list):
        raise FileProblem('the JSON holds no list of records; expected [{...}, ...] or {"column": [...]}')

    def records() -> Records:
        for i, item in enumerate(value):
            yield _json_record(i, item)

    return records(), "json"


def _records_in(obj: dict) -> list | None:
    """The records inside a JSON object: {column: [values]} or a wrapper such as {"data": [...]}."""
    values = list(obj.values())
    if values and all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
        if not all(isinstance(x, dict) for x in values[0]):  # columns, not a wrapper
            return [dict(zip(obj, row, strict=True)) for row in zip(*values, strict=True)]
    return next(
        (v for v in values if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)), None
    )


def read_csv(path: Path) -> tuple[Records, list[str]]:
    """A header row, then data rows. Rows that hold bytes that are not UTF-8 are dropped, each
    with the byte offset; the rest of the file is still read."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    bad_lines: dict[int, str] = {}  # physical line -> problem
    offset = 0
    for number, raw in enumerate(data.splitlines(keepends=True), 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad_lines[number] = _bad_bytes(raw, err, offset)
        offset += len(raw)
    text = data.decode("utf-8", "replace")  # the bad rows are dropped, so no U+FFFD is ever kept
    if not text.strip():
        raise FileProblem("the file is empty")
    first = text.split("\n", 1)[0]
    delimiter = (
        "\t"
        if path.suffix.lower() == ".tsv" or ("," not in first and "\t" in first)
        else ";"
        if "," not in first and ";" in first
        else ","
    )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    old_limit = csv.field_size_limit(sys.maxsize)  # our own limit comes later, with a clear reason
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as err:
        raise FileProblem(f"cannot read the CSV header: {err}") from None
    finally:
        csv.field_size_limit(old_limit)
    if 1 in bad_lines:
        raise FileProblem(f"the header (line 1) is {bad_lines[1]}")
    if (problem := duplicate_names(header)) is not None:
        raise FileProblem(problem)
    lines = io.StringIO(text, newline="").readlines()  # the physical lines, as csv counts them
    if reader.line_num >= len(lines) > 1 and _unclosed_quote(lines, 1, reader.line_num, delimiter):
        raise FileProblem("line 1 (the header): a quoted name opened there is never closed, so the whole file "
                          "was read as the header; add the closing quote")
    return _csv_rows(reader, header, bad_lines, lines, delimiter), header


def _unclosed_quote(lines: list[str], first: int, last: int, delimiter: str) -> bool:
    """Whether physical lines first..last (1-based) end inside a quoted field."""
    strict = csv.reader(io.StringIO("".join(lines[first - 1 : last]), newline=""), delimiter=delimiter,
                        strict=True)
    try:
        for _ in strict:
            pass
    except csv.Error as err:
        return "unexpected end of data" in str(err)
    return False


def _csv_rows(reader: Any, header: list[str], bad_lines: dict[int, str], lines: list[str],
              delimiter: str) -> Records:
    old_limit = csv.field_size_limit(sys.maxsize)
    try:
        yield from _csv_loop(reader, header, bad_lines, lines, delimiter)
    finally:
        csv.field_size_limit(old_limit)


def _csv_loop(reader: Any, header: list[str], bad_lines: dict[int, str], physical: list[str],
              delimiter: str) -> Records:
    number, last_line = 0, reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            number += 1
            yield number, None, f"CSV error: {err}"
            if reader.line_num == last_line:
                return  # no progress: stop rather than loop
            last_line = reader.line_num
            continue
        lines = range(last_line + 1, reader.line_num + 1)  # the physical lines of this row
        last_line = reader.line_num
        if not any(f.strip() for f in fields):
            continue  # a blank line is not a row
        number += 1
        problem = next((f"line {ln}: {bad_lines[ln]}" for ln in lines if ln in bad_lines), None)
        if problem:
            yield number, None, problem
        elif lines.stop > len(physical) and _unclosed_quote(physical, lines.start, lines.stop - 1, delimiter):
            raise FileProblem(f"line {lines.start}: a quoted field opened on this line is never closed, so "
                              f"every line after it (to line {lines.stop - 1}, the end of the file) was read "
                              'as part of it; add the closing quote (a quote inside a field is written "")')
        elif len(fields) != len(header) and len(lines) > 1:
            yield number, None, (f"lines {lines.start}-{lines.stop - 1} read as one row of {len(fields)} "
                                 f"fields (the header has {len(header)}): a quote opened on line "
                                 f"{lines.start} is probably not closed where it should be")
        elif len(fields) != len(header):
            yield number, None, f"row has {len(fields)} fields but the header has {len(header)}"
        else:
            yield number, dict(zip(header, fields, strict=True)), None


def read_parquet(path: Path) -> tuple[Records, list[str]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        columns = list(pf.schema_arrow.names)
    except Exception as err:
        raise FileProblem(f"cannot read it as Parquet: {str(err)[:200]}") from None
    if (problem := duplicate_names(columns)) is not None:
        raise FileProblem(problem.replace("the header names", "the Parquet schema names"))

    def records() -> Records:
        index = 0
        try:
            for batch in pf.iter_batches(batch_size=1024):
                for item in batch.to_pylist():
                    yield index, item, None
                    index += 1
        except Exception as err:
            yield index, None, f"unreadable from here on: {str(err)[:160]}"

    return records(), columns


def read_saved_dataset(path: Path) -> tuple[Records, list[str]]:
    """A folder written by Dataset.save_to_disk or DatasetDict.save_to_disk (all splits in order,
    indices counted across them)."""
    try:
        import datasets

        loaded = datasets.load_from_disk(str(path))
    except Exception as err:
        raise FileProblem(f"cannot load the saved dataset: {str(err)[:200]}") from None
    parts = list(loaded.values()) if isinstance(loaded, datasets.DatasetDict) else [loaded]
    columns = list(dict.fromkeys(c for part in parts for c in part.column_names))

    def records() -> Records:
        index = 0
        for part in parts:
            for batch in part.iter(batch_size=1024):
                keys = list(batch)
                for values in zip(*batch.values(), strict=True):
                    yield index, dict(zip(keys, values, strict=True)), None
                    index += 1

    return records(), columns


def open_records(path: Path) -> tuple[Records, str, list[str] | None]:
    """(records, format, columns from the schema or None when only the rows can tell)."""
    if (problem := path_problem(path)) is not None:
        raise FileProblem(problem)
    fmt = detect_format(path)
    if fmt != "datasets" and path.stat().st_size == 0:
        raise FileProblem("the file is empty")
    if fmt != "datasets":
        with path.open("rb") as f:  # a regular file (path_problem): this cannot block
            head = f.read(16)
        if (problem := packed_problem(head)) is not None:
            raise FileProblem(problem)
    if fmt == "jsonl":
        return read_jsonl(path), fmt, None
    if fmt == "json":
        records, fmt = read_json(path)
        return records, fmt, None
    if fmt == "csv":
        records, columns = read_csv(path)
        return records, fmt, columns
    if fmt == "parquet":
        records, columns = read_parquet(path)
        return records, fmt, columns
    records, columns = read_saved_dataset(path)
    return records, fmt, columns
