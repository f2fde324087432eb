"""The run spec: everything a run needs, as dataclasses, loaded from and saved to TOML.

Validation reports every problem at once, each with the dotted path of its field and a
fix in words a user understands, so the GUI can mark each widget. No torch here.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import tomli_w

STAGE_ORDER = ("sft", "judge", "prefer", "grpo", "eval")
AVAILABLE_STAGES = STAGE_ORDER
BUNDLED_MODELS = ("smollm2-135m-instruct",)
BUILTIN_MODELS = ("tiny-random",)
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
PROMPT_MODES = ("", "think", "ellipsis", "budget")
SFT_TRACES = ("sketch", "reasoning", "mixed")
# TRL 1.16 DPOConfig.loss_type values that take one chosen and one rejected answer (an unknown name fails
# only inside the first step, so the spec checks it)
DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
                  "apo_zero", "apo_down", "discopop", "sigmoid_norm")


class SpecError(ValueError):
    """A run spec is invalid; `field` is the dotted path of the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class SpecInvalid(ValueError):
    """Every problem of a spec at once; `errors` is a list of SpecError."""

    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"the run spec has {len(errors)} problem{'s' * (len(errors) != 1)}:\n{lines}")

    def by_field(self) -> dict[str, str]:
        return {e.field: e.message for e in self.errors}


def _err(errors: list[SpecError], prefix: str, name: str, message: str) -> None:
    errors.append(SpecError(f"{prefix}{name}", message))


INT_MAX = 2**63 - 1  # the run store (SQLite) holds whole numbers up to this; steps and counts are stored
SEED_MAX = 2**32 - 1  # seeds go to NumPy's generator, which takes 0 .. 2**32 - 1


def _number_problems(value: Any, path: str) -> list[SpecError]:
    """The one rule every number of a spec obeys, nested tables included (reward weights and
    constants, difficulty weights): a float is finite (NaN and inf pass checks written as
    `not x > 0`, then fail or train wrongly later), a whole number fits in the run store."""
    if is_dataclass(value):
        return [e for f in fields(value)
                for e in _number_problems(getattr(value, f.name), f"{path}{f.name}.")]
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in _number_problems(v, f"{path}{k}.")]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _number_problems(v, f"{path}{i}.")]
    name = path.rstrip(".")
    if isinstance(value, float) and not math.isfinite(value):
        return [SpecError(name, f"must be a finite number; got {value}.")]
    if isinstance(value, int) and not isinstance(value, bool) and not -INT_MAX - 1 <= value <= INT_MAX:
        return [SpecError(name, f"is too large: the run store holds whole numbers up to {INT_MAX}; "
                                f"got {value}.")]
    return []


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


def _seed_problem(e: list[SpecError], p: str, name: str, seed: int) -> None:
    if not 0 <= seed <= SEED_MAX:
        _err(e, p, name, f"must be between 0 and {SEED_MAX} (the range NumPy's generator takes); got {seed}.")


@dataclass(kw_only=True)
class RewardSpec:
    preset: str = "r1-zero"
    weights: dict[str, float] = field(default_factory=dict)  # component -> weight, overriding the preset's
    params: dict[str, dict[str, float]] = field(default_factory=dict)  # component -> constant -> value
    custom_file: str = ""  # a Python file of reward_* functions (TRL signature)
    custom_timeout_s: float = 30.0  # a custom function's call taking longer than this stops the run
    prompt_mode: str = ""  # "" = the preset's own
    budget: int = 0  # token budget for the budget prompt mode; 0 = per difficulty

    def problems(self, p: str) -> list[SpecError]:
        from engine.rewards import REGISTRY
        from engine.rewards.presets import PRESETS

        e: list[SpecError] = []
        if self.preset not in PRESETS:
            _err(e, p, "preset", f"unknown preset {self.preset!r}; available: {', '.join(PRESETS)}.")
        from engine.rewards.weights import custom_reward_names, weight_problems

        known = set(REGISTRY) | _model_components()
        for field_name, message in weight_problems(self.preset, self.weights, self.custom_file,
                                                   custom_reward_names(self.custom_file)):
            if field_name != "preset":  # said above
                _err(e, p, field_name, message)
        from engine.rewards import build_component

        for name, constants in self.params.items():
            if name not in known:
                _err(e, p, f"params.{name}", f"no reward component named {name!r}.")
            elif name in REGISTRY:
                try:  # the component's own checks (known constants, their ranges), now rather than at step 1
                    build_component(name, constants)
                except (ValueError, TypeError) as exc:
                    _err(e, p, f"params.{name}", f"{exc}.")
        weights_ok = not any(x.field.startswith(f"{p}weights.") for x in e)
        if self.preset in PRESETS and not self.custom_file and weights_ok:
            merged = self.resolved_weights()
            if merged and not any(merged.values()):
                _err(e, p, "weights", "every reward component has weight 0, so every completion would score "
                                      "the same and GRPO would learn nothing; give one a non-zero weight.")
        if not (self.custom_timeout_s > 0 and math.isfinite(self.custom_timeout_s)):
            _err(e, p, "custom_timeout_s",
                 f"must be a positive number of seconds; got {self.custom_timeout_s}.")
        if self.preset == "custom" and not self.custom_file:
            _err(e, p, "custom_file", "the custom preset needs a Python file of reward functions.")
        if self.custom_file:
            from engine.data.readers import path_problem

            problem = path_problem(Path(self.custom_file).expanduser(), allow_dir=False)
            if problem:
                _err(e, p, "custom_file", f"{self.custom_file}: {problem}.")
        if self.prompt_mode not in PROMPT_MODES:
            _err(e, p, "prompt_mode", f"must be one of think, ellipsis, budget (or empty for the preset's); "
                                      f"got {self.prompt_mode!r}.")
        if self.budget < 0:
            _err(e, p, "budget", f"cannot be negative; got {self.budget}.")
        return e

    def resolved_weights(self) -> dict[str, float]:
        """Component -> weight: the preset's merged with `weights` (see engine.rewards.weights)."""
        from engine.rewards.weights import resolve_weights

        return resolve_weights(self.preset, self.weights, self.custom_file)

    def resolved_prompt_mode(self) -> str:
        from engine.rewards.presets import PRESETS

        return self.prompt_mode or (PRESETS[self.preset].prompt_mode if self.preset in PRESETS else "think")


def _model_components() -> set[str]:
    from engine.rewards import MODEL_COMPONENTS

    return set(MODEL_COMPONENTS)


@dataclass(kw_only=True)
class GRPOSpec:
    max_steps: int = 20
    learning_rate: float = 1e-5
    num_generations: int = 4  # completions per prompt; advantages are relative within the group
    batch_size: int = 16  # completions per step: whole groups, so prompts per step = batch_size / num_generations
    gradient_accumulation_steps: int = 1
    max_completion_length: int = 128  # tokens; longer completions are cut off (and count as truncated)
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.0  # KL weight to the reference; 0 = no reference model (TRL's default)
    loss_type: str = "dr_grpo"  # Dr. GRPO: length effects come from the reward, not the loss normalisation
    scale_rewards: str = "none"
    save_steps: int = 10  # checkpoint every N steps (and at the end and on stop)
    traces_per_step: int = 0  # completions stored per step; 0 = all
    gradient_checkpointing: bool = False
    use_vllm: bool = False  # generate with vLLM (CUDA only; vllm must be installed)
    vllm_mode: str = "colocate"  # colocate: in the training process; server: `trl vllm-serve` on a spare GPU
    vllm_gpu_memory_utilization: float = 0.3

    def problems(self, p: str) -> list[SpecError]:
        e: list[SpecError] = []
        if self.use_vllm:
            import importlib.util

            if importlib.util.find_spec("vllm") is None:
                _err(e, p, "use_vllm", "vLLM is not installed (pip install vllm, on a CUDA machine); turn it off.")
            if self.vllm_mode not in ("colocate", "server"):
                _err(e, p, "vllm_mode", f"must be colocate or server; got {self.vllm_mode!r}.")
            if not 0 < self.vllm_gpu_memory_utilization < 1:
                _err(e, p, "vllm_gpu_memory_utilization", "is a share of GPU memory, in (0, 1).")
        if self.num_generations < 2:
            _err(e, p, "num_generations", "GRPO compares completions of one prompt, so it needs at least 2; "
                                          f"got {self.num_generations}.")
        elif self.batch_size % self.num_generations:
            lo = max(self.num_generations, self.batch_size // self.num_generations * self.num_generations)
            _err(e, p, "batch_size", f"must hold whole groups of {self.num_generations} completions; "
                                     f"got {self.batch_size}. Use a multiple of it, e.g. {lo}.")
        if self.batch_size < 1:
            _err(e, p, "batch_size", f"must be at least 1; got {self.batch_size}.")
        for name in ("max_steps", "gradient_accumulation_steps", "max_completion_length", "save_steps"):
            if getattr(self, name) < 1:
                _err(e, p, name, f"must be at least 1; got {getattr(self, name)}.")
        if not (self.learning_rate >= 0 and math.isfinite(self.learning_rate)):  # 0 trains nothing: a dry run
            _err(e, p, "learning_rate", f"must be a positive number (or 0 for a dry run that trains "
                                         f"nothing); got {self.learning_rate}. Try 1e-4 with LoRA.")
        if not self.temperature > 0:
            _err(e, p, "temperature", f"must be positive (sampling needs variety); got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            _err(e, p, "top_p", f"must be in (0, 1]; got {self.top_p}.")
        if self.beta < 0:
            _err(e, p, "beta", f"cannot be negative; got {self.beta}.")
        if self.loss_type not in LOSS_TYPES:
            _err(e, p, "loss_type", f"must be one of {', '.join(LOSS_TYPES)}; got {self.loss_type!r}.")
        if self.scale_rewards not in SCALE_REWARDS:
            _err(e, p, "scale_rewards", f"must be one of {', '.join(SCALE_REWARDS)}; got {self.scale_rewards!r}.")
        if self.traces_per_step < 0:
            _err(e, p, "traces_per_step", f"cannot be negative (0 stores all); got {self.traces_per_step}.")
        return e


def grpo_prompts_per_step(g: GRPOSpec) -> int:
    """Distinct prompts one GRPO optimizer step draws on one process: TRL's sampler takes
    batch_size * gradient_accumulation_steps completions per generation round, in groups of
    num_generations, and drops a last round that is not full, so fewer prompts train nothing."""
    return max(1, g.batch_size * g.gradient_accumulation_steps // max(1, g.num_generations))


TEACHER_PROMPT = ("Rewrite this reasoning as a terse sketch: keep every equation and key fact, drop "
                  "restatements, hedges and double-checks. Reply with the sketch only.\n\n{reasoning}")


@dataclass(kw_only=True)
class SFTSpec:
    """SFT cold start: fine-tune on sketch-style traces so the model learns the format and a terse way of thinking."""
    max_steps: int = 30
    learning_rate: float = 2e-4
    batch_size: int = 4
    max_length: int = 384  # tokens of prompt + target; longer examples are cut
    trace: str = "sketch"  # sketch (concise), reasoning (the long trace as given), or mixed: each row as its
    # sketch and as a no-think answer (the think block closed at once), so GRPO can choose per problem
    converter: str = "rules"  # how long traces become sketches when the data has none: rules or teacher
    teacher_source: str = ""  # model source of the teacher (converter = "teacher")
    teacher_prompt: str = TEACHER_PROMPT  # {reasoning} is replaced by the long trace
    save_steps: int = 50

    def problems(self, p: str) -> list[SpecError]:
        e: list[SpecError] = []
        for name in ("max_steps", "batch_size", "max_length", "save_steps"):
            if getattr(self, name) < 1:
                _err(e, p, name, f"must be at least 1; got {getattr(self, name)}.")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            _err(e, p, "learning_rate", f"must be a positive number; got {self.learning_rate}. Try 2e-4 with LoRA.")
        if self.trace not in SFT_TRACES:
            _err(e, p, "trace", f"must be sketch, reasoning or mixed; got {self.trace!r}.")
        if self.converter not in ("rules", "teacher"):
            _err(e, p, "converter", f"must be rules or teacher; got {self.converter!r}.")
        if self.converter == "teacher":
            if not self.teacher_source.strip():
                _err(e, p, "teacher_source", "the teacher converter needs a teacher model source.")
            if "{reasoning}" not in self.teacher_prompt:
                _err(e, p, "teacher_prompt", "must contain {reasoning}, where the long trace goes.")
        return e


@dataclass(kw_only=True)
class JudgeSpec:
    """The judge reward model: a sequence-classification head (LoRA on the base) trained on preference pairs."""
    max_steps: int = 30
    learning_rate: float = 1e-4
    batch_size: int = 8  # pairs per step
    max_length: int = 384
    eval_pairs: int = 32  # held-out pairs for the pairwise accuracy
    save_steps: int = 50

    def problems(self, p: str) -> list[SpecError]:
        e: list[SpecError] = []
        for name in ("max_steps", "batch_size", "max_length", "save_steps"):
            if getattr(self, name) < 1:
                _err(e, p, name, f"must be at least 1; got {getattr(self, name)}.")
        if self.eval_pairs < 0:
            _err(e, p, "eval_pairs", f"cannot be negative; got {self.eval_pairs}.")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            _err(e, p, "learning_rate", f"must be a positive number; got {self.learning_rate}.")
        return e


@dataclass(kw_only=True)
class PreferSpec:
    """AdaR1's bi-level preference stage: the model's own long (think) and short (no-think) answers, sampled
    once up front and paired by engine.stages.prefer.build_pairs, then DPO (TRL's DPOTrainer, LoRA)."""
    samples_per_mode: int = 4  # completions per training problem in each mode (think, and no-think)
    max_completion_length: int = 96  # tokens per sampled completion
    temperature: float = 0.6
    margin: float = 0.0  # group level: long is preferred only when its accuracy beats short's by more than this
    group_pairs: int = 2  # at most this many group-level pairs per problem (preferred style vs the other)
    instance_pairs: int = 1  # at most this many instance-level pairs per problem (shorter vs longer correct)
    beta: float = 0.1  # DPO's beta: higher keeps the model closer to its start
    loss_type: str = "sigmoid"  # TRL's DPO loss; sigmoid is the original DPO loss
    max_steps: int = 30
    learning_rate: float = 5e-5
    batch_size: int = 8  # pairs per step
    max_length: int = 384  # tokens of prompt + answer; longer pairs are cut
    save_steps: int = 50

    def problems(self, p: str) -> list[SpecError]:
        e: list[SpecError] = []
        for name in ("samples_per_mode", "max_completion_length", "max_steps", "batch_size", "max_length",
                     "save_steps"):
            if getattr(self, name) < 1:
                _err(e, p, name, f"must be at least 1; got {getattr(self, name)}.")
        for name in ("group_pairs", "instance_pairs"):
            if getattr(self, name) < 0:
                _err(e, p, name, f"cannot be negative (0 = no pairs of this kind); got {getattr(self, name)}.")
        if self.group_pairs == 0 and self.instance_pairs == 0:
            _err(e, p, "group_pairs", "with both pair caps at 0 there is nothing to train on; allow group pairs, "
                                      "instance pairs or both.")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            _err(e, p, "temperature", f"sampling needs a temperature > 0 (0.6 is typical); got {self.temperature}.")
        if not 0 <= self.margin < 1:
            _err(e, p, "margin", f"is a difference of accuracies, in [0, 1); got {self.margin}.")
        if not (self.beta > 0 and math.isfinite(self.beta)):
            _err(e, p, "beta", f"must be a positive number; got {self.beta}. 0.1 is DPO's usual value.")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            _err(e, p, "learning_rate", f"must be a positive number; got {self.learning_rate}. Try 5e-5 with LoRA.")
        if self.loss_type not in DPO_LOSS_TYPES:
            _err(e, p, "loss_type", f"must be one of {', '.join(DPO_LOSS_TYPES)}; got {self.loss_type!r}.")
        return e


@dataclass(kw_only=True)
class EvalSpec:
    """Evaluation on the held-out split: the trained model, and the base model for the deltas."""
    num_samples: int = 1  # completions per prompt; pass@k is reported for k up to this
    temperature: float = 0.0  # 0 = greedy (only with one sample)
    max_completion_length: int = 256
    batch_size: int = 16  # prompts per generate call
    compare_base: bool = True  # also evaluate the base model on the same prompts
    checkpoints: str | list[int] = "final"  # "final" (the trained adapter), "all" saved checkpoints, or [steps]
    budgets: list[int] = field(default_factory=list)  # thinking budgets (tokens) for the budget-forcing curve

    def problems(self, p: str) -> list[SpecError]:
        e: list[SpecError] = []
        c = self.checkpoints
        if isinstance(c, str):
            if c not in ("final", "all"):
                _err(e, p, "checkpoints", f'must be "final", "all" or a list of steps such as [10, 20]; got {c!r}.')
        elif not isinstance(c, list) or not c or not all(isinstance(v, int) and not isinstance(v, bool) for v in c):
            _err(e, p, "checkpoints", f'must be "final", "all" or a non-empty list of steps such as [10, 20]; '
                                      f"got {c!r}.")
        elif min(c) < 1:
            _err(e, p, "checkpoints", f"steps start at 1; got {min(c)}.")
        b = self.budgets
        if any(v < 1 for v in b):
            _err(e, p, "budgets", f"a thinking budget is a number of tokens, at least 1; got {min(b)}.")
        elif len(set(b)) != len(b):
            _err(e, p, "budgets", f"lists a budget twice: {sorted(v for v in set(b) if b.count(v) > 1)}.")
        elif b and max(b) >= self.max_completion_length:
            _err(e, p, "budgets", f"a budget of {max(b)} thinking tokens leaves no room to answer within "
                                  f"max_completion_length = {self.max_completion_length}; use smaller budgets "
                                  "or raise max_completion_length.")
        for name in ("num_samples", "max_completion_length", "batch_size"):
            if getattr(self, name) < 1:
                _err(e, p, name, f"must be at least 1; got {getattr(self, name)}.")
        if self.temperature < 0:
            _err(e, p, "temperature", f"cannot be negative; got {self.temperature}.")
        if self.num_samples > 1 and self.temperature == 0:
            _err(e, p, "temperature", "several samples per prompt need sampling: set a temperature > 0 "
                                      "(0.6 is typical) or num_samples = 1.")
        return e


@dataclass(kw_only=True)
class HealthSpec:
    """Live alerts during GRPO: thresholds, each alert naming the likely cause and the setting to change."""
    enabled: bool = True
    warmup_steps: int = 3  # no alerts before this step (except NaN/inf)
    window: int = 3  # a condition must hold this many steps in a row
    truncated_share: float = 0.5  # completions cut off at the length limit
    zero_spread_share: float = 0.8  # groups whose completions all got the same reward
    flat_steps: int = 8  # reward range below flat_tolerance over this many steps
    flat_tolerance: float = 0.01
    min_mean_tokens: float = 2.0  # completions collapsing to nothing
    kl_max: float = 1.0  # KL to the reference (only when grpo.beta > 0)
    probe_steps: int = 8  # every N steps, greedy answers to a few training prompts are compared with the start's;
    # all unchanged = the not-learning alert. 0 = no probe
    probe_prompts: int = 8

    def problems(self, p: str) -> list[SpecError]:
        e: list[SpecError] = []
        for name in ("window", "flat_steps"):
            if getattr(self, name) < 1:
                _err(e, p, name, f"must be at least 1; got {getattr(self, name)}.")
        for name in ("warmup_steps", "probe_steps"):
            if getattr(self, name) < 0:
                _err(e, p, name, f"cannot be negative; got {getattr(self, name)}.")
        if self.probe_prompts < 1:
            _err(e, p, "probe_prompts", f"must be at least 1; got {self.probe_prompts}.")
        for name in ("truncated_share", "zero_spread_share"):
            if not 0 < getattr(self, name) <= 1:
                _err(e, p, name, f"is a share of completions, in (0, 1]; got {getattr(self, name)}.")
        for name in ("flat_tolerance", "min_mean_tokens", "kl_max"):
            if getattr(self, name) < 0:
                _err(e, p, name, f"cannot be negative; got {getattr(self, name)}.")
        return e


@dataclass(kw_only=True)
class RunSpec:
    name: str = "run"
    stages: list[str] = field(default_factory=lambda: ["grpo"])
    seed: int = 42
    output_dir: str = ""  # where the run folder goes; empty = under the Ponder home
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    rewards: RewardSpec = field(default_factory=RewardSpec)
    grpo: GRPOSpec = field(default_factory=GRPOSpec)
    sft: SFTSpec = field(default_factory=SFTSpec)
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    prefer: PreferSpec = field(default_factory=PreferSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    health: HealthSpec = field(default_factory=HealthSpec)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise SpecInvalid(problems)

    def problems(self) -> list[SpecError]:
        e: list[SpecError] = []
        if not self.name.strip():
            _err(e, "", "name", "give the run a name.")
        if not self.stages:
            _err(e, "", "stages", f"choose at least one stage of {', '.join(AVAILABLE_STAGES)}.")
        for i, stage in enumerate(self.stages):
            if stage not in STAGE_ORDER:
                _err(e, "", f"stages.{i}", f"unknown stage {stage!r}; stages are {', '.join(STAGE_ORDER)}.")
            elif stage not in AVAILABLE_STAGES:
                _err(e, "", f"stages.{i}", f"the {stage} stage is not available in this version; "
                                           f"available: {', '.join(AVAILABLE_STAGES)}.")
        known = [s for s in self.stages if s in STAGE_ORDER]
        if known != sorted(known, key=STAGE_ORDER.index) or len(set(known)) != len(known):
            _err(e, "", "stages", f"stages run once each, in the order {' → '.join(STAGE_ORDER)}.")
        e += self.model.problems("model.") + self.data.problems("data.") + self.rewards.problems("rewards.")
        e += self.health.problems("health.")
        for stage in STAGE_ORDER:  # a stage's settings are checked only when the stage runs
            if stage in self.stages:
                e += getattr(self, stage).problems(f"{stage}.")
        uses_judge = self._resolved_weight("judge")
        if "grpo" in self.stages and uses_judge and "judge" not in self.stages:
            _err(e, "", "stages", "the reward preset uses the judge reward model: add the judge stage before grpo, "
                                  "or set rewards.weights.judge = 0.")
        if "prefer" in self.stages and not self.model.lora.enabled:
            _err(e, "", "model.lora.enabled", "the prefer stage trains a LoRA adapter (DPO against its start); "
                                              "turn LoRA on or leave prefer out.")
        if "sft" in self.stages and not self.model.lora.enabled:
            _err(e, "", "model.lora.enabled", "the sft stage trains a LoRA adapter that GRPO continues; turn LoRA "
                                              "on or leave sft out.")
        if "eval" in self.stages and self.data.eval_size < 1:
            _err(e, "", "data.eval_size", "the eval stage needs held-out examples; set eval_size to at least 1.")
        _seed_problem(e, "", "seed", self.seed)
        g = self.grpo
        if "grpo" in self.stages and g.num_generations >= 1 and self.data.train_size < grpo_prompts_per_step(g):
            _err(e, "", "data.train_size", f"one GRPO step takes {grpo_prompts_per_step(g)} prompts (batch_size "
                                           f"{g.batch_size} x gradient_accumulation_steps "
                                           f"{g.gradient_accumulation_steps} / num_generations "
                                           f"{g.num_generations}); got {self.data.train_size}, so no step would run.")
        # A number that is not finite gets one message: its field's own check where that refuses it
        # ("must be a positive number"), else the rule every number obeys.
        own = {x.field for x in e}
        return e + [n for n in _number_problems(self, "")
                    if not any(n.field == f or n.field.startswith(f"{f}.") for f in own)]

    def _resolved_weight(self, name: str) -> float:
        from engine.rewards.weights import WeightError

        try:
            return self.rewards.resolved_weights().get(name, 0.0)
        except WeightError:  # reported by RewardSpec.problems
            return 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with dotted-path changes applied, e.g. replace(**{"grpo.max_steps": 3})."""
        data = self.to_dict()
        for path, value in changes.items():
            node = data
            *parents, leaf = path.split(".")
            for key in parents:
                node = node[key]
            node[leaf] = value
        return spec_from_dict(data)


# ---- loading and saving ---------------------------------------------------------------------------

def _type_ok(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin is list:
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _type_ok(v, args[1])
                                               for k, v in value.items())
    return True


_TYPE_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _build(cls: type, data: Any, prefix: str, errors: list[SpecError]) -> dict[str, Any]:
    """Type-check `data` against dataclass `cls`; returns constructor kwargs (bad values left out)."""
    if not isinstance(data, dict):
        errors.append(SpecError(prefix.rstrip(".") or "spec", "must be a table of settings."))
        return {}
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known settings: {', '.join(names)}."
            errors.append(SpecError(f"{prefix}{key}", f"unknown setting.{hint}"))
            continue
        hint_t = hints[key]
        if is_dataclass(hint_t):
            kwargs[key] = hint_t(**_build(hint_t, value, f"{prefix}{key}.", errors))
        elif _type_ok(value, hint_t):
            kwargs[key] = list(value) if isinstance(value, list) else value
        else:
            want = _TYPE_WORDS.get(hint_t, str(hint_t).replace("typing.", ""))
            errors.append(SpecError(f"{prefix}{key}", f"must be {want}; got {value!r}."))
    return kwargs


def spec_from_dict(data: dict[str, Any]) -> RunSpec:
    """Build and validate a spec; raises SpecInvalid listing every problem."""
    errors: list[SpecError] = []
    kwargs = _build(RunSpec, data, "", errors)
    try:
        spec = RunSpec(**kwargs)
    except SpecInvalid as invalid:
        raise SpecInvalid(errors + invalid.errors) from None
    if errors:
        raise SpecInvalid(errors)
    return spec


PATH_FIELDS = (("rewards", "custom_file"), ("data", "source"), ("model", "source"), ("sft", "teacher_source"))


def _absolute_paths(data: dict[str, Any], spec_dir: Path) -> None:
    """Relative file paths in a spec file become absolute, found beside the spec, in the working folder,
    or in Ponder's data folder (the shipped specs' "resources/..."), so a worker finds them from anywhere."""
    from engine.paths import resources_dir

    for section, key in PATH_FIELDS:
        table = data.get(section)
        value = table.get(key) if isinstance(table, dict) else None
        if not isinstance(value, str) or not value.strip() or value.startswith(("builtin:", "bundled:")) \
                or Path(value).expanduser().is_absolute():
            continue
        for root in (spec_dir, Path.cwd(), resources_dir().parent):
            if (root / value).exists():
                table[key] = str((root / value).resolve())
                break


def _read_spec_text(path: Path) -> str:
    """The spec file's text (a UTF-8 BOM, as some Windows editors write, is dropped). Only a regular
    file is read: a FIFO or a device would block or never end."""
    from engine.data.readers import path_problem

    problem = path_problem(path, allow_dir=False)
    if problem == "no such file or folder":
        raise FileNotFoundError(path)
    if problem:
        raise SpecInvalid([SpecError("spec", f"{path}: {problem}")])
    return path.read_text(encoding="utf-8-sig")


def load_spec(path: str | Path) -> RunSpec:
    path = Path(path)
    try:
        data = tomllib.loads(_read_spec_text(path))
    except FileNotFoundError:
        raise SpecInvalid([SpecError("spec", f"no such file: {path}")]) from None
    except IsADirectoryError:
        raise SpecInvalid([SpecError("spec", f"{path} is a folder, not a spec file (give the .toml file)")]) from None
    except OSError as exc:
        raise SpecInvalid([SpecError("spec", f"cannot read {path}: {exc.strerror or exc}")]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecInvalid([SpecError("spec", f"{path} is not valid TOML: {exc}")]) from None
    _absolute_paths(data, path.resolve().parent)
    return spec_from_dict(data)


def dumps_spec(spec: RunSpec) -> str:
    return tomli_w.dumps(spec.to_dict())


def save_spec(spec: RunSpec, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps_spec(spec), encoding="utf-8")
    tmp.replace(path)
    return path


def default_value(cls: type, name: str) -> Any:
    f = next(f for f in fields(cls) if f.name == name)
    return f.default_factory() if f.default is MISSING else f.default
