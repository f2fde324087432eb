"""RunSpec: the whole run, its stages in order, and the checks that span sections."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.spec.errors import SpecError, SpecInvalid, _err, _number_problems, _seed_problem
from engine.spec.inputs import DataSpec, ModelSpec
from engine.spec.rewards import RewardSpec
from engine.spec.stages import (EvalSpec, GRPOSpec, HealthSpec, JudgeSpec, PreferSpec, SFTSpec,
                                grpo_prompts_per_step)

STAGE_ORDER = ("sft", "judge", "prefer", "grpo", "eval")


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
            _err(e, "", "stages", f"choose at least one stage of {', '.join(STAGE_ORDER)}.")
        for i, stage in enumerate(self.stages):
            if stage not in STAGE_ORDER:
                _err(e, "", f"stages.{i}", f"unknown stage {stage!r}; stages are {', '.join(STAGE_ORDER)}.")
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
        from engine.spec.files import spec_from_dict

        return spec_from_dict(data)

