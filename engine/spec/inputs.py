"""What a run starts from: the base model (with its LoRA settings) and the data."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.spec.errors import SpecError, _err, _seed_problem

BUNDLED_MODELS = ("smollm2-135m-instruct",)
BUILTIN_MODELS = ("tiny-random",)
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(kw_only=True)
class LoraSpec:
    enabled: bool = True  # False = full fine-tuning (needs far more memory)
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def problems(self, p: str) -> list[SpecError]:
        e: list[SpecError] = []
        if self.r < 1:
            _err(e, p, "r", f"the LoRA rank must be at least 1; got {self.r}. 8 or 16 is typical.")
        if self.alpha <= 0:
            _err(e, p, "alpha", f"must be positive; got {self.alpha}. Twice the rank is typical.")
        if not 0 <= self.dropout < 1:
            _err(e, p, "dropout", f"must be in [0, 1); got {self.dropout}.")
        if self.enabled and not self.target_modules:
            _err(e, p, "target_modules", "name at least one module to adapt, e.g. q_proj and v_proj.")
        return e


@dataclass(kw_only=True)
class ModelSpec:
    source: str = "bundled:smollm2-135m-instruct"  # bundled:NAME, builtin:tiny-random, a folder, a .gguf file or a hub id
    trust_remote_code: bool = False  # runs code shipped with the model: only for models you trust
    device: str = "auto"  # auto = CUDA if available, else CPU
    dtype: str = "auto"  # auto = bfloat16 on CUDA, float32 on CPU
    lora: LoraSpec = field(default_factory=LoraSpec)

    def problems(self, p: str) -> list[SpecError]:
        e: list[SpecError] = []
        src = self.source.strip()
        if not src:
            _err(e, p, "source", "choose a base model: the bundled model, a folder, a GGUF file or a hub id.")
        elif src.startswith("bundled:") and src[8:] not in BUNDLED_MODELS:
            _err(e, p, "source", f"unknown bundled model {src[8:]!r}; available: {', '.join(BUNDLED_MODELS)}.")
        elif src.startswith("builtin:") and src[8:] not in BUILTIN_MODELS:
            _err(e, p, "source", f"unknown built-in model {src[8:]!r}; available: {', '.join(BUILTIN_MODELS)}.")
        elif _looks_like_path(src) and not Path(src).expanduser().exists():
            _err(e, p, "source", f"no such file or folder: {src}.")
        if not (self.device in DEVICES or re.fullmatch(r"cuda:\d+", self.device)):
            _err(e, p, "device", f"must be one of {', '.join(DEVICES)} or cuda:N; got {self.device!r}.")
        if self.dtype not in DTYPES:
            _err(e, p, "dtype", f"must be one of {', '.join(DTYPES)}; got {self.dtype!r}.")
        return e + self.lora.problems(f"{p}lora.")


def _looks_like_path(src: str) -> bool:
    return src.startswith(("/", "./", "../", "~")) or src.endswith(".gguf") or Path(src).expanduser().exists()


@dataclass(kw_only=True)
class DataSpec:
    source: str = "builtin:arithmetic"  # builtin:TASK or a JSONL/CSV/Parquet file or a saved datasets folder
    train_size: int = 256
    eval_size: int = 64  # held out; never overlaps the training rows
    seed: int = 0
    difficulty_mix: dict[str, float] = field(default_factory=dict)  # level ("1".."5") -> weight; empty = uniform
    question: str = "question"  # column mapping for user files
    answer: str = "answer"
    reasoning: str = ""  # optional column with a reasoning trace
    difficulty: str = ""  # optional column with a difficulty level

    def columns(self) -> dict[str, str]:
        cols = {"question": self.question, "answer": self.answer}
        cols.update({k: v for k, v in (("reasoning", self.reasoning), ("difficulty", self.difficulty)) if v})
        return cols

    def mix(self) -> dict[int, float] | None:
        return {int(k): float(v) for k, v in self.difficulty_mix.items()} or None

    def problems(self, p: str) -> list[SpecError]:
        e: list[SpecError] = []
        if self.source.startswith("builtin:"):
            from engine.data import TASKS

            if self.source[8:] not in TASKS:
                _err(e, p, "source", f"unknown built-in task {self.source[8:]!r}; available: {', '.join(TASKS)}.")
        elif not self.source.strip():
            _err(e, p, "source", "choose a built-in task or a data file.")
        else:
            from engine.data.readers import path_problem

            problem = path_problem(Path(self.source).expanduser())
            if problem:
                _err(e, p, "source", f"{self.source}: {problem}.")
        if self.train_size < 1:
            _err(e, p, "train_size", f"needs at least 1 training example; got {self.train_size}.")
        if self.eval_size < 0:
            _err(e, p, "eval_size", f"cannot be negative; got {self.eval_size}.")
        _seed_problem(e, p, "seed", self.seed)
        roles = {}
        for role, column in self.columns().items():
            if column in roles:
                _err(e, p, role, f"column {column!r} is already mapped to {roles[column]}; each role needs its "
                                 "own column (the answer must not be read from the question).")
            roles.setdefault(column, role)
        for level, weight in self.difficulty_mix.items():
            if not (str(level).isdigit() and 1 <= int(level) <= 5):
                _err(e, p, f"difficulty_mix.{level}", "difficulty levels are 1 to 5.")
            elif not (isinstance(weight, int | float) and weight >= 0 and math.isfinite(weight)):
                _err(e, p, f"difficulty_mix.{level}", f"weights must be non-negative numbers; got {weight!r}.")
        if self.difficulty_mix and not sum(v for v in self.difficulty_mix.values()
                                           if isinstance(v, int | float) and v > 0):
            _err(e, p, "difficulty_mix", "at least one level needs a positive weight.")
        return e

