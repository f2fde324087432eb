"""GSM8K-flavoured word problems (shopping, baking, sharing, travel, ages); integer answers.

Difficulty = the number of arithmetic steps (1..5). A scenario is a story told in order,
one sentence per step, each step one operation on the running quantity; difficulty k
tells the first k steps and asks the question of step k. Every step keeps the quantity a
positive integer (divisions are chosen to come out exact).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

LEVELS = (1, 2, 3, 4, 5)
PREFIX = "word"
_MAX_VALUE = 10_000

Pick = Callable[[random.Random, int], int | None]  # (rng, running value) -> operand or None


def _between(lo: int, hi: int) -> Pick:
    return lambda rng, v: rng.randint(lo, hi)


def _less(lo: int, hi: int) -> Pick:
    """An amount to take away that leaves at least 1."""
    return lambda rng, v: rng.randint(lo, min(hi, v - 1)) if v - 1 >= lo else None


def _divisor(lo: int, hi: int) -> Pick:
    def pick(rng: random.Random, v: int) -> int | None:
        options = [d for d in range(lo, hi + 1) if v % d == 0 and v > d]
        return rng.choice(options) if options else None

    return pick


def _bill(rng: random.Random, v: int) -> int | None:
    """The smallest usual bill above v (the change is then bill - v)."""
    return next((b for b in (5, 10, 20, 50, 100, 200, 500, 1000, 2000) if b > v), None)


@dataclass(frozen=True)
class Step:
    op: str  # "+", "-", "*", "/", or "r-" (operand minus the running value: change from a bill)
    pick: Pick
    sentence: str  # tells this step; may use {x} (the operand) and the scenario's words
    question: str  # asked when this is the last step told
    label: str  # what the step computes, for the long trace ("the cost of the notebooks")
    unit: str


_SHOPPING = (
    "{name} buys {a} {items}.",
    (
        Step(
            "*",
            _between(2, 15),
            "Each one costs ${x}.",
            "How much does {name} spend on the {items}?",
            "the cost of the {items}",
            "dollars",
        ),
        Step(
            "+",
            _between(3, 25),
            "{She} also buys a {extra} for ${x}.",
            "How much does {she} spend in total?",
            "the total with the {extra}",
            "dollars",
        ),
        Step(
            "-",
            _less(1, 20),
            "At the checkout {she} uses a coupon worth ${x}.",
            "How much does {she} pay after the coupon?",
            "the price after the coupon",
            "dollars",
        ),
        Step(
            "/",
            _divisor(2, 5),
            "{She} splits the bill equally among {x} people, {herself} included.",
            "How much does each person pay?",
            "each person's share",
            "dollars",
        ),
        Step(
            "r-",
            _bill,
            "{She} pays {her} part with a ${x} bill.",
            "How much change does {she} get?",
            "the change",
            "dollars",
        ),
    ),
)
_BAKING = (
    "{place} bakes {a} {goods} every hour.",
    (
        Step(
            "*",
            _between(2, 8),
            "It bakes for {x} hours.",
            "How many {goods} does it bake?",
            "how many {goods} are baked",
            "{goods}",
        ),
        Step(
            "-",
            _less(1, 30),
            "{x} of the {goods} are burnt and thrown away.",
            "How many {goods} are left?",
            "how many {goods} are left",
            "{goods}",
        ),
        Step(
            "/",
            _divisor(2, 12),
            "The rest are packed into boxes of {x}.",
            "How many boxes are filled?",
            "the number of boxes",
            "boxes",
        ),
        Step(
            "*",
            _between(2, 15),
            "Each box sells for ${x}.",
            "How much money does it make by selling every box?",
            "the money from the boxes",
            "dollars",
        ),
        Step("-", _less(5, 60), "The ingredients cost ${x}.", "What is the profit?", "the profit", "dollars"),
    ),
)
_SHARING = (
    "{name} has {a} packs of {things}.",
    (
        Step(
            "*",
            _between(4, 20),
            "Each pack holds {x} {things}.",
            "How many {things} does {name} have?",
            "how many {things} {she} has",
            "{things}",
        ),
        Step(
            "-",
            _less(1, 25),
            "{She} gives {x} {things} to {her} brother.",
            "How many {things} does {she} have left?",
            "how many are left",
            "{things}",
        ),
        Step(
            "+",
            _between(2, 20),
            "Then {she} buys {x} more {things}.",
            "How many {things} does {she} have now?",
            "how many {she} has now",
            "{things}",
        ),
        Step(
            "/",
            _divisor(2, 8),
            "{She} shares them equally among {x} friends.",
            "How many {things} does each friend get?",
            "each friend's share",
            "{things}",
        ),
        Step(
            "-",
            _less(1, 5),
            "Each friend loses {x} of them on the way home.",
            "How many {things} does each friend have left?",
            "what each friend keeps",
            "{things}",
        ),
    ),
)
_TRAVEL = (
    "{name} drives at {a} kilometers per hour.",
    (
        Step(
            "*",
            _between(2, 6),
            "{She} drives for {x} hours.",
            "How many kilometers does {she} drive?",
            "the distance driven",
            "kilometers",
        ),
        Step(
            "+",
            _between(5, 60),
            "Then {she} drives {x} more kilometers to the hotel.",
            "How many kilometers does {she} drive in total?",
            "the total distance",
            "kilometers",
        ),
        Step(
            "*",
            _between(2, 2),
            "The next day {she} drives the same way back home.",
            "How many kilometers is the whole round trip?",
            "the round trip",
            "kilometers",
        ),
        Step(
            "/",
            _divisor(5, 20),
            "{Her} car uses one liter of fuel for every {x} kilometers.",
            "How many liters of fuel does the trip use?",
            "the fuel used",
            "liters",
        ),
        Step(
            "*",
            _between(2, 3),
            "Fuel costs ${x} per liter.",
            "How much does the fuel cost?",
            "the fuel cost",
            "dollars",
        ),
    ),
)
_STORIES = {"shopping": _SHOPPING, "baking": _BAKING, "sharing": _SHARING, "travel": _TRAVEL}
_START = {"shopping": (2, 9), "baking": (6, 30), "sharing": (2, 9), "travel": (30, 90)}

_PEOPLE = (
    ("Maya", "f"),
    ("Liam", "m"),
    ("Sofia", "f"),
    ("Noah", "m"),
    ("Aisha", "f"),
    ("Kenji", "m"),
    ("Elena", "f"),
    ("Omar", "m"),
    ("Priya", "f"),
    ("Lucas", "m"),
    ("Zoe", "f"),
    ("Tomas", "m"),
)
_ITEMS = ("notebooks", "pencil cases", "comic books", "water bottles", "puzzles", "plant pots")
_EXTRAS = ("backpack", "lamp", "scarf", "board game", "umbrella")
_GOODS = ("muffins", "cookies", "bagels", "rolls")
_PLACES = ("A bakery", "The corner bakery", "A small cafe")
_THINGS = ("stickers", "marbles", "trading cards", "beads")


def _words(rng: random.Random) -> dict[str, str]:
    name, sex = rng.choice(_PEOPLE)
    she, her, herself = ("she", "her", "herself") if sex == "f" else ("he", "his", "himself")
    return {
        "name": name,
        "she": she,
        "She": she.capitalize(),
        "her": her,
        "Her": her.capitalize(),
        "herself": herself,
        "items": rng.choice(_ITEMS),
        "extra": rng.choice(_EXTRAS),
        "goods": rng.choice(_GOODS),
        "place": rng.choice(_PLACES),
        "things": rng.choice(_THINGS),
    }


def _apply(op: str, v: int, x: int) -> tuple[tuple[int, str, int, int], int]:
    """The equation (a, op, b, result) and the new running value."""
    if op == "r-":
        return (x, "-", v, x - v), x - v
    value = {"+": v + x, "-": v - x, "*": v * x, "/": v // x}[op]
    return (v, op, x, value), value


def _story(rng: random.Random, n_steps: int) -> tuple[str, list[tuple], list[tuple[str, str]], str] | None:
    topic = rng.choice(sorted(_STORIES))
    opening, step_list = _STORIES[topic]
    words = _words(rng)
    v = rng.randint(*_START[topic])
    sentences = [opening.format(a=v, **words)]
    equations, labels = [], []
    for step in step_list[:n_steps]:
        x = step.pick(rng, v)
        if x is None:
            return None
        eq, v = _apply(step.op, v, x)
        if not 0 < v <= _MAX_VALUE:
            return None
        sentences.append(step.sentence.format(x=x, **words))
        equations.append(eq)
        labels.append((step.label.format(**words), step.unit.format(**words)))
    question = " ".join(sentences) + " " + step_list[n_steps - 1].question.format(**words)
    return topic, equations, labels, question


def _ages(rng: random.Random, n_steps: int) -> tuple[str, list[tuple], list[tuple[str, str]], str] | None:
    """A chain of people, each defined by the one before: older, younger, times or part as old."""
    names = [n for n, _ in rng.sample(_PEOPLE, n_steps + 1)]
    v = rng.randint(5, 15)
    sentences, equations, labels = [f"{names[0]} is {v} years old."], [], []
    for prev, name in zip(names, names[1:], strict=False):
        op = rng.choice("+-*/")
        if op == "+":
            x = rng.randint(2, 30)
            sentence = f"{name} is {x} years older than {prev}."
        elif op == "-":
            if v <= 3:
                return None
            x = rng.randint(1, min(v - 2, 30))
            sentence = f"{name} is {x} years younger than {prev}."
        elif op == "*":
            x = rng.randint(2, 4)
            sentence = f"{name} is {x} times as old as {prev}."
        else:
            x = rng.choice([d for d in (2, 3) if v % d == 0] or [0])
            if not x:
                return None
            sentence = f"{name} is {'half' if x == 2 else 'a third'} as old as {prev}."
        eq, v = _apply(op, v, x)
        if not 0 < v <= 95:
            return None
        sentences.append(sentence)
        equations.append(eq)
        labels.append((f"{name}'s age", "years"))
    return "ages", equations, labels, " ".join(sentences) + f" How old is {names[-1]}?"


_OPENERS = (
    "Okay, let me read this carefully. It's a problem about {topic}, and I need to work it out step by step.",
    "Alright, so this is a {topic} problem. Let me break it down piece by piece.",
    "Hmm, let me think about this {topic} problem. I'll go through the facts one at a time.",
)
_STEP = (
    "Now I need {label}. {eq} {unit}.",
    "Let me work out {label}: {eq} {unit}.",
    "Next comes {label}. That's {eq} {unit}.",
)
_CHECK = (
    "Wait, let me double-check that: {eq}. Yes, that's right.",
    "Hmm, let me verify... {eq}. Okay, good.",
)
_CLOSERS = ("So the answer is {ans}.", "Therefore, the final answer is {ans}.")


def _eq_text(a: int, op: str, b: int, c: int) -> str:
    return f"{a} {op} {b} = {c}"


def generate(rng: random.Random, difficulty: int) -> dict:
    """One word problem as a row without its id."""
    if difficulty not in LEVELS:
        raise ValueError(f"word problem difficulty must be one of {LEVELS}; got {difficulty}")
    for _ in range(1000):
        made = _ages(rng, difficulty) if rng.random() < 0.2 else _story(rng, difficulty)
        if made is not None:
            break
    else:
        raise RuntimeError(f"no word problem found for difficulty {difficulty} in 1000 tries")
    topic, equations, labels, question = made
    parts = [rng.choice(_OPENERS).format(topic=topic)]
    check_at = rng.randrange(len(equations))
    for i, (eq, (label, unit)) in enumerate(zip(equations, labels, strict=True)):
        parts.append(rng.choice(_STEP).format(label=label, eq=_eq_text(*eq), unit=unit))
        if i == check_at:
            parts.append(rng.choice(_CHECK).format(eq=_eq_text(*eq)))
    answer = equations[-1][3]
    parts.append(rng.choice(_CLOSERS).format(ans=answer))
    return {
        "task": "word_problems",
        "question": question,
        "answer": str(answer),
        "difficulty": difficulty,
        "reasoning": " ".join(parts),
        "sketch": "; ".join(f"{a}{op}{b}={c}" for a, op, b, c in equations),
    }
