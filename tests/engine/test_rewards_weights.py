"""Reward weights resolved once (preset merged with overrides) and the weighted total by TRL's rule."""

from __future__ import annotations

import math

import pytest

from engine.rewards.weights import WeightError, resolve_weights, weighted_total
from engine.spec import RewardSpec

NAN = math.nan


# ---- resolved weights -------------------------------------------------------------------------

def test_preset_only_gives_the_presets_weights_in_order():
    assert list(RewardSpec(preset="sketch").resolved_weights().items()) == [
        ("accuracy", 0.5), ("format", 0.4), ("judge", 0.1)]


def test_overrides_change_weights_keep_zeros_and_add_components_at_the_end():
    spec = RewardSpec(preset="r1-zero", weights={"format": 0, "accuracy": 2, "overlong": 0.125})
    resolved = spec.resolved_weights()
    assert list(resolved.items()) == [("accuracy", 2.0), ("format", 0.0), ("overlong", 0.125)]
    assert all(type(w) is float for w in resolved.values())


def test_custom_functions_come_last_at_weight_one_unless_given(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("def reward_a(prompts, completions, **kw):\n    return [0.0] * len(completions)\n"
                    "def reward_b(prompts, completions, **kw):\n    return [0.0] * len(completions)\n")
    spec = RewardSpec(preset="r1-zero", custom_file=str(path), weights={"reward_b": 250})
    assert list(spec.resolved_weights().items()) == [("accuracy", 1.0), ("format", 0.5), ("reward_a", 1.0),
                                                     ("reward_b", 250.0)]


@pytest.mark.parametrize(("preset", "weights", "field", "message"), [
    # a misspelt component names its field and suggests the right name
    ("r1-zero", {"acuracy": 1.0}, "weights.acuracy", "Did you mean 'accuracy'?"),
    # a name nothing defines lists the known ones
    ("r1-zero", {"brevity": 1.0}, "weights.brevity", "Known: accuracy"),
    # not a number
    ("r1-zero", {"format": "high"}, "weights.format", "must be a finite number; got 'high'"),
    # not finite
    ("r1-zero", {"format": math.inf}, "weights.format", "must be a finite number; got inf"),
    # an unknown preset
    ("r2", {}, "preset", "unknown preset 'r2'"),
])
def test_unknown_or_bad_weights_raise_naming_the_field(preset, weights, field, message):
    with pytest.raises(WeightError, match=message.replace("?", r"\?")) as info:
        resolve_weights(preset, weights)
    assert info.value.field == field


def test_the_spec_check_reports_the_same_field():
    from engine.spec import SpecInvalid, load_spec
    from tests.conftest import SPECS

    with pytest.raises(SpecInvalid) as info:
        load_spec(SPECS / "smoke.toml").replace(**{"rewards.weights": {"acuracy": 1.0}})
    assert "rewards.weights.acuracy" in info.value.by_field()


# ---- weighted total ---------------------------------------------------------------------------

W = {"accuracy": 1.0, "format": 0.5, "judge": 0.1}


@pytest.mark.parametrize(("components", "expected"), [
    # every component scored: the weighted sum
    ({"accuracy": [1.0, 0.0], "format": [1.0, 1.0]}, [1.5, 0.5]),
    # None adds nothing to that sample (TRL: NaN, then nansum)
    ({"accuracy": [1.0, 0.0], "format": [None, 1.0]}, [1.0, 0.5]),
    # a NaN value is the same as None
    ({"accuracy": [NAN, 1.0], "judge": [1.0, NAN]}, [0.1, 1.0]),
    # a sample every component skipped is NaN, not 0 (TRL's unscorable_mask)
    ({"accuracy": [None, 1.0], "format": [None, 0.0]}, [NAN, 1.0]),
    # a scored 0 stays 0 (it is not "skipped")
    ({"accuracy": [0.0], "format": [0.0]}, [0.0]),
    # no component at all: no samples
    ({}, []),
])
def test_weighted_total_follows_trls_rule(components, expected):
    got = weighted_total(components, W)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert (math.isnan(g) and math.isnan(e)) or g == pytest.approx(e)


def test_weighted_total_refuses_a_component_without_weight_or_uneven_lengths():
    with pytest.raises(ValueError, match="no weight for reward component"):
        weighted_total({"cosine": [1.0]}, W)
    with pytest.raises(ValueError, match="different numbers of samples"):
        weighted_total({"accuracy": [1.0], "format": [1.0, 0.0]}, W)
