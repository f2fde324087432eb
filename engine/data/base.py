"""What every data source shares: the error type, stable ids and the train/eval split.

The split is a pure function of the question text, so a question lands in the same split
whatever the seed, the row count or the file it came from: train and eval never overlap.
"""

from __future__ import annotations

import hashlib

EVAL_EVERY = 8  # one question in 8 goes to the eval split
SPLITS = ("train", "eval")


class DataError(ValueError):
    """A data source cannot give the rows asked for; the message says why and what to do."""


def _digest(text: str) -> bytes:
    # Whitespace is collapsed so "What is  3 + 5?" and "What is 3 + 5?" split alike;
    # surrogatepass: JSON can carry lone surrogates ("\ud800"), which plain utf-8 refuses.
    normal = " ".join(text.split())
    return hashlib.sha256(normal.encode("utf-8", "surrogatepass")).digest()


def split_of(question: str) -> str:
    """'eval' for one question in EVAL_EVERY, else 'train'; stable across runs and machines."""
    return "eval" if int.from_bytes(_digest(question)[:8], "big") % EVAL_EVERY == 0 else "train"


def row_id(prefix: str, question: str) -> str:
    """A stable id such as 'arith-3f9a1c0b2d' (40 bits of the question's hash)."""
    return f"{prefix}-{_digest(question).hex()[:10]}"


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}; got {split!r}.")
