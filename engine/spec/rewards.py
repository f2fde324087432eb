"""The reward settings: a preset, the user's weights and constants, custom reward functions, the prompt
mode."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from engine.spec.errors import SpecError, _err

PROMPT_MODES = ("", "think", "ellipsis", "budget")


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

