"""The New run page: the form makes a valid spec, marks every problem on its widget, saves and opens specs."""

from __future__ import annotations

import json
import tomllib

import pytest
from PySide6.QtCore import Qt

from desktop.new_run import NewRunPage
from desktop.runner import RunController
from desktop.widgets import model_picker
from engine.spec import load_spec


def _headers(table) -> list[str]:
    return [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]


@pytest.fixture
def page(new_run_page):
    return new_run_page


def test_defaults_make_a_valid_spec(page):
    assert page.validate()
    assert page.start_button.isEnabled()
    assert page.spec.model.source == "bundled:smollm2-135m-instruct"  # the bundled model is listed first
    assert page.model.combo.itemData(0) == "bundled:smollm2-135m-instruct"
    assert page.model.combo.itemData(1) == "builtin:tiny-random"
    assert "Ready" in page.summary.text()


def test_the_default_form_is_the_engines_default_spec(page):
    from engine.spec import RunSpec

    page.validate()
    ours, engine = page.spec.to_dict(), RunSpec().to_dict()
    for section in ("model", "grpo", "sft", "judge", "prefer", "eval", "health"):
        assert ours[section] == engine[section], section
    assert (ours["data"]["train_size"], ours["data"]["eval_size"]) == (engine["data"]["train_size"],
                                                                       engine["data"]["eval_size"])


def test_invalid_fields_are_marked_and_start_is_disabled(page, qtbot):
    page.stages.widget("grpo.num_generations").setValue(3)  # the default batch of 16: no whole groups of 3
    page.name_edit.setText("   ")
    page.validate()
    batch = page.stages.fields["grpo.batch_size"]
    assert "whole groups of 3" in batch.error.text() and batch.error.isVisible()
    assert page.stages.widget("grpo.batch_size").property("invalid") is True
    assert "name" in page.name_field.error.text()
    assert not page.start_button.isEnabled()
    assert "2 settings to fix" in page.summary.text()
    page.stages.forms["grpo"].advanced.set_expanded(False)
    page.stages.widget("grpo.save_steps").setValue(0)  # under "Advanced", folded away
    page.validate()
    assert "grpo.save_steps" in page.summary.text()
    page._on_summary_link_activated("grpo.save_steps")  # the summary's link unfolds and scrolls to it
    assert page.stages.forms["grpo"].advanced.button.isChecked()
    assert page.stages.widget("grpo.save_steps").hasFocus() or not page.isActiveWindow()
    page.stages.widget("grpo.save_steps").setValue(10)

    page.stages.widget("grpo.batch_size").setValue(12)
    page.name_edit.setText("fixed")
    qtbot.waitUntil(lambda: page.start_button.isEnabled(), timeout=2000)  # the debounced validation
    assert not batch.error.isVisible() and page.stages.widget("grpo.batch_size").property("invalid") is False


def test_a_bad_learning_rate_and_an_empty_mix_are_marked(page):
    page.stages.widget("grpo.learning_rate").setText("fast")
    for slider in page.data.sliders.values():
        slider.setValue(0)
    page.validate()
    assert "positive number" in page.stages.fields["grpo.learning_rate"].error.text()
    assert "positive weight" in page.data.fields["data.difficulty_mix"].error.text()
    assert not page.start_button.isEnabled()


def test_difficulty_mix_goes_into_the_spec(page):
    page.data.sliders[1].setValue(10)
    page.data.sliders[5].setValue(0)
    page.validate()
    mix = page.spec.data.difficulty_mix
    assert mix["1"] == 1.0 and mix["5"] == 0.0
    page.data.uniform_button.click()
    page.validate()
    assert page.spec.data.difficulty_mix == {}  # an even mix is the spec's "uniform"


def test_a_missing_model_folder_is_marked(page, tmp_path):
    page.model._select_source(str(tmp_path / "no-such-model"))
    page.validate()
    assert "no such file or folder" in page.model.fields["model.source"].error.text()
    assert not page.start_button.isEnabled()


def test_hub_id_entry(page):
    page.model.combo.setCurrentIndex(page.model.combo.findData(model_picker.HUB_ID))
    assert page.model.hub_edit.isVisible()
    page.model.hub_edit.setText("HuggingFaceTB/SmolLM2-360M-Instruct")
    page.validate()
    assert page.spec.model.source == "HuggingFaceTB/SmolLM2-360M-Instruct"


def test_models_in_the_hugging_face_cache_are_listed(qtbot, store, tmp_path, monkeypatch):
    snap = tmp_path / "hub" / "models--someorg--tiny-chat" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--empty--download").mkdir()  # no snapshot with a config: not a usable model
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert model_picker.cached_hub_models() == ["someorg/tiny-chat"]
    controller = RunController(store)
    page = NewRunPage(controller)
    qtbot.addWidget(page)
    assert page.model.combo.findData("someorg/tiny-chat") > 1  # after the bundled and built-in models
    controller._timer.stop()


def test_reward_presets_weights_and_preview(page):
    editor = page.rewards
    names = [editor.presets.item(i).data(Qt.ItemDataRole.UserRole) for i in range(editor.presets.count())]
    editor.presets.setCurrentRow(names.index("concise"))
    assert set(editor.weights) == {"accuracy", "format", "group_length"}
    editor._on_preview_timer_timeout()
    headers = _headers(editor.preview)
    assert headers == ["accuracy", "format", "group_length", "Total"]
    total = editor.preview.columnCount() - 1
    short_right, wrong = editor.preview.item(0, total).text(), editor.preview.item(3, total).text()
    assert float(short_right) > float(wrong)  # a short correct answer beats a short wrong one

    editor.weights["format"].set_value(0)  # weight 0 leaves a component out
    editor._on_preview_timer_timeout()
    assert "format" not in _headers(editor.preview)
    page.validate()
    assert page.spec.rewards.preset == "concise"
    assert page.spec.rewards.weights == {"format": 0.0}  # only overrides of the preset are written


def test_sketch_preset_warns_above_the_papers_style_weight(page):
    editor = page.rewards
    names = [editor.presets.item(i).data(Qt.ItemDataRole.UserRole) for i in range(editor.presets.count())]
    editor.presets.setCurrentRow(names.index("sketch"))
    assert editor.warnings.text() == ""
    editor.weights["judge"].set_value(0.4)
    assert "reward hacking" in editor.warnings.text()
    editor._on_preview_timer_timeout()
    judge_col = _headers(editor.preview).index("judge")
    assert editor.preview.item(0, judge_col).text() == "—"  # needs the trained judge: scored during the run


def test_component_constants_are_editable(page):
    editor = page.rewards
    names = [editor.presets.item(i).data(Qt.ItemDataRole.UserRole) for i in range(editor.presets.count())]
    editor.presets.setCurrentRow(names.index("cosine"))
    editor.components.setCurrentCell(0, 0)
    assert editor.constants.rowCount() > 0
    spin = editor.constants.cellWidget(0, 1)
    key = editor.constants.item(0, 0).text()
    spin.setValue(spin.value() + 0.25)
    page.validate()
    assert key in page.spec.rewards.params["cosine"]


def test_save_and_open_spec(page, tmp_path):
    page.name_edit.setText("round-trip")
    page.model.combo.setCurrentIndex(1)
    page.stages.widget("grpo.max_steps").setValue(7)
    page.stages.widget("grpo.learning_rate").setText("3e-5")
    page.data.sliders[2].setValue(0)
    path = tmp_path / "spec.toml"
    page.save_spec(path)
    spec = load_spec(path)  # what Save writes, the engine reads
    assert (spec.name, spec.model.source, spec.grpo.max_steps, spec.grpo.learning_rate) == \
        ("round-trip", "builtin:tiny-random", 7, 3e-5)

    page.name_edit.setText("other")
    page.stages.widget("grpo.max_steps").setValue(99)
    page.open_spec(path)
    assert page.name_edit.text() == "round-trip" and page.stages.widget("grpo.max_steps").value() == 7
    assert page.data.mix()["2"] == 0.0


def test_opening_an_invalid_spec_marks_its_problems(page, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n[grpo]\nnum_generations = 4\nbatch_size = 6\n')
    page.open_spec(path)
    assert "whole groups of 4" in page.stages.fields["grpo.batch_size"].error.text()
    assert not page.start_button.isEnabled()


def test_the_last_form_is_remembered(qtbot, store):
    controller = RunController(store)
    first = NewRunPage(controller)
    qtbot.addWidget(first)
    first.name_edit.setText("remember-me")
    first.stages.widget("grpo.max_steps").setValue(11)
    first.remember()
    second = NewRunPage(controller)
    qtbot.addWidget(second)
    assert second.name_edit.text() == "remember-me" and second.stages.widget("grpo.max_steps").value() == 11
    controller._timer.stop()


def test_a_data_file_is_previewed_mapped_and_checked(page, qtbot, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps({"problem": f"What is {i} + {i}?", "solution": f"#### {2 * i}",
                                          "level": 1 + i % 3}) for i in range(30)))
    page.data.file_radio.setChecked(True)
    page.data.path_edit.setText(str(path))
    qtbot.waitUntil(lambda: page.data.check_result is not None and not page.data.checking(), timeout=30000)
    result = page.data.check_result
    assert result["columns"] == ["problem", "solution", "level"]
    assert page.data.preview.rowCount() == 20 and page.data.preview.columnCount() == 3
    assert page.data.columns["question"].currentText() == "problem"  # guessed mapping
    assert page.data.columns["answer"].currentText() == "solution"
    assert page.data.columns["difficulty"].currentText() == "level"
    # the columns were guessed after the first check, which then ran again with them
    qtbot.waitUntil(lambda: not page.data.checking() and page.data._checked_mapping[0] == "problem",
                    timeout=30000)
    assert page.data.check_status.text().startswith("✓ 30 rows usable")
    page.validate()
    spec = page.spec_dict()["data"]
    assert (spec["source"], spec["question"], spec["answer"]) == (str(path), "problem", "solution")


def test_an_unreadable_data_file_is_marked(page, qtbot, tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{not json\n{"question": "a", "answer": 1\n')
    page.data.file_radio.setChecked(True)
    page.data.path_edit.setText(str(path))
    qtbot.waitUntil(lambda: page.data.check_result is not None and not page.data.checking(), timeout=30000)
    page.validate()
    error = page.data.file_fields["data.source"].error.text()
    assert "broken.jsonl cannot be used" in error and "line 1: invalid JSON" in error, error
    assert not page.start_button.isEnabled()


def test_a_mapping_without_usable_rows_is_marked(page, qtbot, tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("q,a\nWhat is 1+1?,2\nWhat is 2+2?,4\n")
    page.data.file_radio.setChecked(True)
    page.data.path_edit.setText(str(path))
    qtbot.waitUntil(lambda: page.data.check_result is not None and not page.data.checking(), timeout=30000)
    page.data.columns["question"].setCurrentText("nope")
    qtbot.waitUntil(lambda: not page.data.checking() and page.data._checked_mapping[0] == "nope",
                    timeout=30000)
    page.validate()
    assert "cannot be used" in page.data.file_fields["data.source"].error.text()
    assert page.data.report_text.isVisible() and not page.start_button.isEnabled()


def test_saved_spec_is_valid_toml_of_the_whole_form(page, tmp_path):
    path = tmp_path / "s.toml"
    page.save_spec(path)
    data = tomllib.loads(path.read_text())
    assert set(data) >= {"name", "stages", "model", "data", "rewards", "grpo"}


def test_each_chosen_stage_shows_its_settings(page):
    stages = page.stages
    assert stages.sections["grpo"].isVisible() and not stages.sections["sft"].isVisible()
    stages.stage_boxes["sft"].setChecked(True)
    stages.stage_boxes["eval"].setChecked(True)
    assert stages.sections["sft"].isVisible() and stages.sections["eval"].isVisible()
    stages.widget("sft.max_steps").setValue(0)
    stages.widget("eval.num_samples").setValue(4)  # several samples need sampling: temperature 0 is refused
    page.validate()
    assert "at least 1" in stages.fields["sft.max_steps"].error.text()
    assert "temperature" in stages.fields["eval.temperature"].error.text()
    stages.widget("sft.max_steps").setValue(5)
    stages.widget("eval.temperature").setText("0.6")
    assert page.validate(), page.errors
    assert page.spec.stages == ["sft", "grpo", "eval"] and page.spec.sft.max_steps == 5
    assert "5 SFT steps, then" in page.summary.text()


def test_the_judge_reward_needs_the_judge_stage(page):
    editor = page.rewards
    names = [editor.presets.item(i).data(Qt.ItemDataRole.UserRole) for i in range(editor.presets.count())]
    editor.presets.setCurrentRow(names.index("sketch"))
    page.validate()
    assert "judge stage" in page.stages.fields["stages"].error.text()
    page.stages.stage_boxes["judge"].setChecked(True)
    assert page.validate()


def test_a_spec_with_a_file_keeps_its_column_mapping(page, qtbot, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps({"problem": f"{i} + 1?", "solution": str(i + 1), "alt": "x"})
                              for i in range(10)))
    page.set_spec_dict({"name": "file-run",
                        "data": {"source": str(path), "question": "problem", "answer": "alt"}})
    qtbot.waitUntil(lambda: page.data.check_result is not None and not page.data.checking(), timeout=30000)
    assert page.data.columns["answer"].currentText() == "alt"  # not replaced by a guess ("solution")


def test_the_prefer_stage_is_offered_with_its_key_settings(page):
    form = page.stages
    box = form.stage_boxes["prefer"]
    assert box.isEnabled() and "AdaR1" in box.toolTip()
    assert list(form.stage_boxes) == ["sft", "judge", "prefer", "grpo", "eval"]
    box.setChecked(True)
    assert form.sections["prefer"].isVisibleTo(page)
    for name in ("samples_per_mode", "group_pairs", "instance_pairs", "beta", "loss_type", "max_steps",
                 "learning_rate"):
        assert f"prefer.{name}" in form.fields
    assert form.widget("prefer.loss_type").findText("ipo") >= 0  # TRL's DPO losses, not GRPO's
    assert form.widget("prefer.loss_type").findText("dr_grpo") < 0
    form.widget("prefer.samples_per_mode").setValue(3)
    assert page.validate()
    assert page.spec.stages[-1] == "prefer" or "prefer" in page.spec.stages
    assert page.spec.prefer.samples_per_mode == 3


def test_reward_weights_are_kept_as_typed(page, qtbot):
    """No range and no rounding in the editor: 0.125 and 250 reach the spec as typed; the spec check
    says what is invalid and names the field."""
    editor = page.rewards
    for name, text in (("format", "0.125"), ("accuracy", "250")):
        editor.weights[name].clear()
        qtbot.keyClicks(editor.weights[name], text)
    page.validate()
    assert page.spec.rewards.weights == {"format": 0.125, "accuracy": 250.0}
    assert page.spec.rewards.resolved_weights() == {"accuracy": 250.0, "format": 0.125}
    assert editor.weights["format"].text() == "0.125" and editor.weights["accuracy"].text() == "250"
    editor.set_spec_dict(editor.spec_dict())  # a loaded spec shows the same text
    assert editor.weights["format"].text() == "0.125" and editor.weights["accuracy"].text() == "250"

    editor.weights["format"].setText("lots")
    page.validate()
    assert "must be a finite number" in page.errors["rewards.weights.format"]
    assert not page.start_button.isEnabled()
    assert "rewards.weights.format" in editor.fields["rewards.weights"].error.text()
