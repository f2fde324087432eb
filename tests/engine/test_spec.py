"""The run spec: TOML round trip, and validation that names every problem's field."""

from __future__ import annotations

import pytest

from engine.spec import RunSpec, SpecInvalid, dumps_spec, load_spec, save_spec, spec_from_dict
from tests.conftest import SPECS


@pytest.mark.parametrize("name", ["smoke.toml", "grpo-smollm2.toml"])
def test_shipped_specs_load(name):
    spec = load_spec(SPECS / name)
    assert spec.stages == ["grpo"]
    assert spec.grpo.batch_size % spec.grpo.num_generations == 0


def test_round_trip(tmp_path):
    spec = load_spec(SPECS / "smoke.toml")
    path = save_spec(spec, tmp_path / "spec.toml")
    assert load_spec(path) == spec
    assert spec_from_dict(spec.to_dict()) == spec


def test_three_mistakes_three_errors():
    data = load_spec(SPECS / "smoke.toml").to_dict()
    data["grpo"]["num_generations"] = 3  # batch_size 8 is not a multiple of 3
    data["grpo"]["learning_rat"] = 1e-5  # a typo
    data["model"]["lora"]["r"] = "sixteen"  # wrong type
    with pytest.raises(SpecInvalid) as info:
        spec_from_dict(data)
    fields = info.value.by_field()
    assert set(fields) == {"grpo.batch_size", "grpo.learning_rat", "model.lora.r"}, fields
    assert "learning_rate" in fields["grpo.learning_rat"]  # "did you mean"
    assert "multiple" in fields["grpo.batch_size"]
    assert "whole number" in fields["model.lora.r"]


@pytest.mark.parametrize(("path", "value", "field"), [
    ("grpo.num_generations", 1, "grpo.num_generations"),  # GRPO needs a group
    ("grpo.loss_type", "ppo", "grpo.loss_type"),  # TRL would fail only at the first step
    ("model.source", "bundled:nope", "model.source"),
    ("model.source", "/no/such/model.gguf", "model.source"),
    ("data.source", "builtin:chess", "data.source"),
    ("rewards.preset", "fastest", "rewards.preset"),
    ("rewards.weights", {"acuracy": 1.0}, "rewards.weights.acuracy"),
    ("stages", ["grpo", "sft"], "stages"),  # wrong order
    ("model.device", "tpu", "model.device"),
])
def test_single_mistakes_name_their_field(path, value, field):
    spec = load_spec(SPECS / "smoke.toml")
    with pytest.raises(SpecInvalid) as info:
        spec.replace(**{path: value})
    assert field in info.value.by_field(), info.value


def test_bad_toml_is_a_spec_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = [unclosed\n")
    with pytest.raises(SpecInvalid, match="not valid TOML"):
        load_spec(path)


def test_defaults_are_valid():
    assert "grpo" in dumps_spec(RunSpec())


def test_adar1_spec_shares_the_quickstarts_model_data_and_cold_start():
    adar1, quick = load_spec(SPECS / "adar1.toml"), load_spec(SPECS / "quickstart.toml")
    assert adar1.stages == ["sft", "prefer", "eval"]
    for section in ("model", "data", "sft", "eval"):  # the same held-out prompts, the same SFT start
        assert getattr(adar1, section) == getattr(quick, section), section
    assert adar1.seed == quick.seed and adar1.rewards.resolved_prompt_mode() == "ellipsis"
