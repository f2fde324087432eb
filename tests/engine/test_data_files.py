"""User data: validate_file on good and broken files (a Report every time, never a traceback),
answer normalisation, and load_examples on a user file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data import DataError, load_examples, split_of
from engine.data.files import Report, normalize_answer, parse_difficulty, validate_file
from engine.data.readers import packed_problem

# Three real GSM8K train rows (question, answer with calculator annotations and "#### N").
GSM8K = [
    {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
        "clips in May. How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
    },
    {
        "question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of "
        "babysitting. How much did she earn?",
        "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n"
        "Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10",
    },
    {
        "question": "James writes a 3-page letter to 2 different friends twice a week. How many pages "
        "does he write a year?",
        "answer": "He writes each friend 3*2=<<3*2=6>>6 pages a week\n"
        "So he writes 6*2=<<6*2=12>>12 pages every week\n"
        "That means he writes 12*52=<<12*52=624>>624 pages a year\n#### 624",
    },
]
SCHEMA_KEYS = {"id", "task", "question", "answer", "difficulty", "reasoning", "sketch"}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def check(report: Report) -> Report:
    """What every report must satisfy, whatever the file."""
    assert isinstance(report, Report)
    text = report.format()
    assert isinstance(text, str) and text
    if report.fatal is None or report.total_rows:
        assert len(report.kept) + len(report.dropped) == report.total_rows
    for row in report.kept:
        assert set(row) == SCHEMA_KEYS and row["question"] and row["answer"]
    assert len({r["id"] for r in report.kept}) == len(report.kept)
    return report


def test_gsm8k_jsonl(tmp_path):
    report = check(validate_file(write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K), "question", "answer"))
    assert report.ok and report.row_label == "line" and not report.dropped
    assert [r["answer"] for r in report.kept] == ["72", "10", "624"]
    first = report.kept[0]
    # the text before #### is the reasoning, without the calculator annotations
    assert (
        first["reasoning"].startswith("Natalia sold 48/2 = 24 clips in May.")
        and "<<" not in first["reasoning"]
    )
    assert first["sketch"] == "48/2=24; 48+24=72"
    assert report.kept[1]["sketch"] == "12/60=0.2; 0.2*50=10"
    assert report.kept[2]["sketch"] == "3*2=6; 6*2=12; 12*52=624"
    assert report.columns_found == ["question", "answer"]


def test_truncated_json_line_drops_only_that_line(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", GSM8K[:2])
    with path.open("a") as f:
        f.write(json.dumps(GSM8K[2])[:40])  # the writer died mid-line
    report = check(validate_file(path, "question", "answer"))
    assert report.ok and len(report.kept) == 2
    assert report.dropped == [(3, report.dropped[0][1])] and "invalid JSON" in report.dropped[0][1]
    assert "line 3: invalid JSON" in report.format()


def test_missing_column_names_it_and_lists_the_columns_found(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"problem": "1+1?", "solution": "2"}] * 2)
    report = check(validate_file(path, "question", "solution"))
    assert not report.ok
    assert "'question'" in report.fatal and "problem, solution" in report.fatal
    assert report.dropped == [(1, "missing column 'question'"), (2, "missing column 'question'")]
    with pytest.raises(DataError, match="'question' .*not found"):
        load_examples(str(path), n=5, columns={"question": "question", "answer": "solution"})


@pytest.mark.parametrize("name", ["e.jsonl", "e.json", "e.csv", "e.parquet", "e.txt"])
def test_empty_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    report = check(validate_file(tmp_path / name, "question", "answer"))
    assert not report.ok and "empty" in report.fatal and report.total_rows == 0


def test_blank_lines_only(tmp_path):
    (tmp_path / "b.jsonl").write_text("\n  \n\n")
    report = check(validate_file(tmp_path / "b.jsonl", "question", "answer"))
    assert report.fatal == "the file has no rows"


def test_missing_path_and_plain_folder(tmp_path):
    assert "no such file" in check(validate_file(tmp_path / "nope.jsonl", "q", "a")).fatal
    (tmp_path / "x.txt").write_text("hi")
    assert "not a saved `datasets` folder" in check(validate_file(tmp_path, "q", "a")).fatal


def test_non_utf8_bytes_drop_the_line_and_say_where(tmp_path):
    good = [json.dumps(r).encode() for r in GSM8K]
    bad = b'{"question": "caf\xe9 au lait?", "answer": "3"}'  # Latin-1, not UTF-8
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b"\n".join([good[0], bad, good[1]]) + b"\n")
    report = check(validate_file(path, "question", "answer"))
    assert len(report.kept) == 2
    [(number, reason)] = report.dropped
    offset = len(good[0]) + 1 + bad.index(b"\xe9")
    assert (
        number == 2 and "not valid UTF-8" in reason and f"byte offset {offset}" in reason and "0xe9" in reason
    )
    assert all("\ufffd" not in r["question"] for r in report.kept)


def test_non_utf8_in_a_whole_json_file_is_fatal_with_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'[{"question": "a", "answer": "1"},\n {"question": "b\xff", "answer": "2"}]')
    report = check(validate_file(path, "question", "answer"))
    assert "line 2" in report.fatal and "not valid UTF-8" in report.fatal


def test_five_megabyte_field(tmp_path):
    rows = [GSM8K[0], {"question": "x" * 5_000_000, "answer": "1"}, GSM8K[1]]
    report = check(validate_file(write_jsonl(tmp_path / "big.jsonl", rows), "question", "answer"))
    assert len(report.kept) == 2
    assert report.dropped == [(2, "field too long (5000000 chars > 20000) in column 'question'")]
    assert len(report.format()) < 2000  # the report never quotes the field


def test_messy_values_are_dropped_with_reasons(tmp_path):
    rows = [
        {"question": "", "answer": "1"},  # empty question
        {"question": "Q2", "answer": None},  # empty answer
        {"question": "Q3", "answer": [1, 2]},  # not a number or text
        {"question": "Q4", "answer": "\\boxed{42"},  # unclosed box
        {"question": "Q5", "answer": "steps\n####   "},  # nothing after ####
        {"question": 7, "answer": "1"},  # question is a number
        {"question": "Q7 \ud800", "answer": "1"},  # a lone surrogate from a JSON escape
        {"question": "Q8", "answer": "a very long\nmultiline answer"},  # no extractable answer
        {"question": "Q9", "answer": "The answer is $\\boxed{\\frac{3}{4}}$."},  # kept
    ]
    path = tmp_path / "messy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "[" * 100_000 + "\n")  # and deep nesting
    report = check(validate_file(path, "question", "answer"))
    reasons = dict(report.dropped)
    assert reasons[1] == "empty question" and reasons[2] == "empty answer"
    assert reasons[3].startswith("unparseable answer: got list")
    assert "never closed" in reasons[4] and "nothing after '####'" in reasons[5]
    assert reasons[6] == "question is not text (got int)"
    assert "lone surrogate" in reasons[7] and reasons[8].startswith("unparseable answer")
    assert reasons[10].startswith("invalid JSON")
    [kept] = report.kept
    assert kept["answer"] == "3/4" and "boxed" in kept["reasoning"]
    text = report.format(max_problems=3)
    assert "First problems:" in text and "... and 6 more" in text
    assert "      4  unparseable answer\n" in text  # grouped by reason, with the count


@pytest.mark.parametrize(
    "value, answer",
    [
        (42, "42"),
        (42.0, "42"),  # a float column of whole numbers
        (0.5, "0.5"),
        ("#### 1,234", "1234"),  # GSM8K thousands separator
        ("#### $18", "18"),
        ("  -7 ", "-7"),
        ("\\boxed{\\dfrac{-3}{4}}", "-3/4"),
        ("$\\boxed{x^{2}+1}$", "x^{2}+1"),  # nested braces in the box
        ("12.00", "12"),
        ("B", "B"),  # a multiple-choice letter is an answer too
    ],
)
def test_normalize_answer(value, answer):
    assert normalize_answer(value)[0] == answer


@pytest.mark.parametrize(
    "value, level",
    [(3, 3), (3.0, 3), ("4", 4), ("Level 5", 5), (9, 0), (True, 0), (None, 0), ("hard", 0), ([1], 0)],
)
def test_parse_difficulty(value, level):
    assert parse_difficulty(value) == level


def test_csv_with_quotes_bad_bytes_and_ragged_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(
        b"question,answer,level\n"
        b"What is 1+1?,2,1\n"
        b'"A question\nover two lines, with a comma",#### 3,Level 2\n'
        b"caf\xe9?,4,1\n"
        b"too,many,fields,here\n"
        b"\n"
        b"Last?,5,9\n"
    )
    report = check(validate_file(path, "question", "answer", difficulty="level"))
    assert report.row_label == "row" and report.columns_found == ["question", "answer", "level"]
    assert [r["answer"] for r in report.kept] == ["2", "3", "5"]
    assert [r["difficulty"] for r in report.kept] == [1, 2, 0]
    assert report.kept[1]["question"].startswith("A question\nover two lines")
    reasons = dict(report.dropped)
    assert set(reasons) == {3, 4}  # data rows, 1-based, header and blank line not counted
    assert "line 5" in reasons[3] and "not valid UTF-8" in reasons[3]
    assert reasons[4] == "row has 4 fields but the header has 3"


def test_csv_huge_field_is_our_limit_not_csvs(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("question,answer\n" + "q" * 200_000 + ",1\nok?,2\n")
    report = check(validate_file(path, "question", "answer"))
    assert [r["answer"] for r in report.kept] == ["2"]
    assert report.dropped == [(1, "field too long (200000 chars > 20000) in column 'question'")]


def test_parquet_written_by_datasets(tmp_path):
    import datasets

    rows = [{"q": "What is 2*3?", "a": "6", "why": "2*3=6"}, {"q": "Q2", "a": None, "why": None}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    report = check(validate_file(tmp_path / "d.parquet", "q", "a", reasoning="why"))
    assert report.row_label == "index" and report.columns_found == ["q", "a", "why"]
    assert report.kept[0]["reasoning"] == "2*3=6" and report.kept[0]["sketch"] == "2*3=6"
    assert report.dropped == [(1, "empty answer")]


def test_corrupt_parquet(tmp_path):
    (tmp_path / "c.parquet").write_bytes(b"PAR1 this is not really parquet")
    report = check(validate_file(tmp_path / "c.parquet", "q", "a"))
    assert "cannot read it as Parquet" in report.fatal


def test_saved_datasets_folder(tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        train=datasets.Dataset.from_list(GSM8K[:2]), test=datasets.Dataset.from_list(GSM8K[2:])
    )
    dd.save_to_disk(str(tmp_path / "saved"))
    report = check(validate_file(tmp_path / "saved", "question", "answer"))
    assert report.ok and [r["answer"] for r in report.kept] == ["72", "10", "624"]  # every split, in order
    rows = load_examples(str(tmp_path / "saved"), n=10, columns={"question": "question", "answer": "answer"})
    assert all(r["task"] == "user" for r in rows)


def test_json_shapes(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps(GSM8K))
    (tmp_path / "cols.json").write_text(json.dumps({"question": ["a?", "b?"], "answer": [1, 2]}))
    (tmp_path / "wrap.json").write_text(json.dumps({"version": 1, "data": GSM8K}))
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in GSM8K))  # JSONL named .json
    for name, n in (("list.json", 3), ("cols.json", 2), ("wrap.json", 3), ("lines.json", 3)):
        report = check(validate_file(tmp_path / name, "question", "answer"))
        assert report.ok and len(report.kept) == n, name
    (tmp_path / "broken.json").write_text('[{"question": "a", "answer": 1}, {"quest')
    assert "not valid JSON" in check(validate_file(tmp_path / "broken.json", "question", "answer")).fatal


def test_repeated_questions_keep_unique_ids(tmp_path):
    report = check(validate_file(write_jsonl(tmp_path / "d.jsonl", [GSM8K[0]] * 3), "question", "answer"))
    ids = [r["id"] for r in report.kept]
    assert ids[1] == ids[0] + "-2" and ids[2] == ids[0] + "-3"


def test_load_examples_from_a_user_file(tmp_path):
    rows = [{"q": f"How many apples are in box {i}?", "a": f"#### {i}", "lvl": 1 + i % 5} for i in range(400)]
    path = str(write_jsonl(tmp_path / "u.jsonl", rows))
    columns = {"question": "q", "answer": "a", "difficulty": "lvl"}
    train = load_examples(path, n=1000, seed=1, columns=columns)
    evals = load_examples(path, n=1000, seed=1, split="eval", columns=columns)
    assert len(train) + len(evals) == 400 and 20 < len(evals) < 90  # ~1 in 8
    assert not {r["question"] for r in train} & {r["question"] for r in evals}
    assert all(split_of(r["question"]) == "eval" for r in evals)
    assert load_examples(path, n=50, seed=1, columns=columns) == train[:50]  # deterministic
    assert load_examples(path, n=50, seed=2, columns=columns) != train[:50]  # the seed shuffles
    mixed = load_examples(path, n=60, seed=1, columns=columns, difficulty_mix={1: 1.0, 2: 2.0})
    assert sorted(r["difficulty"] for r in mixed).count(2) == 40
    with pytest.raises(DataError, match="unknown keys"):
        load_examples(path, n=5, columns={"prompt": "q"})


# --- property: whatever the lines, a Report whose counts add up ---------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["question", "answer", "reasoning", "difficulty"]) | st.text(max_size=8)
records = st.dictionaries(keys, values, max_size=5)


@st.composite
def lines(draw) -> bytes:
    kind = draw(st.sampled_from(["record", "record", "value", "truncated", "bytes", "unicode"]))
    if kind == "record":  # ensure_ascii=False lets lone surrogates through as invalid UTF-8
        ascii_only = draw(st.booleans())
        return json.dumps(draw(records), ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if kind == "value":
        return json.dumps(draw(values)).encode()
    if kind == "truncated":
        text = json.dumps(draw(records))
        return text[: draw(st.integers(0, len(text)))].encode()
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    return draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")


@settings(max_examples=150, deadline=None, database=None)  # no .hypothesis folder in the repo
@given(st.lists(lines(), max_size=12))
def test_messy_jsonl_always_gives_a_report_that_adds_up(tmp_path_factory, raw_lines):
    raw_lines = [ln.replace(b"\n", b" ") for ln in raw_lines]  # one row per line, by construction
    path = tmp_path_factory.mktemp("prop") / "messy.jsonl"
    path.write_bytes(b"\n".join(raw_lines))
    report = check(validate_file(path, "question", "answer", reasoning="reasoning", difficulty="difficulty"))
    if packed_problem(path.read_bytes()[:16]):  # starts like a compressed file: refused whole, row by row nothing
        assert report.fatal and "not text" in report.fatal and report.total_rows == 0 and not report.kept
        return
    rows = sum(1 for ln in raw_lines if ln.strip())  # blank lines are not rows
    assert report.total_rows == rows
    assert len(report.kept) + len(report.dropped) == rows
    assert len({n for n, _ in report.dropped}) == len(report.dropped)  # one reason per row
    for row in report.kept:
        assert isinstance(row["answer"], str) and isinstance(row["reasoning"], str)
        assert 0 <= row["difficulty"] <= 5
        row["question"].encode("utf-8")  # nothing undecodable is ever kept


# ---- special files: only a regular file (or a saved datasets folder) is opened, each refused with its name

def _special(tmp_path, kind):
    import gzip
    import os

    if kind == "fifo":
        path = tmp_path / "pipe.jsonl"
        os.mkfifo(path)  # opening it for reading would block until a writer came: never
    elif kind == "device":
        path = Path("/dev/zero")  # reads forever
    elif kind == "loop":
        path = tmp_path / "a.csv"
        (tmp_path / "b.csv").symlink_to(path)
        path.symlink_to(tmp_path / "b.csv")
    elif kind == "dangling":
        path = tmp_path / "gone.jsonl"
        path.symlink_to(tmp_path / "moved-away.jsonl")
    elif kind == "gzip":
        path = tmp_path / "data.jsonl"  # the name says JSONL; the bytes say gzip
        path.write_bytes(gzip.compress(b'{"question": "1+1?", "answer": "2"}\n'))
    elif kind == "gzip_csv":
        path = tmp_path / "data.csv.gz"
        path.write_bytes(gzip.compress(b"question,answer\n1+1?,2\n"))
    elif kind == "utf16":
        path = tmp_path / "wide.csv"
        path.write_bytes("question,answer\n1+1?,2\n".encode("utf-16"))
    return path


@pytest.mark.parametrize(("kind", "says"), [
    ("fifo", "named pipe (FIFO), not a regular file"),
    ("device", "character device, not a regular file"),
    ("loop", "symbolic link that loops"),
    ("dangling", "symbolic link to"),  # not a bare "no such file"
    ("gzip", "gzip-compressed"),  # not "not valid UTF-8"
    ("gzip_csv", "gunzip"),
    ("utf16", "UTF-16"),
])
def test_special_files_are_refused_by_name_without_opening(tmp_path, kind, says):
    path = _special(tmp_path, kind)
    report = check(validate_file(path, "question", "answer"))
    assert report.fatal and says in report.fatal, report.fatal
    assert "empty" not in report.fatal and "UTF-8" not in report.fatal.replace("save it as UTF-8", "")
    with pytest.raises(DataError, match=re.escape(says)):  # what a run gets: the same words
        load_examples(str(path), n=4, columns={"question": "question", "answer": "answer"})


# ---- columns read wrongly: a duplicated column, an unclosed quote, one column for two roles

def test_csv_with_a_duplicated_header_names_the_column(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("question,answer,notes,answer\nWhat is 2+2?,4,easy,5\n", encoding="utf-8")
    report = check(validate_file(path, "question", "answer"))
    assert "'answer' (columns 2, 4)" in report.fatal and not report.kept


def test_parquet_and_json_with_a_duplicated_column(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text('{"question": "What is 2+2?", "answer": "4", "answer": "5"}\n'
                    '{"question": "What is 3+3?", "answer": "6"}\n', encoding="utf-8")
    report = check(validate_file(path, "question", "answer"))
    assert dict(report.dropped)[1].startswith("the key 'answer' appears more than once")
    assert [r["answer"] for r in report.kept] == ["6"]
    whole = tmp_path / "dup.json"
    whole.write_text('[{"question": "Q?", "answer": "1", "question": "R?"}]', encoding="utf-8")
    assert "more than once" in dict(check(validate_file(whole, "question", "answer")).dropped)[0]


def test_csv_unclosed_quote_is_named_not_a_field_count(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('question,answer\nWhat is 1+1?,2\n"What is 2+2?,4\nWhat is 3+3?,6\n', encoding="utf-8")
    report = check(validate_file(path, "question", "answer"))
    assert "line 3" in report.fatal and "never closed" in report.fatal, report.fatal
    assert "fields" not in report.fatal
    last = tmp_path / "last.csv"
    last.write_text('question,answer\nWhat is 1+1?,"2\n', encoding="utf-8")  # the very last field
    assert "never closed" in check(validate_file(last, "question", "answer")).fatal
    header = tmp_path / "header.csv"
    header.write_text('"question,answer\nWhat is 1+1?,2\n', encoding="utf-8")
    assert "the header" in check(validate_file(header, "question", "answer")).fatal


def test_csv_quote_closed_too_late_points_at_the_quote(tmp_path):
    path = tmp_path / "late.csv"
    path.write_text('question,answer\n"What is 1+1?,2\nWhat is 2+2?",4,extra\nWhat is 5+5?,10\n', encoding="utf-8")
    report = check(validate_file(path, "question", "answer"))
    (number, reason), = report.dropped
    assert "lines 2-3" in reason and "quote opened on line 2" in reason
    assert [r["answer"] for r in report.kept] == ["10"]


@pytest.mark.parametrize("roles", [
    {"question": "text", "answer": "text"},
    {"question": "q", "answer": "a", "reasoning": "a"},
])
def test_one_column_for_two_roles_is_refused(tmp_path, roles):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "What is 2+2?", "q": "What is 2+2?", "a": "4"}])
    report = check(validate_file(path, **roles))
    assert "mapped to both" in report.fatal and not report.kept


@pytest.mark.parametrize("invisible", ["\u200f", "\u200b", "\u2066", "\ufeff", "\u202e", "\u00ad", "\u2060"])
def test_invisible_format_characters_leave_answers_comparable(tmp_path, invisible):
    from engine.rewards.parsing import is_correct

    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "What is 6 * 7?", "answer": f"{invisible}4{invisible}2 "}])
    (row,) = check(validate_file(path, "question", "answer")).kept
    assert row["answer"] == "42"
    assert is_correct(f"{invisible}42", "42") and is_correct("42", f"#### 4{invisible}2")


# ---- too little data: a stage's minimum is refused with the counts

def _questions(split, n):
    out, i = [], 0
    while len(out) < n:
        q = f"What is {i} plus {i + 1}?"
        if split_of(q) == split:
            out.append({"question": q, "answer": str(2 * i + 1)})
        i += 1
    return out


def test_too_few_training_rows_raise_with_the_counts(tmp_path):
    path = write_jsonl(tmp_path / "small.jsonl", _questions("eval", 3) + _questions("train", 1) + [{"question": ""}])
    cols = {"question": "question", "answer": "answer"}
    assert len(load_examples(str(path), n=8, columns=cols, min_rows=1)) == 1  # enough for 1
    with pytest.raises(DataError) as info:
        load_examples(str(path), n=8, columns=cols, min_rows=2, needed_for="one GRPO step")
    message = str(info.value)
    for words in ("1 train row", "5 rows", "4 usable (1 dropped)", "3 in the eval split", "one GRPO step needs at "
                  "least 2"):
        assert words in message, message
    with pytest.raises(DataError, match="0 eval rows"):
        load_examples(str(write_jsonl(tmp_path / "t.jsonl", _questions("train", 3))), n=8, split="eval",
                      columns=cols, min_rows=1)
