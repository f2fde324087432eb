"""Countdown: reach a target from given numbers with + - * /, each number at most once.

The row's answer is the target; the row also carries "numbers" and a known "solution".
A completion is right when `verify_countdown(expression, numbers, target)` holds.
Difficulty grows with the count of numbers (3..6) and their size; intermediate results
stay positive integers, as in the TV game.
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from fractions import Fraction

from engine.data.arithmetic import Node, render, sketch_step, steps

LEVELS = (1, 2, 3, 4, 5)
PREFIX = "countdown"
MAX_EXPRESSION_CHARS = 1000
_LARGE = (25, 50, 75, 100)
_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}


# --- checking an answer -------------------------------------------------------------


def _literals_and_value(node: ast.AST) -> tuple[list[int], Fraction]:
    """The integer literals used and the exact value; ValueError for anything not allowed."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return [node.value], Fraction(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        left, a = _literals_and_value(node.left)
        right, b = _literals_and_value(node.right)
        if isinstance(node.op, ast.Add):
            return left + right, a + b
        if isinstance(node.op, ast.Sub):
            return left + right, a - b
        if isinstance(node.op, ast.Mult):
            return left + right, a * b
        if b == 0:
            raise ValueError("division by zero")
        return left + right, a / b
    raise ValueError(f"{type(node).__name__} is not allowed")


def verify_countdown(expression: str, numbers: list[int], target: int) -> bool:
    """True when `expression` uses only + - * / and parentheses on the given numbers, each at
    most once, and equals target exactly. Parsed with ast, never eval'd. A trailing "= 82"
    is ignored, and ×, ÷, − are read as *, /, -. Unary minus is refused: -3 is not a given number."""
    if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION_CHARS:
        return False
    text = expression.replace("×", "*").replace("÷", "/").replace("−", "-").split("=")[0].strip()
    if not text:
        return False
    try:
        tree = ast.parse(text, mode="eval")
        used, value = _literals_and_value(tree.body)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return not Counter(used) - Counter(numbers) and value == target


# --- generating -------------------------------------------------------------------------


def _numbers(rng: random.Random, difficulty: int) -> list[int]:
    if difficulty == 1:
        return [rng.randint(1, 10) for _ in range(3)]
    if difficulty == 2:
        return [rng.randint(1, 15) for _ in range(4)]
    if difficulty == 3:
        return [rng.randint(1, 12) for _ in range(3)] + [rng.randint(10, 50)]
    if difficulty == 4:
        return [rng.randint(1, 12) for _ in range(4)] + [rng.choice(_LARGE)]
    return [rng.randint(1, 10) for _ in range(4)] + rng.sample(_LARGE, 2)


_TARGETS = {1: (5, 100), 2: (10, 200), 3: (20, 400), 4: (50, 600), 5: (100, 999)}


def _tree(rng: random.Random, leaves: list[int]) -> Node:
    """A random expression over the leaves, in order, keeping every value a positive integer."""
    if len(leaves) == 1:
        return Node(leaves[0])
    cut = rng.randint(1, len(leaves) - 1)
    left, right = _tree(rng, leaves[:cut]), _tree(rng, leaves[cut:])
    a, b = left.value, right.value
    options = [("+", a + b)]
    if a > b:
        options.append(("-", a - b))
    if a * b <= 5000 and 1 not in (a, b):
        options += [("*", a * b)] * 2  # products make bigger targets; prefer them a little
    if b > 1 and a % b == 0:
        options += [("/", a // b)] * 3  # exact divisions are rare; prefer them when they occur
    op, value = rng.choice(options)
    return Node(value, op, left, right)


def _make(rng: random.Random, difficulty: int) -> tuple[list[int], Node] | None:
    numbers = _numbers(rng, difficulty)
    k = len(numbers) if difficulty <= 3 else rng.randint(len(numbers) - 1, len(numbers))
    used = rng.sample(numbers, k)
    tree = _tree(rng, used)
    lo, hi = _TARGETS[difficulty]
    if not lo <= tree.value <= hi or tree.value in numbers:
        return None
    return sorted(numbers), tree


_OPENERS = (
    "Okay, so I have the numbers {nums} and I need to make {target}.",
    "Alright, I need to reach {target} using {nums}, each number at most once.",
    "Let me think. The target is {target} and the numbers are {nums}.",
)
_MISS = (
    "Let me try {eq} first... that's {dist} away from {target}, so that doesn't work directly.",
    "What if I do {eq}? Hmm, that leaves me {dist} off from {target}.",
    "Maybe {eq}? No wait, that's {dist} away from {target}. Let me think differently.",
)
_FIRST = ("Let me start with {a} {w} {b}: {eq}.", "First, {a} {w} {b} is {c}, so {eq}.")
_STEP = ("{a} {w} {b} is {c}, so {eq}.", "Let me take {a} {w} {b}: {eq}.", "Then {eq}.")


def _miss(rng: random.Random, numbers: list[int], target: int) -> str | None:
    """A plausible first attempt that does not hit the target, as a long trace has."""
    a, b = rng.sample(numbers, 2)
    a, b = max(a, b), min(a, b)
    op = rng.choice("+*-")
    value = {"+": a + b, "*": a * b, "-": a - b}[op]
    if value == target:
        return None
    return rng.choice(_MISS).format(eq=f"{a} {op} {b} = {value}", dist=abs(target - value), target=target)


def _join(nums: list[int]) -> str:
    return ", ".join(map(str, nums[:-1])) + f" and {nums[-1]}"


def generate(rng: random.Random, difficulty: int) -> dict:
    """One countdown puzzle as a row without its id."""
    if difficulty not in LEVELS:
        raise ValueError(f"countdown difficulty must be one of {LEVELS}; got {difficulty}")
    for _ in range(1000):
        made = _make(rng, difficulty)
        if made is not None:
            break
    else:
        raise RuntimeError(f"no countdown puzzle found for difficulty {difficulty} in 1000 tries")
    numbers, tree = made
    target, solution, step_list = tree.value, render(tree), steps(tree)
    parts = [rng.choice(_OPENERS).format(nums=_join(numbers), target=target)]
    miss = _miss(rng, numbers, target)
    if miss:
        parts.append(miss)
    for i, (a, op, b, c) in enumerate(step_list):
        parts.append(
            rng.choice(_FIRST if i == 0 else _STEP).format(
                a=a, w=_WORDS[op], b=b, c=c, eq=f"{a} {op} {b} = {c}"
            )
        )
    parts.append(f"That's {target}! Wait, let me double-check the whole expression: {solution} = {target}.")
    parts.append("Each number is used at most once, so that works.")
    parts.append(f"So the answer is {solution} = {target}.")
    return {
        "task": "countdown",
        "question": (
            f"Using the numbers {numbers}, create an expression that equals {target}. "
            "You may use +, -, * and /, and each number at most once."
        ),
        "answer": str(target),
        "difficulty": difficulty,
        "reasoning": " ".join(parts),
        "sketch": "; ".join(sketch_step(*s) for s in step_list),
        "numbers": numbers,
        "solution": solution,
    }
