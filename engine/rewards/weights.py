"""Reward weights resolved once, and the weighted total TRL trains on.

    weights = spec.rewards.resolved_weights()      # {"accuracy": 1.0, "format": 0.5}
    totals = weighted_total({"accuracy": [1, 0], "format": [1, None]}, weights)   # [1.5, 0.0]

One dict, name -> weight, in the order the components are built: the preset's components,
then the user's overrides (new names added at the end), then the functions of a custom file
that were not given a weight (weight 1). A weight of 0 stays in the dict (the editor shows it);
the builder leaves such a component out. Pure python: the GUI imports this.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

CUSTOM_DEFAULT_WEIGHT = 1.0  # a custom file's function that no weight names


class WeightError(ValueError):
    """A reward weight is invalid; `field` is its dotted path under `rewards` (`weights.format`)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def custom_reward_names(custom_file: str | None) -> list[str]:
    """The `reward_*` functions a custom file defines, read without running it (its syntax tree).

    The builder imports the file (and honours `__all__`); this is what the GUI and the model
    card can know without executing user code. A missing or broken file gives none."""
    path = Path(custom_file).expanduser() if custom_file else None
    if path is None or not path.is_file():  # a pipe or device would block the read: the spec check names it
        return []
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("reward_")]


def weight_problems(preset: str, overrides: Mapping[str, object] | None, custom_file: str = "",
                    custom_names: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Every problem of these weights as (field under `rewards`, message); empty when they resolve."""
    import difflib

    from engine.rewards import MODEL_COMPONENTS, REGISTRY
    from engine.rewards.presets import PRESETS

    out: list[tuple[str, str]] = []
    if preset not in PRESETS:
        out.append(("preset", f"unknown preset {preset!r}; available: {', '.join(PRESETS)}."))
    known = set(REGISTRY) | set(MODEL_COMPONENTS) | set(custom_names)
    for name, weight in (overrides or {}).items():
        if name not in known and not (custom_file and name.startswith("reward_")):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known: {', '.join(sorted(known))}."
            out.append((f"weights.{name}", f"no reward component named {name!r}.{hint}"))
        elif isinstance(weight, bool) or not (isinstance(weight, int | float) and math.isfinite(weight)):
            out.append((f"weights.{name}", f"must be a finite number; got {weight!r}."))
    return out


def resolve_weights(preset: str, overrides: Mapping[str, float] | None = None, custom_file: str = "",
                    custom_names: Iterable[str] | None = None) -> dict[str, float]:
    """The preset's weights merged with `overrides`, plus a custom file's unnamed functions at weight 1.

    custom_names: the custom file's function names (default: read from `custom_file`'s syntax tree).
    Raises WeightError naming the first bad field (unknown preset or component, a weight that is
    not a finite number)."""
    from engine.rewards.presets import PRESETS

    names = list(custom_reward_names(custom_file) if custom_names is None else custom_names)
    problems = weight_problems(preset, overrides, custom_file, names)
    if problems:
        raise WeightError(*problems[0])
    merged = {name: float(w) for name, w in PRESETS[preset].weights(dict(overrides or {})).items()}
    # the builder's order: registry and model components first, then the custom file's functions
    # in file order, then weights of reward_* names the file's syntax tree did not show
    resolved = {name: w for name, w in merged.items() if name not in names and not name.startswith("reward_")}
    resolved.update({name: merged.get(name, CUSTOM_DEFAULT_WEIGHT) for name in names})
    resolved.update({name: w for name, w in merged.items() if name not in resolved})
    return resolved


def weighted_total(components: Mapping[str, list[float | None]], weights: Mapping[str, float]) -> list[float]:
    """Each sample's total reward, by the rule TRL's GRPOTrainer trains on and logs.

    TRL 1.16 `GRPOTrainer._calculate_rewards` turns a reward function's None into NaN
    (`reward if reward is not None else torch.nan`); `_generate_and_score_completions` then takes
    `(rewards_per_func * reward_weights).nansum(dim=1)`, so a component that skipped a sample
    adds nothing to that sample's total, and sets `rewards[unscorable_mask] = torch.nan` where
    every function returned None (`torch.isnan(rewards_per_func).all(dim=1)`): such a sample's
    total is NaN, not 0 (its advantage becomes 0 and the logged `reward` is the nanmean over the
    other samples). Here None and NaN are the same "skipped". TRL computes in float32, this in
    float64: totals agree to float32 precision.

    components: name -> one value per sample (all the same length); weights: name -> weight,
    one for every component (KeyError-free: a missing weight is a ValueError naming it).
    """
    missing = [name for name in components if name not in weights]
    if missing:
        raise ValueError(f"no weight for reward component(s) {', '.join(missing)}; "
                         f"weights are given for {', '.join(weights) or 'none'}")
    lengths = {len(v) for v in components.values()}
    if len(lengths) > 1:
        raise ValueError(f"reward components scored different numbers of samples: "
                         f"{ {name: len(v) for name, v in components.items()} }")
    n = lengths.pop() if lengths else 0
    totals = []
    for i in range(n):
        scored = [(weights[name], float(v[i])) for name, v in components.items() if not _skipped(v[i])]
        totals.append(sum(w * x for w, x in scored) if scored else math.nan)
    return totals


def _skipped(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
