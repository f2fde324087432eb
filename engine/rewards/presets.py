"""Reward presets: named, weighted lists of components plus the prompt mode they need.

Pure data (no torch, no math-verify), so the GUI can import it. REWARDS.md is the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROMPT_MODES = ("think", "ellipsis", "budget")

_FORMULAS = {
    "accuracy": "1 if the answer equals the reference by value (math-verify) else 0",
    "format": "1 if exactly one <think> block then one <answer> block else 0",
    "cosine": "correct: 0.5 + 0.25(1 + cos(pi L/Lmax)); wrong: -0.5 - 0.25(1 + cos(pi L/Lmax))",
    "group_length": "lam = 0.5 - (L - Lmin)/(Lmax_g - Lmin) per prompt group; "
                    "lam if correct, min(0, lam) if wrong",
    "budget": "clip(alpha (B - L) + delta, 0, 1) if correct else 0",
    "overlong": "0 if L <= Lmax - C; ((Lmax - C) - L)/C up to Lmax; -1 beyond",
    "think_mode": "think +1/0, no-think +2/-1 (correct/wrong), -2 if degenerate; batch-balanced (stage 1); "
                  "length-aware exp(-alpha z) - 1 / 1 - exp(-beta z) (stage 3)",
    "adaptthink": "acc - reference accuracy + delta * [no-think]",
    "thinkless": "+1 correct no-think, +0.5 correct think, -1 wrong",
    "shorterbetter": "alpha acc - beta |L - shortest correct length in group|",
    "judge": "reward model score, normalised to [0, 1] over the group; paid only when correct",
    "reference_likelihood": "mean log-probability of the reference answer given prompt and reasoning",
}


def formula(name: str) -> str:
    """One-line human-readable formula of a component, for the GUI."""
    if name not in _FORMULAS:
        raise ValueError(f"unknown reward component {name!r}; known: {', '.join(sorted(_FORMULAS))}")
    return _FORMULAS[name]


@dataclass(frozen=True)
class Preset:
    """A named, weighted list of reward components.

    components: component name -> default weight, in the order they are built.
    prompt_mode: "think" (prompt ends with "<think>\\n"), "ellipsis" (ends inside
        "<think>\\n...\\n" so the model may close the block at once) or "budget" (think
        mode, with the token budget stated in the prompt).
    warn_above: component -> the largest weight the source found safe; above it
        `warnings` says why.
    """

    name: str
    components: dict[str, float]
    prompt_mode: str
    description: str
    reproduces: str
    warn_above: dict[str, tuple[float, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.prompt_mode not in PROMPT_MODES:
            raise ValueError(f"preset {self.name!r}: prompt_mode must be one of {PROMPT_MODES}; "
                             f"got {self.prompt_mode!r}")

    def weights(self, overrides: dict[str, float] | None = None) -> dict[str, float]:
        """The preset's weights with `overrides` applied (new names are added at the end)."""
        return {**self.components, **(overrides or {})}

    def warnings(self, weights: dict[str, float] | None = None) -> list[str]:
        """Human-readable warnings about these weights (the preset's own when None)."""
        merged = self.weights(weights)
        out = []
        for name, (limit, why) in self.warn_above.items():
            if merged.get(name, 0.0) > limit:
                out.append(f"{name} weight {merged[name]:g} is above {limit:g}: {why}")
        if self.name != "custom" and not any(merged.get(n, 0.0) > 0 for n in _PAYS_FOR_CORRECTNESS):
            out.append("no component pays for correct answers: the model can score by format or "
                       "length alone")
        return out


# components that include correctness in their value
_PAYS_FOR_CORRECTNESS = ("accuracy", "cosine", "budget", "think_mode", "adaptthink", "thinkless",
                         "shorterbetter", "judge", "reference_likelihood")

_SKETCH_STYLE = ("SketchThinker-R1 found a style weight of 0.4 shortened outputs further but lost "
                 "accuracy (reward hacking); the paper uses 0.1")

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("r1-zero", {"accuracy": 1.0, "format": 0.5}, "think",
           "Rule rewards only: a correct answer and the think/answer format.",
           "DeepSeek-R1-Zero"),
    Preset("concise", {"accuracy": 1.0, "format": 0.5, "group_length": 0.5}, "think",
           "Correctness plus a length penalty relative to the other answers to the same prompt.",
           "Kimi k1.5 length penalty"),
    Preset("cosine", {"cosine": 1.0, "format": 0.5}, "think",
           "Length-scaled correctness: short correct answers earn most, short wrong answers cost most.",
           "Yeo et al. 2025, Demystifying Long Chain-of-Thought Reasoning"),
    Preset("budget", {"budget": 1.0, "format": 0.5}, "budget",
           "Correct answers pay more the further they stay under the token budget stated in the prompt.",
           "L1 (LCPO, L1-Max)"),
    Preset("autothink", {"accuracy": 1.0, "format": 0.5, "think_mode": 1.0}, "ellipsis",
           "The model chooses to think or not; correct no-think answers pay more, modes kept in balance.",
           "AutoThink (Learning When to Think)"),
    Preset("sketch", {"accuracy": 0.5, "format": 0.4, "judge": 0.1}, "think",
           "Correctness, format and the sketch judge's style score; run after the sketch cold start.",
           "SketchThinker-R1", warn_above={"judge": (0.1, _SKETCH_STYLE)}),
    Preset("adaptthink", {"adaptthink": 1.0, "format": 0.5}, "ellipsis",
           "Correctness above the reference model's, plus a small bonus for not thinking.",
           "AdaptThink (delta = 0.05)"),
    Preset("thinkless", {"thinkless": 1.0, "format": 0.5}, "ellipsis",
           "Correct no-think answers +1, correct think answers +0.5, wrong -1.",
           "Thinkless"),
    Preset("shorterbetter", {"shorterbetter": 1.0, "format": 0.5}, "think",
           "Correctness minus the distance to the shortest correct answer in the group.",
           "ShorterBetter"),
    Preset("custom", {}, "think",
           "Your own Python file of reward functions (reward_* callables), plus any component you add.",
           ""),
)}
