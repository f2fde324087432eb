"""Reward components, presets and the builder the GRPO stage uses.

    funcs, weights = build_reward_funcs("r1-zero", max_completion_length=256)
    GRPOConfig(..., reward_weights=weights); GRPOTrainer(..., reward_funcs=funcs)

Importing this package pulls in no torch and no math-verify (that loads on the first
correctness check), so the GUI may import it for `PRESETS`, `COMPONENT_PARAMS` and `formula`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from engine.rewards.adaptive import AdaptThink, ShorterBetter, Thinkless, ThinkMode
from engine.rewards.components import Budget, Cosine, Overlong, accuracy, format_reward, group_length
from engine.rewards.custom import CustomRewardError, RewardError, checked, load_custom_rewards
from engine.rewards.presets import PRESETS, Preset, formula
from engine.rewards.weights import WeightError, resolve_weights, weighted_total

RewardFunc = Callable[..., list]

# model-backed components: built by the stage that owns the model, passed in as `extra`
MODEL_COMPONENTS = ("judge", "reference_likelihood")
_PROVIDED_BY = {
    "judge": "the judge stage (train or pick a reward model)",
    "reference_likelihood": "the GRPO stage's reference-likelihood scorer (it needs the policy model)",
}


def _plain(func: RewardFunc) -> Callable[..., RewardFunc]:
    """Factory for a component without constants: returns the function itself."""

    def factory(**params) -> RewardFunc:
        if params:
            raise ValueError(f"reward {func.__name__!r} has no constants; got {sorted(params)}")
        return func

    return factory


REGISTRY: dict[str, Callable[..., RewardFunc]] = {
    "accuracy": _plain(accuracy),
    "format": _plain(format_reward),
    "group_length": _plain(group_length),
    "cosine": Cosine,
    "budget": Budget,
    "overlong": Overlong,
    "think_mode": ThinkMode,
    "adaptthink": AdaptThink,
    "thinkless": Thinkless,
    "shorterbetter": ShorterBetter,
}


def _defaults(factory: Callable) -> dict[str, float]:
    if not inspect.isclass(factory):
        return {}
    sig = inspect.signature(factory)
    return {k: float(p.default) for k, p in sig.parameters.items()
            if k != "max_len" and p.default is not inspect.Parameter.empty}


# default constants per component (the GUI's editable form); max_len comes from the run
COMPONENT_PARAMS: dict[str, dict[str, float]] = {name: _defaults(f) for name, f in REGISTRY.items()}


def build_component(name: str, params: dict[str, float] | None = None,
                    max_completion_length: int = 256) -> RewardFunc:
    """One registry component, built with `params` over its defaults."""
    if name not in REGISTRY:
        raise ValueError(f"unknown reward component {name!r}; valid: {', '.join(REGISTRY)}")
    params = dict(params or {})
    factory = REGISTRY[name]
    accepted = set(inspect.signature(factory).parameters) if inspect.isclass(factory) else set()
    unknown = sorted(set(params) - accepted)
    if unknown:
        valid = ", ".join(sorted(accepted)) or "none"
        raise ValueError(f"reward {name!r} has no constant {', '.join(unknown)}; valid: {valid}")
    if "max_len" in accepted:
        params.setdefault("max_len", int(max_completion_length))
    return factory(**params)


def build_reward_funcs(preset: str, weights: dict[str, float] | None = None,
                       params: dict[str, dict[str, float]] | None = None,
                       custom_file: str | None = None, max_completion_length: int = 256,
                       extra: dict[str, Callable] | None = None,
                       custom_timeout_s: float = 30) -> tuple[list[Callable], list[float]]:
    """The reward functions and their weights, in order, as GRPOTrainer takes them (see build_rewards)."""
    funcs, weights = build_rewards(preset, weights, params, custom_file, max_completion_length, extra,
                                   custom_timeout_s)
    return list(funcs.values()), [weights[name] for name in funcs]


def build_rewards(preset: str, weights: dict[str, float] | None = None,
                  params: dict[str, dict[str, float]] | None = None,
                  custom_file: str | None = None, max_completion_length: int = 256,
                  extra: dict[str, Callable] | None = None,
                  custom_timeout_s: float = 30) -> tuple[dict[str, Callable], dict[str, float]]:
    """The reward functions by name, in build order, and their resolved weights by the same names.

    Only components with a non-zero weight are built; both dicts have the same keys. The names
    are the metric names (`rewards/<name>/mean`): give them to the functions' wrappers.

    weights: override the preset's weights by name (and add components to it); a weight
        of 0 drops the component. Names of the custom file's functions are accepted too
        (their default weight is 1).
    params: per-component constants over COMPONENT_PARAMS (max_len defaults to
        max_completion_length).
    custom_file: a Python file of `reward_*` functions, each wrapped by `checked`.
    custom_timeout_s: the time limit of one call of a custom function (`checked`).
    extra: already-built model-backed components by name (`{"judge": fn}`), required for
        every MODEL_COMPONENTS entry with a non-zero weight.
    Raises ValueError naming the offending preset, component or constant.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown reward preset {preset!r}; valid: {', '.join(PRESETS)}")
    extra = dict(extra or {})
    params = dict(params or {})
    bad_params = sorted(set(params) - set(REGISTRY))
    if bad_params:
        raise ValueError(f"constants given for unknown reward component(s) {', '.join(bad_params)}; "
                         f"valid: {', '.join(REGISTRY)}")
    custom = [checked(f, custom_timeout_s) for f in load_custom_rewards(custom_file)] if custom_file else []
    if preset == "custom" and not custom:
        raise ValueError("the 'custom' reward preset needs a custom_file of reward_* functions")

    by_name = {f.__name__: f for f in custom}
    funcs: dict[str, Callable] = {}
    out_weights: dict[str, float] = {}
    for name, weight in resolve_weights(preset, weights, custom_file or "", list(by_name)).items():
        if weight == 0:
            continue
        if name in by_name:
            func = by_name[name]
        elif name in MODEL_COMPONENTS or (name in extra and name not in REGISTRY):
            if name not in extra:
                raise ValueError(f"reward component {name!r} needs a model; it is provided by "
                                 f"{_PROVIDED_BY.get(name, 'the stage that owns the model')}")
            func = extra[name]
        elif name in REGISTRY:
            func = build_component(name, params.get(name), max_completion_length)
        else:  # a reward_* weight for a function the custom file does not define
            valid = ", ".join([*REGISTRY, *MODEL_COMPONENTS, *by_name])
            raise WeightError(f"weights.{name}", f"no reward component named {name!r}; valid: {valid}.")
        funcs[name] = func
        out_weights[name] = weight
    if not funcs:
        raise ValueError(f"reward preset {preset!r} has no component with a non-zero weight")
    return funcs, out_weights


__all__ = [
    "COMPONENT_PARAMS", "MODEL_COMPONENTS", "PRESETS", "REGISTRY", "CustomRewardError", "Preset",
    "RewardError", "RewardFunc", "build_component", "build_reward_funcs", "build_rewards", "checked",
    "formula",
    "WeightError", "load_custom_rewards", "resolve_weights", "weighted_total",
]
