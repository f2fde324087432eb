"""Built-in generators and load_examples("builtin:..."): determinism, splits, mixes, and
every answer checked by a solver written here, not by the generator."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter
from fractions import Fraction

import pytest

from engine.data import TASK_INFO, TASKS, DataError, load_examples, verify_countdown

BUILTINS = ("arithmetic", "countdown", "word_problems", "mixed")
SCHEMA = {
    "id": str,
    "task": str,
    "question": str,
    "answer": str,
    "difficulty": int,
    "reasoning": str,
    "sketch": str,
}


def evaluate(expression: str) -> Fraction:
    """The test's own evaluator: + - * / and parentheses on integers, exact."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        assert isinstance(node, ast.BinOp), ast.dump(node)
        a, b = walk(node.left), walk(node.right)
        if isinstance(node.op, ast.Div):
            return a / b
        return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}[type(node.op)]

    return walk(ast.parse(expression, mode="eval").body)


def numbers_in(text: str) -> list[str]:
    return re.findall(r"-?\d+", text)


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, list[dict]]]:
    # 300 train + 100 eval per task: enough to see every level many times, still < 1 s
    return {
        t: {
            s: load_examples(f"builtin:{t}", n=n, seed=0, split=s) for s, n in (("train", 300), ("eval", 100))
        }
        for t in BUILTINS
    }


def test_task_catalogue():
    assert set(TASKS) == set(BUILTINS)
    assert set(TASK_INFO) == set(TASKS) and all(TASK_INFO.values())


@pytest.mark.parametrize("task", BUILTINS)
def test_rows_follow_the_schema(rows, task):
    for split, got in rows[task].items():
        assert len(got) == (300 if split == "train" else 100)
        for row in got:
            for key, kind in SCHEMA.items():
                assert isinstance(row[key], kind), (key, row)
            assert 1 <= row["difficulty"] <= 5
            assert row["id"].split("-")[0] in ("arith", "countdown", "word")
        assert len({r["id"] for r in got}) == len(got)
        assert len({r["question"] for r in got}) == len(got)  # duplicates dropped


@pytest.mark.parametrize("task", BUILTINS)
def test_same_seed_same_rows_other_seed_other_rows(task):
    a = load_examples(f"builtin:{task}", n=40, seed=1)
    assert a == load_examples(f"builtin:{task}", n=40, seed=1)
    assert load_examples(f"builtin:{task}", n=15, seed=1) == a[:15]  # a smaller n is a prefix
    b = load_examples(f"builtin:{task}", n=40, seed=2)
    assert len({r["question"] for r in a} & {r["question"] for r in b}) < 20


@pytest.mark.parametrize("task", BUILTINS)
def test_train_and_eval_never_share_a_question(rows, task):
    train = {r["question"] for r in rows[task]["train"]}
    assert not train & {r["question"] for r in rows[task]["eval"]}
    # nor across seeds: the split depends on the question alone
    other_eval = {r["question"] for r in load_examples(f"builtin:{task}", n=100, seed=7, split="eval")}
    assert not train & other_eval


def test_difficulty_mix_is_respected():
    got = load_examples("builtin:word_problems", n=400, seed=3, difficulty_mix={2: 3.0, 5: 1.0, 4: 0.0})
    counts = Counter(r["difficulty"] for r in got)
    assert set(counts) == {2, 5}
    assert 250 <= counts[2] <= 350  # expected 300; binomial sd ~9


def test_default_mix_is_roughly_uniform(rows):
    counts = Counter(r["difficulty"] for r in rows["countdown"]["train"])
    assert set(counts) == {1, 2, 3, 4, 5} and min(counts.values()) >= 35  # expected 60 each


def test_mixed_is_an_even_mix(rows):
    counts = Counter(r["task"] for r in rows["mixed"]["train"])
    assert counts == {"arithmetic": 100, "countdown": 100, "word_problems": 100}
    assert all("numbers" in r and "solution" in r for r in rows["mixed"]["train"])  # one key set


def test_exhausted_level_falls_back_then_errors():
    # level 1 arithmetic has about 150 distinct questions, ~20 of them in eval
    with pytest.raises(DataError, match="ran out"):
        load_examples("builtin:arithmetic", n=40, split="eval", difficulty_mix={1: 1.0})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(source="builtin:chess", n=3), "unknown built-in task"),
        (dict(source="builtin:arithmetic", n=3, split="test"), "split must be"),
        (dict(source="builtin:arithmetic", n=-1), "n must be"),
        (dict(source="builtin:arithmetic", n=3, difficulty_mix={7: 1.0}), "does not have"),
        (dict(source="builtin:arithmetic", n=3, difficulty_mix={1: 0.0}), "weight 0"),
        (dict(source="builtin:arithmetic", n=3, difficulty_mix={1: -1.0}), "0 or more"),
    ],
)
def test_bad_requests_raise_data_error(kwargs, message):
    with pytest.raises(DataError, match=message):
        load_examples(kwargs.pop("source"), **kwargs)


def test_arithmetic_answers_are_right(rows):
    for row in rows["arithmetic"]["train"] + rows["arithmetic"]["eval"]:
        expression = re.fullmatch(r"What is (.+)\?", row["question"]).group(1)
        value = evaluate(expression)
        assert value.denominator == 1 and str(value.numerator) == row["answer"], row["question"]


def test_arithmetic_levels_look_like_their_description(rows):
    by_level = {r["difficulty"]: r["question"] for r in rows["arithmetic"]["train"]}
    assert re.fullmatch(r"What is \d [+-] \d\?", by_level[1])
    assert "(" in by_level[4]
    assert all("/" in r["question"] for r in rows["arithmetic"]["train"] if r["difficulty"] == 5)


def test_countdown_solutions_verify(rows):
    for row in rows["countdown"]["train"] + rows["countdown"]["eval"]:
        assert 3 <= len(row["numbers"]) <= 6
        assert verify_countdown(row["solution"], row["numbers"], int(row["answer"])), row
        assert evaluate(row["solution"]) == int(row["answer"])
        assert str(row["numbers"]) in row["question"] and row["answer"] in row["question"]


@pytest.mark.parametrize(
    "expression, ok",
    [
        ("(50 + 25) + 7", True),  # the plain case
        ("(50+25)+7 = 82", True),  # a trailing "= target" is fine
        ("50 × 2 − 25 + 7", True),  # typographic operators
        ("50 + 25 + 7 + 0", False),  # 0 is not a given number
        ("7 + 7 + 68", False),  # 7 used twice but given once
        ("-7 + 89", False),  # unary minus makes a number not given
        ("82", False),  # 82 is not given
        ("50 + 32", False),  # 32 not given
        ("50 ** 1 + 32", False),  # power is not allowed
        ("__import__('os')", False),  # nothing but arithmetic
        ("50 / (25 - 25) + 82", False),  # division by zero
        ("50 + 25 +", False),  # syntax error
        ("(" * 500 + "1" + ")" * 500, False),  # deep nesting: False, not RecursionError
        ("", False),
    ],
)
def test_verify_countdown_table(expression, ok):
    assert verify_countdown(expression, [50, 25, 25, 7, 2], 82) is ok


def test_verify_countdown_exact_division():
    assert verify_countdown("(6 / 4) * 4", [6, 4, 4], 6)  # 3/2 * 4: exact fractions, not floats
    assert not verify_countdown("7 / 2", [7, 2], 3)


def test_word_problem_equations_check_out(rows):
    for row in rows["word_problems"]["train"] + rows["word_problems"]["eval"]:
        equations = row["sketch"].split("; ")
        assert len(equations) == row["difficulty"]  # difficulty = number of steps
        results = ["2", "3"]  # said in words: "the same way back", "half", "a third"
        for eq in equations:
            left, right = eq.split("=")
            assert evaluate(left) == int(right), eq
            for operand in re.findall(r"\d+", left):  # each operand is given or computed before
                assert operand in numbers_in(row["question"]) or operand in results, (operand, row)
            results.append(right)
        assert results[-1] == row["answer"]


@pytest.mark.parametrize("task", BUILTINS)
def test_traces_end_with_the_answer_and_the_sketch_is_short(rows, task):
    for row in rows[task]["train"]:
        assert numbers_in(row["reasoning"])[-1] == row["answer"], row["reasoning"][-80:]
        assert row["sketch"].rsplit("=", 1)[1] == row["answer"]
        assert len(row["sketch"]) < len(row["reasoning"]) / 3


def test_importing_the_catalogue_is_light():
    # the GUI imports TASK_INFO: no torch, no datasets, no pyarrow behind it
    code = "import sys, engine.data; print([m for m in ('torch', 'datasets', 'pyarrow') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
