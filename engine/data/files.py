"""User data files -> rows of the schema, with a validation report of what was kept and why not.

validate_file never raises for a bad file: every problem becomes a dropped row (row number,
reason) or the report's `fatal` message. Answers are normalised: GSM8K "#### 1,234" -> "1234"
(the text before #### becomes the reasoning when no reasoning column is mapped),
"\\boxed{42}" -> "42", "\\frac{3}{4}" -> "3/4", 42.0 -> "42"; invisible format characters (bidi
marks, zero-width spaces) are dropped. Each role (question, answer, ...) needs its own column.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data.base import row_id
from engine.data.readers import ROW_LABELS, FileProblem, open_records
from engine.data.sketch import to_sketch
from engine.rewards.parsing import strip_format_chars

MAX_FIELD_CHARS = 20_000
MAX_ANSWER_CHARS = 200
SAMPLE_ROWS = 20  # raw records a report keeps, for a preview of the file
SAMPLE_CHARS = 300  # a preview cell's text is clipped to this
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's "<<48/2=24>>" annotations
_FRAC = re.compile(r"^(-?)\\d?frac\{(-?\d+)\}\{(\d+)\}$")
_NUMBER = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d+)?|-?\d+\.0+")


@dataclass
class Report:
    """What validate_file made of a file.

    Unless `fatal` is set before any row was read, len(kept) + len(dropped) == total_rows.
    Row numbers follow `row_label`: "line" (JSONL, 1-based, blank lines skipped), "row" (CSV
    data rows, 1-based, header excluded), "index" (JSON arrays, Parquet, datasets; 0-based).
    """

    path: str
    total_rows: int = 0
    kept: list[dict] = field(default_factory=list)
    dropped: list[tuple[int, str]] = field(default_factory=list)
    columns_found: list[str] = field(default_factory=list)
    fatal: str | None = None
    row_label: str = "row"
    sample: list[tuple[int, dict]] = field(default_factory=list)  # the first SAMPLE_ROWS records read: (number, record)

    @property
    def ok(self) -> bool:
        return self.fatal is None and bool(self.kept)

    def format(self, max_problems: int = 10) -> str:
        name = Path(self.path).name or self.path
        lines = []
        if self.fatal:
            lines.append(f"{name} cannot be used: {self.fatal}")
        if self.total_rows or not self.fatal:
            lines.append(
                f"{name}: {len(self.kept)} of {self.total_rows} rows kept, {len(self.dropped)} dropped."
            )
        if self.dropped:
            lines.append("Dropped, by reason:")
            for reason, count in Counter(_reason_kind(r) for _, r in self.dropped).most_common():
                lines.append(f"  {count:>7}  {reason}")
            lines.append("First problems:")
            for number, reason in sorted(self.dropped)[:max_problems]:
                lines.append(f"  {self.row_label} {number}: {reason}")
            if len(self.dropped) > max_problems:
                lines.append(f"  ... and {len(self.dropped) - max_problems} more")
        if self.columns_found:
            shown = ", ".join(self.columns_found[:30]) + (", ..." if len(self.columns_found) > 30 else "")
            lines.append(f"Columns found: {shown}")
        return "\n".join(lines)

    def as_dict(self, max_problems: int = 10) -> dict[str, Any]:
        """The report as plain JSON values (`ponder data check --json`): counts, the first problems,
        the columns found and a preview of the first rows read as text, clipped to SAMPLE_CHARS, with
        their numbers (by `row_label`; rows that could not be read are among the problems instead)."""
        columns = list(self.columns_found)
        for _, record in self.sample:
            columns += [str(k) for k in record if str(k) not in columns]
        return {"path": self.path, "ok": self.ok, "fatal": self.fatal, "total_rows": self.total_rows,
                "kept": len(self.kept), "dropped": len(self.dropped), "row_label": self.row_label,
                "problems": [[number, reason] for number, reason in sorted(self.dropped)[:max_problems]],
                "columns": columns,
                "preview": [[_cell(record.get(c, "")) for c in columns] for _, record in self.sample],
                "preview_numbers": [number for number, _ in self.sample],
                "text": self.format(max_problems)}


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate shows as \ud800
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def _reason_kind(reason: str) -> str:
    """The group a reason is counted in: its text before any detail (":" or " (")."""
    reason = re.sub(r"^line \d+: ", "", reason)
    return re.split(r":| \(", reason, maxsplit=1)[0]


class _Drop(Exception):
    """One row cannot be used; the message is the reason."""


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Drop(f"{what} is not text (got {type(value).__name__})")
    return value


def _boxed(text: str) -> str | None:
    """The content of the last \\boxed{...}, braces matched; None if there is none."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    raise _Drop("unparseable answer: \\boxed{ is never closed")


def normalize_answer(value: Any) -> tuple[str, str | None]:
    """(canonical answer, rationale or None). Raises _Drop with the reason when unusable."""
    if value is None:
        raise _Drop("empty answer")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Drop(f"unparseable answer: got {type(value).__name__}, expected a number or text")
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Drop(f"unparseable answer: {value}")
        return (str(int(value)) if value.is_integer() else repr(value)), None
    text, rationale = strip_format_chars(value).strip(), None  # bidi marks, zero-width spaces: invisible
    if not text:
        raise _Drop("empty answer")
    if "####" in text:
        before, text = text.rsplit("####", 1)
        rationale = _CALCULATOR.sub("", before).strip() or None
        if not text.strip():
            raise _Drop("unparseable answer: nothing after '####'")
    else:
        boxed = _boxed(text)
        if boxed is not None:
            rationale = text if text.strip("$ ") != f"\\boxed{{{boxed}}}" else None
            text = boxed
    answer = text.strip().strip("$").strip().rstrip(".").strip()
    if m := _FRAC.match(answer):
        negative = (m[1] == "-") != m[2].startswith("-")
        answer = f"{'-' if negative else ''}{m[2].lstrip('-')}/{m[3]}"
    if _NUMBER.fullmatch(answer):
        answer = answer.replace(",", "")
        answer = answer.split(".")[0] if re.fullmatch(r"-?\d+\.0+", answer) else answer
    if not answer:
        raise _Drop("empty answer")
    if "\n" in answer or len(answer) > MAX_ANSWER_CHARS:
        raise _Drop(
            f"unparseable answer: {answer[:40]!r}... "
            "(expected a number or short text, '#### 42' or '\\boxed{42}')"
        )
    return answer, rationale


def parse_difficulty(value: Any) -> int:
    """1..5 from 3, 3.0, "3" or "Level 3"; 0 (unknown) for anything else."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        m = re.search(r"\d+", value)
        value = int(m.group()) if m and len(m.group()) < 3 else 0
    return value if isinstance(value, int) and 1 <= value <= 5 else 0


def _check_text(value: Any, column: str, limit: int) -> None:
    if isinstance(value, str):
        if len(value) > limit:
            raise _Drop(f"field too long ({len(value)} chars > {limit}) in column {column!r}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Drop(f"invalid Unicode (a lone surrogate) in column {column!r}") from None


def _to_row(record: dict, columns: dict[str, str], limit: int) -> dict:
    for role in ("question", "answer"):
        if columns[role] not in record:
            raise _Drop(f"missing column {columns[role]!r}")
    for column in columns.values():
        _check_text(record.get(column), column, limit)
    question = _text(record[columns["question"]], "question").strip()
    if not question:
        raise _Drop("empty question")
    answer, rationale = normalize_answer(record[columns["answer"]])
    if "reasoning" in columns:
        reasoning = _text(record.get(columns["reasoning"]), "reasoning").strip()
    else:
        reasoning = rationale or ""
    difficulty = parse_difficulty(record.get(columns["difficulty"])) if "difficulty" in columns else 0
    return {
        "task": "user",
        "question": question,
        "answer": answer,
        "difficulty": difficulty,
        "reasoning": reasoning,
        "sketch": to_sketch(reasoning) if reasoning else "",
    }


def validate_file(
    path: str | Path,
    question: str,
    answer: str,
    reasoning: str | None = None,
    difficulty: str | None = None,
    *,
    max_field_chars: int = MAX_FIELD_CHARS,
) -> Report:
    """Read a JSONL, JSON, CSV/TSV, Parquet file or a saved `datasets` folder with the given
    column names, and report the rows kept (in the row schema) and dropped (with the reason).
    Never raises for a bad file."""
    path = Path(path)
    columns = {"question": question, "answer": answer}
    columns |= {k: v for k, v in (("reasoning", reasoning), ("difficulty", difficulty)) if v}
    report = Report(path=str(path))
    roles: dict[str, str] = {}
    for role, column in columns.items():
        if column in roles:
            report.fatal = (f"column {column!r} is mapped to both {roles[column]} and {role}; "
                            "each role needs its own column")
            return report
        roles[column] = role
    seen_keys: dict[str, None] = {}
    ids: Counter[str] = Counter()
    try:
        records, fmt, schema = open_records(path)
        report.row_label = ROW_LABELS[fmt]
        if schema is not None:
            seen_keys |= dict.fromkeys(schema)
        for number, record, problem in records:
            report.total_rows += 1
            if record is None:
                report.dropped.append((number, problem or "unreadable"))
                continue
            if schema is None:
                seen_keys |= dict.fromkeys(str(k) for k in record)
            if len(report.sample) < SAMPLE_ROWS:
                report.sample.append((number, record))
            try:
                row = _to_row(record, columns, max_field_chars)
            except _Drop as drop:
                report.dropped.append((number, str(drop)))
                continue
            base = row_id("user", row["question"])
            ids[base] += 1  # a repeated question keeps its rows, each with its own id
            report.kept.append({"id": base if ids[base] == 1 else f"{base}-{ids[base]}", **row})
    except FileProblem as problem:
        report.fatal = str(problem)
    except Exception as err:  # a reader or the datasets library failed in a way not foreseen
        report.fatal = f"cannot read the file: {type(err).__name__}: {str(err)[:200]}"
    report.columns_found = list(seen_keys)
    if report.fatal is None:
        if report.total_rows == 0:
            report.fatal = "the file has no rows"
        elif seen_keys:
            missing = [f"{c!r} (for {role})" for role, c in columns.items() if c not in seen_keys]
            if missing:
                report.fatal = (
                    f"column {', '.join(missing)} not found; columns found: {', '.join(list(seen_keys)[:30])}"
                )
    return report
