"""Live training-health alerts: the silent failures of GRPO, caught from each step's metrics.

Each alert names the likely cause and the setting to change. An alert fires once when its
condition has held `window` steps in a row (after `warmup_steps`), and may fire again only
after the condition has cleared. NaN or inf in the loss or the reward is an error that
stops the run with a checkpoint. Pure Python: the monitor reads metric dicts only.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

ALERT_LEVEL = "alert"  # the events table's level for these (the GUI puts a banner on the chart)


@dataclass(frozen=True)
class Alert:
    code: str  # truncated, zero_spread, flat_reward, length_collapse, kl_rising, not_learning, non_finite
    step: int
    message: str
    fatal: bool = False


class HealthMonitor:
    def __init__(self, health, max_completion_length: int, beta: float = 0.0):
        self.h, self.max_len, self.beta = health, max_completion_length, beta
        self._streak: dict[str, int] = {}
        self._active: set[str] = set()
        self._rewards: deque[float] = deque(maxlen=health.flat_steps)

    def check(self, step: int, values: dict[str, float]) -> list[Alert]:
        alerts: list[Alert] = []
        bad = [k for k in ("loss", "reward") if k in values and not math.isfinite(values[k])]
        if bad:
            alerts.append(Alert("non_finite", step, f"{' and '.join(bad)} became NaN or infinite at step {step}. "
                                "The run stops with a checkpoint. Lower grpo.learning_rate (and check custom "
                                "reward functions for NaN).", fatal=True))
        if not self.h.enabled:
            return alerts
        if "reward" in values and math.isfinite(values["reward"]):
            self._rewards.append(values["reward"])
        h = self.h
        conditions = {
            "truncated": (values.get("completions/clipped_ratio", 0.0) > h.truncated_share,
                          f"{values.get('completions/clipped_ratio', 0):.0%} of completions were cut off at "
                          f"{self.max_len} tokens: they never reach an answer, so accuracy and format pay nothing. "
                          "Raise grpo.max_completion_length, or use a length-aware preset (concise, cosine, "
                          "budget) so finishing early pays."),
            "zero_spread": (values.get("frac_reward_zero_std", 0.0) > h.zero_spread_share,
                            f"{values.get('frac_reward_zero_std', 0):.0%} of prompt groups gave every completion "
                            "the same reward: no advantage, no learning. If every reward is 0, the format or answer "
                            "check never matches (try `ponder check`); else raise grpo.num_generations or "
                            "grpo.temperature, or use easier data (data.difficulty_mix)."),
            "length_collapse": ("completions/mean_length" in values
                                and values["completions/mean_length"] <= h.min_mean_tokens,
                                f"completions collapsed to {values.get('completions/mean_length', 0):.1f} tokens "
                                "on average: the policy found that saying nothing pays. Lower the weight of "
                                "length rewards (rewards.weights) or grpo.learning_rate."),
            "kl_rising": (self.beta > 0 and values.get("kl", 0.0) > h.kl_max,
                          f"KL to the reference reached {values.get('kl', 0):.3g} (limit {h.kl_max:g}): the "
                          "policy is drifting fast. Lower grpo.learning_rate or raise grpo.beta."),
            "flat_reward": (len(self._rewards) == h.flat_steps
                            and max(self._rewards) - min(self._rewards) < h.flat_tolerance,
                            f"the reward has stayed within {h.flat_tolerance:g} for {h.flat_steps} steps "
                            f"(at {values.get('reward', float('nan')):.3g}). Check the reward components' charts; "
                            "raise grpo.learning_rate or use easier data."),
        }
        if "policy/probe_changed" in values:  # measured every health.probe_steps steps only
            update = values.get("policy/update_norm", float("nan"))
            conditions["not_learning"] = (
                values["policy/probe_changed"] == 0,
                f"the policy has not changed in {step} steps: greedy answers to the probe prompts are the same "
                f"as at the start (the trainable weights moved by {update:.2%}). Raise grpo.learning_rate "
                "(1e-4 to 3e-4 with LoRA), grpo.num_generations or grpo.temperature, or use data the model "
                "solves some of the time (data.difficulty_mix), so rewards differ within a group.")
        for code, (holds, message) in conditions.items():
            if not holds:
                self._streak[code] = 0
                self._active.discard(code)
                continue
            self._streak[code] = self._streak.get(code, 0) + 1
            window = 1 if code in ("flat_reward", "not_learning") else h.window  # these have their own windows
            if step >= h.warmup_steps and self._streak[code] >= window and code not in self._active:
                self._active.add(code)
                alerts.append(Alert(code, step, message))
        return alerts
