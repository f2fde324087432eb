"""Long reasoning trace -> sketch: keep equations, numbers and key facts, drop the filler.

Rule-based, no model. A long R1-style trace restates the problem, hedges ("Hmm", "Let me",
"I think"), tries things that fail and double-checks steps it already did. The sketch keeps
each distinct equation once, in order ("7*8=56; 56+13=69"), drops equations the trace itself
rejects ("...that doesn't work", "Is it 7*9=63?"), keeps a fact sentence only when it brings
a number no equation has, and ends with the final answer when the equations do not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# Possessive quantifiers (*+, ?+) never backtrack, so a long run of "1 + 1 + ..." stays linear.
_NUM = r"\d++(?:,\d{3})*+(?:\.\d+)?+"
_OPERAND = rf"\(*+-?+\$?+{_NUM}%?+\)*+"
_OP = r"(?:\s*+[-+*/×÷·]\s*+|\s+x\s+)"
_EXPR = rf"{_OPERAND}(?:{_OP}{_OPERAND})*+"
_EQUATION = re.compile(rf"{_EXPR}(?:\s*+=\s*+{_EXPR})++")
_MAX_FACT = 200  # a longer sentence is not a key fact but prose
_MAX_PIECE = 1000  # a sentence longer than this is searched in pieces: bounds the regex's work
_HAS_OP = re.compile(r"\d\s*\)*\s*(?:[-+*/×÷·]|\sx\s)\s*\(*\s*-?\$?\d")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: "48/2 = <<48/2=24>>24"
_TAGS = re.compile(r"</?think>|</?answer>")

_FILLER = re.compile(
    r"^\W*(okay|ok|alright|all right|hmm+|wait|let me|let's|lets|i think|i need|i have to|i should|"
    r"i'll|i will|i can|i get|so,? i|so the (question|problem)|first,? i|now,? i|"
    r"the (question|problem|task)|we need|we are asked|maybe|perhaps|yes|yeah|right|good|great|"
    r"that's right|that checks|hold on|actually)\b",
    re.IGNORECASE,
)
_CHECKING = re.compile(
    r"double[- ]check|verify|make sure|step by step|order of operations|checks out", re.IGNORECASE
)
_REJECTION = re.compile(
    r"doesn't work|does not work|not quite|too (big|small|many|much|high|low)|\baway from\b|overshoot|"
    r"that's wrong|that is wrong|\bno,? wait\b|\bnope\b|not right|mistake",
    re.IGNORECASE,
)
_ANSWERS = (
    re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}"),
    re.compile(r"####\s*(.+)"),
    re.compile(r"\banswer is:?\s*(.+)", re.IGNORECASE),
)
_CONNECTOR = re.compile(
    r"^\W*(so|and|then|now|also|therefore|thus|well|okay|hence|finally)\b[,:]?\s*", re.IGNORECASE
)


def _normal(equation: str) -> str:
    text = re.sub(r"(?<=\d),(?=\d{3})", "", equation)
    text = text.replace("×", "*").replace("÷", "/").replace("·", "*").replace("$", "")
    text = re.sub(r"\s+x\s+", "*", text)
    text = re.sub(r"\s+", "", text)
    while text.endswith(")") and text.count(")") > text.count("("):
        text = text[:-1]
    while text.startswith("(") and text.count("(") > text.count(")"):
        text = text[1:]
    return text


def _equations(sentence: str) -> list[str]:
    if "=" not in sentence:
        return []
    pieces = [sentence[i : i + _MAX_PIECE] for i in range(0, len(sentence), _MAX_PIECE)]
    pieces = [p for p in pieces if "=" in p]
    return [_normal(m.group()) for p in pieces for m in _EQUATION.finditer(p) if _HAS_OP.search(m.group())]


def _final_answer(sentences: list[str]) -> str | None:
    """The last \\boxed{...}, '#### ...' or 'the answer is ...' (in that order of preference
    within a sentence), without its trailing period."""
    found = None
    for sentence in sentences:
        for pattern in _ANSWERS:
            matches = list(pattern.finditer(sentence))
            if matches:
                found = matches[-1].group(1)
                break
    if found is None:
        return None
    found = found.strip().split("\n")[0].rstrip(".").strip().replace("$", "")
    if "=" in found:
        found = found.rsplit("=", 1)[1].strip()
    return found or None


def to_sketch(long_trace: str) -> str:
    """A sketch of `long_trace`: its distinct equations and new facts joined by '; '."""
    text = _TAGS.sub(" ", _CALCULATOR.sub("", long_trace or ""))
    sentences = [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]
    per_sentence = [_equations(s) for s in sentences]
    in_equations = {n.lstrip("-") for eqs in per_sentence for eq in eqs for n in _NUMBER.findall(eq)}
    pieces: list[tuple[int, str]] = []  # (sentence index, kept text)
    seen: set[str] = set()
    for i, (sentence, eqs) in enumerate(zip(sentences, per_sentence, strict=True)):
        if _REJECTION.search(sentence):  # the trace drops this attempt, and the one just before
            pieces = [(j, p) for j, p in pieces if j < i - 1]
            continue
        if eqs:
            if sentence.rstrip().endswith("?"):
                continue  # a question to itself, not a result
            for eq in eqs:
                if eq not in seen:
                    seen.add(eq)
                    pieces.append((i, eq))
            continue
        if (
            any(p.search(sentence) for p in _ANSWERS)
            or _FILLER.search(sentence)
            or _CHECKING.search(sentence)
        ):
            continue
        numbers = {n.lstrip("-") for n in _NUMBER.findall(sentence)}
        if numbers - in_equations:  # a fact that brings a number no equation has
            fact = _CONNECTOR.sub("", sentence).rstrip(".!").strip()
            if fact and len(fact) <= _MAX_FACT and fact not in seen:
                seen.add(fact)
                pieces.append((i, fact))
    kept = [p for _, p in pieces]
    answer = _final_answer(sentences)
    if answer and (not kept or not _ends_with(kept[-1], answer)):
        kept.append(f"answer: {answer}")
    return "; ".join(kept)


def _ends_with(piece: str, answer: str) -> bool:
    """Whether the piece already ends with the answer ("3*7=21" ends with "21 days")."""
    if piece.endswith(answer):
        return True
    numbers = _NUMBER.findall(piece.replace(",", ""))
    lead = _NUMBER.match(answer.replace(",", ""))
    return bool(numbers and lead) and numbers[-1] == lead.group()


def _count(text: str, tokenizer: Any) -> int:
    if tokenizer is None:
        return len(text.split())
    if hasattr(tokenizer, "encode"):
        try:
            return len(tokenizer.encode(text, add_special_tokens=False))
        except TypeError:  # an encode without that keyword
            return len(tokenizer.encode(text))
    return len(tokenizer(text))


def token_reduction(long: str, sketch: str, tokenizer: Any | Callable[[str], list] | None = None) -> float:
    """The fraction of tokens the sketch saves: 1 - tokens(sketch) / tokens(long).

    tokenizer: a Hugging Face tokenizer (its encode, without special tokens), any callable
    returning a token list, or None for whitespace tokens. 0.0 when the long trace is empty;
    negative when the sketch is the longer one.
    """
    n_long = _count(long, tokenizer)
    if n_long == 0:
        return 0.0
    return 1.0 - _count(sketch, tokenizer) / n_long
