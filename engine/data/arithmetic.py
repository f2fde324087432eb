"""Arithmetic expressions with exact integer answers, five difficulty levels.

1: one-step single-digit sums and differences ("What is 3 + 5?")
2: two-digit addition or subtraction
3: multiplication, or two steps without parentheses
4: three steps with parentheses
5: four steps with larger numbers and a division that comes out exact

A problem is an expression tree; its post-order evaluation gives the steps, and the steps
give both traces: a chatty long one and a sketch ("7*8=56; 56+13=69").
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LEVELS = (1, 2, 3, 4, 5)
PREFIX = "arith"
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}


@dataclass(frozen=True)
class Node:
    """A leaf (op is None, value set) or an operation on two sub-trees."""

    value: int
    op: str | None = None
    left: Node | None = None
    right: Node | None = None


def _leaf(v: int) -> Node:
    return Node(v)


def _apply(op: str, a: int, b: int) -> int | None:
    """The exact integer result, or None when a division does not come out exact."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0 or a % b:
        return None
    return a // b


def _node(op: str, left: Node, right: Node) -> Node | None:
    value = _apply(op, left.value, right.value)
    return None if value is None else Node(value, op, left, right)


def render(node: Node, parent_prec: int = 0, is_right: bool = False) -> str:
    """Infix text with only the parentheses needed; a same-precedence right child keeps
    its parentheses, so a reader computes the steps in the tree's order."""
    if node.op is None:
        return str(node.value) if node.value >= 0 else f"({node.value})"
    prec = _PREC[node.op]
    text = f"{render(node.left, prec)} {node.op} {render(node.right, prec, True)}"
    if prec < parent_prec or (is_right and prec == parent_prec):
        return f"({text})"
    return text


def steps(node: Node) -> list[tuple[int, str, int, int]]:
    """(a, op, b, result) in evaluation order (post-order)."""
    if node.op is None:
        return []
    return [*steps(node.left), *steps(node.right), (node.left.value, node.op, node.right.value, node.value)]


def _fmt(v: int) -> str:
    return str(v) if v >= 0 else f"({v})"


def sketch_step(a: int, op: str, b: int, c: int) -> str:
    return f"{a}{op}{_fmt(b)}={c}"


# --- building trees per level ------------------------------------------------------


def _random_tree(rng: random.Random, n_ops: int, ops: str, lo: int, hi: int) -> Node | None:
    """A random tree with n_ops operations; None when a constraint failed (caller retries).

    Multiplication keeps one factor <= 12 and division has a divisor of 2..12 that divides
    exactly, so every step stays doable by hand.
    """
    if n_ops == 0:
        return _leaf(rng.randint(lo, hi))
    n_left = rng.randint(0, n_ops - 1)
    op = rng.choice(ops)
    left = _random_tree(rng, n_left, ops, lo, hi)
    if left is None:
        return None
    if op == "/" and n_ops - 1 - n_left == 0:
        divisors = [d for d in range(2, 13) if left.value and left.value % d == 0 and abs(left.value) != d]
        if not divisors:
            return None
        right = _leaf(rng.choice(divisors))
    else:
        right = _random_tree(rng, n_ops - 1 - n_left, ops, lo, hi)
    if right is None:
        return None
    if op == "*" and min(abs(left.value), abs(right.value)) > 12:
        return None
    if op == "/" and not 2 <= right.value <= 12:
        return None
    return _node(op, left, right)


def _level_1(rng: random.Random) -> Node | None:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    if rng.random() < 0.5:
        return _node("+", _leaf(a), _leaf(b))
    return _node("-", _leaf(max(a, b)), _leaf(min(a, b)))


def _level_2(rng: random.Random) -> Node | None:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    if rng.random() < 0.5:
        return _node("+", _leaf(a), _leaf(b))
    return _node("-", _leaf(max(a, b)), _leaf(min(a, b)))


def _level_3(rng: random.Random) -> Node | None:
    if rng.random() < 0.4:  # a single multiplication
        a, b = (
            (rng.randint(2, 12), rng.randint(2, 12))
            if rng.random() < 0.5
            else (rng.randint(11, 99), rng.randint(2, 9))
        )
        return _node("*", _leaf(a), _leaf(b))
    tree = _random_tree(rng, 2, "+-*", 2, 20)
    if tree is None or "*" not in render(tree) or "(" in render(tree):
        return None
    return tree


def _level_4(rng: random.Random) -> Node | None:
    tree = _random_tree(rng, 3, "+-*", 2, 20)
    if tree is None or "(" not in render(tree) or abs(tree.value) > 1000:
        return None
    return tree


def _level_5(rng: random.Random) -> Node | None:
    tree = _random_tree(rng, 4, "+-*/", 2, 99)
    if tree is None or "/" not in render(tree) or abs(tree.value) > 10_000:
        return None
    return tree


_BUILDERS = {1: _level_1, 2: _level_2, 3: _level_3, 4: _level_4, 5: _level_5}


def make_tree(rng: random.Random, difficulty: int) -> Node:
    for _ in range(1000):  # rejection sampling; a few tries at most in practice
        tree = _BUILDERS[difficulty](rng)
        if tree is not None:
            return tree
    raise RuntimeError(f"no arithmetic problem found for difficulty {difficulty} in 1000 tries")


# --- traces -------------------------------------------------------------------------

_OPENERS = (
    "Okay, so I need to figure out what {expr} is.",
    "Alright, the question asks for the value of {expr}. Let me work through it.",
    "Let me see. I have to compute {expr}.",
    "Hmm, okay. So the problem is {expr}, and I need the exact value.",
)
_ORDER = (
    "I should remember the order of operations: parentheses first, then multiplication "
    "and division, then addition and subtraction, left to right."
)
_FIRST = (
    "First, let me compute {a} {w} {b}.",
    "Let me start with {a} {w} {b}.",
    "I'll begin with {a} {w} {b}.",
)
_NEXT = ("Next, I take {a} {w} {b}.", "Now I need {a} {w} {b}.", "Then comes {a} {w} {b}.")
_RESULT = ("{eq}.", "That gives {eq}.", "So {eq}.", "I get {eq}.")
_CHECK = (
    "Wait, let me double-check that. {eq}. Yes, that's right.",
    "Hmm, let me verify: {eq}. Okay, that checks out.",
    "Let me make sure I didn't slip there... {eq}. Yes.",
)
_CLOSERS = ("So the answer is {ans}.", "Therefore, the final answer is {ans}.", "So, the result is {ans}.")


def _equation(a: int, op: str, b: int, c: int) -> str:
    return f"{a} {op} {_fmt(b)} = {c}"


def _explain(a: int, op: str, b: int, c: int) -> str:
    """A chatty breakdown of one step, the way a long trace spells out its mental math."""
    if op == "+" and b >= 10 and b % 10 and a >= 0:
        tens, ones = b - b % 10, b % 10
        return f"Breaking it up: {a} + {tens} = {a + tens}, and then adding {ones} more gives {c}."
    if op == "*" and b > 10 and b % 10 and a > 0:
        tens, ones = b - b % 10, b % 10
        return (
            f"I can split {b} into {tens} and {ones}: {a} times {tens} is {a * tens}, "
            f"{a} times {ones} is {a * ones}, and together that's {c}."
        )
    if op == "/":
        return f"Since {b} times {c} is {b * c}, the division comes out exact."
    return ""


def long_trace(rng: random.Random, expr: str, step_list: list[tuple[int, str, int, int]]) -> str:
    parts = [rng.choice(_OPENERS).format(expr=expr)]
    if len(step_list) > 1:
        parts.append(_ORDER)
    check_at = rng.randrange(len(step_list))
    for i, (a, op, b, c) in enumerate(step_list):
        intro = (_FIRST if i == 0 else _NEXT)[rng.randrange(3)]
        parts.append(intro.format(a=a, w=_WORDS[op], b=_fmt(b)))
        explain = _explain(a, op, b, c)
        if explain:
            parts.append(explain)
        parts.append(rng.choice(_RESULT).format(eq=_equation(a, op, b, c)))
        if i == check_at:
            parts.append(rng.choice(_CHECK).format(eq=_equation(a, op, b, c)))
    parts.append(rng.choice(_CLOSERS).format(ans=step_list[-1][3]))
    return " ".join(parts)


def generate(rng: random.Random, difficulty: int) -> dict:
    """One problem as a row without its id (the loader adds it)."""
    if difficulty not in LEVELS:
        raise ValueError(f"arithmetic difficulty must be one of {LEVELS}; got {difficulty}")
    tree = make_tree(rng, difficulty)
    expr = render(tree)
    step_list = steps(tree)
    return {
        "task": "arithmetic",
        "question": f"What is {expr}?",
        "answer": str(tree.value),
        "difficulty": difficulty,
        "reasoning": long_trace(rng, expr, step_list),
        "sketch": "; ".join(sketch_step(*s) for s in step_list),
    }
