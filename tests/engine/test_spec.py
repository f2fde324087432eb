"""The run spec: TOML round trip, and validation that names every problem's field."""

from __future__ import annotations

import os

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


# ---- numbers: one rule (finite, storable) for every numeric field, nested tables included

def _numeric_paths(value, path=""):
    """Every float field of a spec, as a dotted path."""
    from dataclasses import fields, is_dataclass

    if is_dataclass(value):
        for f in fields(value):
            yield from _numeric_paths(getattr(value, f.name), f"{path}{f.name}.")
    elif isinstance(value, float):
        yield path.rstrip(".")


ALL_STAGES = ["sft", "prefer", "grpo", "eval"]  # every stage's settings are checked (judge: no float of its own but lr)
FLOAT_FIELDS = sorted(set(_numeric_paths(RunSpec(stages=ALL_STAGES))) | {"judge.learning_rate"})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("path", FLOAT_FIELDS)
def test_every_float_field_refuses_nan_and_inf(path, bad):
    data = RunSpec(stages=ALL_STAGES).to_dict()
    node = data
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = bad
    with pytest.raises(SpecInvalid) as info:
        spec_from_dict(data)
    errors = info.value.by_field()
    assert list(errors) == [path] and f"got {bad}." in errors[path], errors  # one message, this field's


@pytest.mark.parametrize(("text", "field"), [
    ("[rewards]\nweights = { accuracy = nan }\n", "rewards.weights.accuracy"),
    ("[rewards]\npreset = \"cosine\"\nparams = { cosine = { max_value_correct = inf } }\n",
     "rewards.params.cosine.max_value_correct"),
    ("[data]\ndifficulty_mix = { 1 = nan }\n", "data.difficulty_mix.1"),
    ("[grpo]\ntemperature = -nan\n", "grpo.temperature"),
])
def test_nan_in_toml_tables_is_refused(tmp_path, text, field):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(SpecInvalid) as info:
        load_spec(path)
    message = info.value.by_field()[field]
    assert "got nan." in message or "got inf." in message, message


@pytest.mark.parametrize(("path", "value", "field", "says"), [
    ("seed", -1, "seed", "between 0 and 4294967295"),  # NumPy refuses a negative seed at the start of training
    ("seed", 2**32, "seed", "between 0 and 4294967295"),
    ("data.seed", 2**40, "data.seed", "between 0"),
    ("data.seed", 10**20, "data.seed", "between 0"),  # one message: the field's own range
    ("grpo.max_steps", 2**63, "grpo.max_steps", "run store holds whole numbers up to"),
    ("eval.batch_size", 10**30, "eval.batch_size", "too large"),
    ("rewards.weights", {"accuracy": 0, "format": 0.0}, "rewards.weights", "weight 0"),
    ("rewards.params", {"cosine": {"max_len": 0}}, "rewards.params.cosine", "max_len must be positive"),
    ("rewards.params", {"overlong": {"cache_fraction": 3.0}}, "rewards.params.overlong", "cache_fraction"),
    ("rewards.params", {"cosine": {"maxlen": 5.0}}, "rewards.params.cosine", "no constant maxlen"),
    ("data.train_size", 1, "data.train_size", "one GRPO step takes 2 prompts"),  # smoke: 8 / 4 per step
    ("grpo.gradient_accumulation_steps", 20, "data.train_size", "takes 40 prompts"),
    ("data.answer", "question", "data.answer", "already mapped to question"),
    ("data.reasoning", "answer", "data.reasoning", "already mapped to answer"),
])
def test_values_that_would_fail_later_get_a_range(path, value, field, says):
    spec = load_spec(SPECS / "smoke.toml").replace(**{"rewards.custom_file": ""})  # no weight-1 custom rewards
    with pytest.raises(SpecInvalid) as info:
        spec.replace(**{path: value})
    errors = info.value.by_field()
    assert field in errors and says in errors[field], errors


def test_a_spec_file_with_a_utf8_bom_loads(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (SPECS / "smoke.toml").read_bytes())
    assert load_spec(path).name == "smoke"


def test_a_special_file_as_spec_is_refused_without_reading(tmp_path):
    import os

    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)  # read_text would block for ever
    with pytest.raises(SpecInvalid, match="named pipe"):
        load_spec(fifo)
    with pytest.raises(SpecInvalid, match="character device"):
        load_spec("/dev/zero")
    with pytest.raises(SpecInvalid, match="folder, not a file"):
        load_spec(tmp_path)


@pytest.mark.parametrize(("field", "make", "says"), [
    ("data.source", lambda d: os.mkfifo(d / "data.jsonl") or d / "data.jsonl", "named pipe"),
    ("data.source", lambda d: (d / "x.csv").symlink_to(d / "x.csv") or d / "x.csv", "loops"),
    ("rewards.custom_file", lambda d: os.mkfifo(d / "r.py") or d / "r.py", "named pipe"),
    ("rewards.custom_file", lambda d: d, "folder, not a file"),
])
def test_special_files_in_a_spec_are_named(tmp_path, field, make, says):
    spec = load_spec(SPECS / "smoke.toml")
    with pytest.raises(SpecInvalid) as info:
        spec.replace(**{field: str(make(tmp_path))})
    assert says in info.value.by_field()[field]


def test_adar1_spec_shares_the_quickstarts_model_data_and_cold_start():
    adar1, quick = load_spec(SPECS / "adar1.toml"), load_spec(SPECS / "quickstart.toml")
    assert adar1.stages == ["sft", "prefer", "eval"]
    for section in ("model", "data", "sft", "eval"):  # the same held-out prompts, the same SFT start
        assert getattr(adar1, section) == getattr(quick, section), section
    assert adar1.seed == quick.seed and adar1.rewards.resolved_prompt_mode() == "ellipsis"
