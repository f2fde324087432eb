"""Parsing of R1-style responses: think block, answer, correctness, token split.

The output format (REWARDS.md):

    <think>
    ...reasoning, possibly empty...
    </think>
    <answer>42</answer>

The model's response is `prefix + completion`: the prompt may already end inside the
assistant turn ("<think>\\n" in think mode, "<think>\\n...\\n" in AutoThink's ellipsis
mode), so the parser always sees the two together.

Nothing here imports torch; math-verify (and sympy behind it) is imported on first use.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# what counts as an empty think block: nothing, whitespace, or AutoThink's ellipsis
_EMPTY_THINK = {"", "...", "\u2026"}
# end-of-sequence text a decoder may leave behind (<|im_end|>, <|endoftext|>, </s>, <eos>)
_TRAILING_EOS = re.compile(r"(?:\s*(?:<\|[^|<>]{1,40}\|>|</s>|<eos>|<end_of_turn>))+\s*\Z")
_WELL_FORMED = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_GSM8K = re.compile(r"^[ \t]*####[ \t]*(.+?)[ \t]*$", re.MULTILINE)
# pred/gold strings longer than this skip math-verify (sympy can take seconds on them)
_MAX_VERIFY_CHARS = 500


@dataclass(frozen=True)
class Parsed:
    """One response, split into its parts.

    think: the think block's content (stripped); None if the response has no think block.
    answer: the final answer (see `extract_answer`), taken after the think block; None
        if there is none (including a think block that was never closed).
    well_formed: exactly one think block then one answer block, nothing else but
        whitespace (and trailing end-of-sequence text).
    mode: "think", or "no_think" when the think block is absent, empty or only "...".
    """

    think: str | None
    answer: str | None
    well_formed: bool
    mode: str


def completion_text(completion: Any) -> str:
    """The text of a completion: a plain string, or the last message's content of a list
    of chat messages (TRL passes those for conversational data)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list | tuple) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            return str(last.get("content") or "")
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    return "" if completion is None else str(completion)


def strip_trailing_eos(text: str) -> str:
    """`text` without trailing end-of-sequence markers such as `<|im_end|>`."""
    return _TRAILING_EOS.sub("", text)


def parse_response(completion: str, prefix: str = "") -> Parsed:
    """Parse `prefix + completion` in the think/answer output format."""
    text = strip_trailing_eos(prefix + completion_text(completion))
    well_formed = _is_well_formed(text)
    start = text.find(THINK_OPEN)
    if start < 0:
        # no think block at all: the whole text is the answer part
        think, after = None, text
    else:
        end = text.find(THINK_CLOSE, start + len(THINK_OPEN))
        if end < 0:  # opened and never closed: still thinking when generation stopped
            return Parsed(think=text[start + len(THINK_OPEN) :].strip(), answer=None,
                          well_formed=False, mode="think")
        think = text[start + len(THINK_OPEN) : end].strip()
        after = text[end + len(THINK_CLOSE) :]
    mode = "no_think" if think is None or think in _EMPTY_THINK else "think"
    return Parsed(think=think, answer=extract_answer(after), well_formed=well_formed, mode=mode)


def _is_well_formed(text: str) -> bool:
    if any(text.count(tag) != 1 for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)):
        return False
    return _WELL_FORMED.fullmatch(text) is not None


def extract_answer(text: str) -> str | None:
    """The final answer in `text`: the last `<answer>` block's content (with a `\\boxed{}`
    inside unwrapped), else the last `\\boxed{...}` anywhere, else a GSM8K `#### 42` line;
    None if there is none or it is empty."""
    text = completion_text(text)
    blocks = _ANSWER_BLOCK.findall(text)
    if blocks:
        inner = blocks[-1]
        boxed = last_boxed(inner)
        return _clean(boxed if boxed is not None else inner)
    boxed = last_boxed(text)
    if boxed is not None:
        return _clean(boxed)
    lines = _GSM8K.findall(text)
    if lines:
        return _clean(lines[-1])
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`) with balanced braces."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, j = 1, i
    while j < len(text):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
        j += 1
    return None  # unbalanced: the box was never closed


def strip_format_chars(text: str) -> str:
    """`text` without Unicode format characters (category Cf: bidi marks and isolates, zero-width
    spaces and joiners, soft hyphens, a BOM): invisible, so "42" with a right-to-left mark must
    still equal "42"."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _clean(answer: str) -> str | None:
    answer = strip_format_chars(answer).strip()
    if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
        answer = answer.strip("$").strip()
    return answer or None


# ----------------------------------------------------------------------------- correctness


def is_correct(pred: str | None, gold: str) -> bool:
    """Whether the predicted answer equals the reference by value (math-verify), so
    "1/2" == "0.5" == "\\frac{1}{2}" and "42" == "42.0". Never raises: bad input is False.

    A reference holding a whole solution ("... #### 42", "\\boxed{42}") is reduced to its
    final answer first. Runs in any thread: math-verify's signal-based timeouts are off
    (they cannot interrupt sympy's big-integer arithmetic anyway); instead, strings over 500
    characters and ones sympy could evaluate without end (exponent towers, 5+ digit
    exponents or factorials, sums, integrals, limits) skip math-verify and are compared
    only by the exact and numeric fast paths.
    """
    if pred is None or gold is None:
        return False
    try:
        return _is_correct_cached(str(pred), str(gold))
    except Exception:  # noqa: BLE001 - a reward must never crash training on odd text
        logger.debug("is_correct failed on %r vs %r", pred, gold, exc_info=True)
        return False


@functools.lru_cache(maxsize=16384)
def _is_correct_cached(pred: str, gold: str) -> bool:
    gold = extract_answer(gold) or _clean(gold) or ""
    pred = _clean(pred) or ""
    if not pred or not gold:
        return False
    if pred == gold:
        return True
    a, b = _as_number(pred), _as_number(gold)
    if a is not None and b is not None:
        return a == b  # both plain numbers: value comparison without sympy
    if _too_costly(pred) or _too_costly(gold):
        return False
    return _verify(pred, gold)


# Inputs sympy evaluates exactly and forever (10^{10^{10}} is a 10-billion-digit integer),
# inside one C call that neither a signal nor a thread time limit can interrupt.
_COSTLY = re.compile(
    r"(?:\^|\*\*)\s*[{(]?\s*-?\d{5,}"          # a 5+ digit exponent: 2^{10000} (2^{2024} is fine)
    r"|(?:\^|\*\*)\s*-?\d+\s*(?:\^|\*\*)"       # a tower without braces: 9^9^9
    r"|\^\s*\{[^{}]*\^"                        # a tower in braces: 10^{10^{10}}
    r"|\*\*\s*\([^()]*(?:\^|\*\*)"              # a tower in parentheses: 10**(10**10)
    r"|\^\s*\{[^{}]*\}\s*(?:\^|\*\*)"            # a tower of groups: 10^{10}^{10}
    r"|\d{5,}\s*!|[})]\s*!"                     # a big factorial, or one of a group: (10^9)!
    r"|\\(?:sum|prod|int|lim)\b"                # series, products, integrals, limits
)


def _too_costly(s: str) -> bool:
    """Whether `s` is too long or could make sympy run without end; such answers are only
    compared by the exact and numeric fast paths."""
    return len(s) > _MAX_VERIFY_CHARS or _COSTLY.search(s) is not None


def _as_number(s: str) -> float | None:
    s = s.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s) else s
    try:
        return float(s)
    except ValueError:
        return None


class _DropTimeoutNotice(logging.Filter):
    """math-verify warns once that its timeouts are off; they are off on purpose here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


@functools.cache
def _math_verify():
    from math_verify import parse, verify  # imports sympy (~0.3 s) on first use

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_DropTimeoutNotice())
    return parse, verify


def _verify(pred: str, gold: str) -> bool:
    parse, verify = _math_verify()

    def parsed(s: str) -> list:
        # Both strings are bare answers; boxing them makes math-verify read them as
        # LaTeX ("x+1", "\\sqrt{2}", "\\$18" parse only that way); plain parsing is the fallback.
        return parse(f"\\boxed{{{s}}}", parsing_timeout=None) or parse(s, parsing_timeout=None)

    gold_parsed = parsed(gold)
    if not gold_parsed:
        return False
    if verify(gold_parsed, parsed(pred), timeout_seconds=None):  # order matters: gold first
        return True
    # "18 dollars": LaTeX reads the trailing words as a product of symbols; retry without them
    unitless = re.sub(r"\s+[A-Za-z][A-Za-z .]*\Z", "", pred)
    if unitless != pred and unitless:
        return bool(verify(gold_parsed, parsed(unitless), timeout_seconds=None))
    return False


# ----------------------------------------------------------------------------- token counts


def think_token_split(completion: str, completion_ids_len: int, tokenizer,
                      prefix: str = "") -> tuple[int, int]:
    """(think_tokens, answer_tokens) of a generated completion of `completion_ids_len` tokens.

    Tokens generated up to and including `</think>` count as thinking; all of them if
    `</think>` never appears but the response opened a think block (in the prefix or in
    the completion); none if there is no think block. The rest is the answer. The text is
    re-tokenised with `tokenizer(text, add_special_tokens=False)`, which can differ from the
    generated ids by a token at the boundary, so the count is clamped to [0, total].
    """
    total = max(0, int(completion_ids_len))
    text = completion_text(completion)
    close = text.find(THINK_CLOSE)
    if close >= 0:
        head = text[: close + len(THINK_CLOSE)]
        think = len(tokenizer(head, add_special_tokens=False)["input_ids"])
    elif _opens_think(prefix) or THINK_OPEN in text:
        think = total
    else:
        think = 0
    think = min(max(think, 0), total)
    return think, total - think


def _opens_think(prefix: str) -> bool:
    return prefix.rfind(THINK_OPEN) > prefix.rfind(THINK_CLOSE)
