"""The settings of each stage: grpo, sft, judge, prefer and eval, and GRPO's live health alerts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.spec.errors import SpecError, _at_least_one, _err

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
SFT_TRACES = ("sketch", "reasoning", "mixed")
# TRL 1.16 DPOConfig.loss_type values that take one chosen and one rejected answer (an unknown name fails
# only inside the first step, so the spec checks it)
DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
                  "apo_zero", "apo_down", "discopop", "sigmoid_norm")


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
        _at_least_one(e, p, self, ("max_steps", "gradient_accumulation_steps", "max_completion_length",
                                   "save_steps"))
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
        _at_least_one(e, p, self, ("max_steps", "batch_size", "max_length", "save_steps"))
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
        _at_least_one(e, p, self, ("max_steps", "batch_size", "max_length", "save_steps"))
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
        _at_least_one(e, p, self, ("samples_per_mode", "max_completion_length", "max_steps", "batch_size",
                                   "max_length", "save_steps"))
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
        _at_least_one(e, p, self, ("num_samples", "max_completion_length", "batch_size"))
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
        _at_least_one(e, p, self, ("window", "flat_steps"))
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

