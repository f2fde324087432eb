"""The stages of a run and their settings: each chosen stage's key settings, the rest under "Advanced".

The forms are built from the engine's stage dataclasses (`GRPOSpec`, `SFTSpec`, ...), so a
setting the engine adds shows up under "Advanced" without a change here; what is listed
below only picks the key settings, labels, hints and choices.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.widgets.forms import Collapsible, ComboBox, Field, SciEdit, SpinBox, form_layout, label
from desktop.widgets.timeline import STAGE_TITLES
from engine import spec as engine_spec
from engine.spec import DPO_LOSS_TYPES, LOSS_TYPES, SCALE_REWARDS, SFT_TRACES, STAGE_ORDER

STAGE_HELP = {
    "sft": "teaches the output format and concise thinking from sketch traces",
    "judge": "trains a reward model that prefers concise, correct reasoning (the judge reward)",
    "prefer": "AdaR1's offline preference training: samples the model's own thinking and direct answers once, "
              "prefers the style that solves each problem better (and the shorter correct answer), then DPO",
    "grpo": "reinforcement learning with the chosen rewards",
    "eval": "scores the trained model (and the base) on the held-out problems",
}
SECTIONS = {  # spec section -> (dataclass, key settings shown first)
    "sft": (engine_spec.SFTSpec, ("max_steps", "learning_rate", "batch_size", "max_length", "trace")),
    "judge": (engine_spec.JudgeSpec, ("max_steps", "learning_rate", "batch_size", "max_length")),
    "prefer": (engine_spec.PreferSpec, ("samples_per_mode", "max_completion_length", "group_pairs",
                                        "instance_pairs", "beta", "loss_type", "max_steps", "learning_rate")),
    "grpo": (engine_spec.GRPOSpec, ("max_steps", "learning_rate", "num_generations", "batch_size",
                                    "max_completion_length")),
    "eval": (engine_spec.EvalSpec, ("num_samples", "temperature", "max_completion_length", "compare_base")),
    "health": (engine_spec.HealthSpec, ()),
}
LABELS = {
    "max_steps": "Steps", "learning_rate": "Learning rate", "num_generations": "Generations",
    "batch_size": "Batch",
    "max_completion_length": "Completion length", "max_length": "Max length", "top_p": "Top-p",
    "beta": "KL weight", "loss_type": "Loss", "scale_rewards": "Reward scaling",
    "gradient_accumulation_steps": "Gradient accumulation", "save_steps": "Save every",
    "traces_per_step": "Traces per step", "gradient_checkpointing": "Gradient checkpointing",
    "num_samples": "Samples per prompt", "compare_base": "Also evaluate the base model",
    "teacher_source": "Teacher model", "teacher_prompt": "Teacher prompt", "eval_pairs": "Held-out pairs",
    "enabled": "Alerts on", "warmup_steps": "Quiet for the first", "window": "Steps in a row",
    "truncated_share": "Cut-off share", "zero_spread_share": "Zero-spread share",
    "flat_steps": "Flat reward steps",
    "flat_tolerance": "Flat tolerance", "min_mean_tokens": "Min mean tokens", "kl_max": "Max KL",
    "probe_steps": "Probe every", "probe_prompts": "Probe prompts",
    "samples_per_mode": "Samples per mode", "group_pairs": "Group pairs per problem",
    "instance_pairs": "Instance pairs per problem", "margin": "Long-style margin",
}
HINTS = {
    "grpo.learning_rate": "1e-4 to 3e-4 moves a small model with LoRA; 1e-5 barely does",
    "grpo.num_generations": "completions per prompt, compared with each other",
    "grpo.batch_size": "completions per step: whole groups of generations",
    "grpo.max_completion_length": "tokens; longer completions are cut off",
    "grpo.beta": "KL weight to the base model; 0 = no reference model",
    "grpo.loss_type": "dr_grpo: length effects come from the rewards alone",
    "grpo.save_steps": "checkpoint every N steps (and at the end and on stop)",
    "grpo.traces_per_step": "completions kept per step for the monitor; 0 = all",
    "grpo.gradient_checkpointing": "less memory, a little slower",
    "sft.learning_rate": "2e-4 is typical with LoRA",
    "sft.max_length": "tokens of prompt and target; longer examples are cut",
    "sft.trace": "sketch: concise traces; reasoning: the long trace as given; mixed: each problem as its "
                 "sketch and as a direct answer, so GRPO can learn when to think",
    "sft.converter": "how long traces become sketches when the data has none",
    "judge.batch_size": "preference pairs per step",
    "prefer.samples_per_mode": "answers sampled per problem with thinking, and as many without",
    "prefer.max_completion_length": "tokens per sampled answer",
    "prefer.group_pairs": "the better-solving style's correct answer over the other style's answers",
    "prefer.instance_pairs": "a shorter correct answer over a longer one of the same style",
    "prefer.beta": "DPO's beta: higher keeps the model closer to where it started",
    "prefer.loss_type": "TRL's DPO loss; sigmoid is the original DPO",
    "prefer.margin": "long is preferred only when it solves the problem more often by more than this",
    "prefer.batch_size": "preference pairs per step",
    "judge.eval_pairs": "held-out pairs for the judge's pairwise accuracy",
    "eval.num_samples": "pass@k is reported for k up to this",
    "eval.temperature": "0 = greedy (one sample only)",
    "health.warmup_steps": "steps without alerts (except NaN)",
    "health.truncated_share": "alert when more completions than this are cut off",
    "health.zero_spread_share": "alert when more groups than this get equal rewards",
    "health.probe_steps": "steps between greedy probes; an unchanged probe raises the not-learning alert",
}
CHOICES = {"prefer.loss_type": DPO_LOSS_TYPES, "loss_type": LOSS_TYPES, "scale_rewards": SCALE_REWARDS,
           "trace": SFT_TRACES, "converter": ("rules", "teacher")}  # "section.name" before "name"
MULTILINE = {"teacher_prompt"}


class DataclassForm(QWidget):
    """Inputs for one spec section's dataclass: key settings first, the rest under "Advanced"."""

    sig_changed = Signal()
    """A setting changed."""

    def __init__(self, section: str, cls: type, key: tuple[str, ...], advanced_title: str = "Advanced"):
        super().__init__()
        self.section = section
        self.defaults = {f.name: _default(f) for f in dataclasses.fields(cls)}
        self.types = typing.get_type_hints(cls)
        self.inputs: dict[str, QWidget] = {}
        self.fields: dict[str, Field] = {}
        self.lists = {n for n, t in self.types.items() if list in (typing.get_origin(t), *typing.get_args(t))}
        key_form, more_form = form_layout(), form_layout()
        key_form.setContentsMargins(0, 0, 0, 0)
        more_form.setContentsMargins(0, 0, 0, 0)
        for name in [*key, *(n for n in self.defaults if n not in key)]:
            widget = self._input(name)
            path = f"{section}.{name}"
            self.inputs[name] = widget
            self.fields[path] = Field(widget, HINTS.get(path, ""))
            text = "" if isinstance(widget, QCheckBox) else _label(name)
            (key_form if name in key else more_form).addRow(text, self.fields[path])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(key_form)
        self.advanced = None
        if more_form.rowCount():
            more = QWidget()
            more.setLayout(more_form)
            self.advanced = Collapsible(advanced_title, more)
            layout.addWidget(self.advanced)
        self.set_values({})

    def _input(self, name: str) -> QWidget:
        hint, default = self.types[name], self.defaults[name]
        choices = CHOICES.get(f"{self.section}.{name}", CHOICES.get(name))
        if choices:
            widget = ComboBox()
            widget.addItems(choices)
            widget.currentTextChanged.connect(self.sig_changed)
        elif hint is bool:
            widget = QCheckBox(_label(name))
            widget.toggled.connect(self.sig_changed)
        elif hint is int:
            widget = SpinBox(-1, 10_000_000, 0)
            widget.valueChanged.connect(self.sig_changed)
        elif hint is float:
            widget = SciEdit(default)
            widget.textChanged.connect(self.sig_changed)
        elif name in MULTILINE:
            widget = QPlainTextEdit()
            widget.setMaximumHeight(90)
            widget.textChanged.connect(self.sig_changed)
        else:
            widget = QLineEdit()
            widget.textChanged.connect(self.sig_changed)
        return widget

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, widget in self.inputs.items():
            if isinstance(widget, ComboBox):
                out[name] = widget.currentText()
            elif isinstance(widget, QCheckBox):
                out[name] = widget.isChecked()
            elif isinstance(widget, SpinBox):
                out[name] = widget.value()
            elif isinstance(widget, SciEdit):
                value = widget.value()
                out[name] = value if math.isfinite(value) else math.nan  # the spec says "must be a number"
            elif isinstance(widget, QPlainTextEdit):
                out[name] = widget.toPlainText()
            elif name in self.lists:
                out[name] = _list_value(widget.text())
            else:
                out[name] = widget.text().strip()
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for name, widget in self.inputs.items():
            value = values.get(name, self.defaults[name])
            if isinstance(widget, ComboBox):
                widget.setCurrentText(str(value))
            elif isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, SpinBox):
                widget.setValue(int(value))
            elif isinstance(widget, SciEdit):
                widget.set_value(float(value))
            elif isinstance(widget, QPlainTextEdit):
                widget.setPlainText(str(value))
            elif isinstance(value, list):
                widget.setText(", ".join(map(str, value)))
            else:
                widget.setText(str(value))


def _list_value(text: str) -> Any:
    """A list field's text: "8, 16, 32" or "[8, 16]" as a list (TOML's reading), a word (such as "all") as
    it is; what does not read is passed on as text for the spec's check to name."""
    text = text.strip()
    if not text:
        return []
    if not any(ch.isdigit() for ch in text):
        return text
    try:
        return tomllib.loads(f"v = {text if text.startswith('[') else f'[{text}]'}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


class StageForm(QGroupBox):
    sig_changed = Signal()
    """A stage was switched on or off, or a setting changed."""

    def __init__(self, parent=None):
        super().__init__("Stages", parent)
        self.stage_boxes: dict[str, QCheckBox] = {}
        stages_row = QHBoxLayout()
        stages_row.setContentsMargins(0, 0, 0, 0)
        for stage in STAGE_ORDER:
            box = QCheckBox(STAGE_TITLES.get(stage, stage))
            box.setToolTip(STAGE_HELP.get(stage, ""))
            box.toggled.connect(self._on_stage_box_toggled)
            self.stage_boxes[stage] = box
            stages_row.addWidget(box)
        stages_row.addStretch(1)
        stages_widget = QWidget()
        stages_widget.setLayout(stages_row)

        self.forms: dict[str, DataclassForm] = {}
        self.sections: dict[str, QWidget] = {}
        layout = QVBoxLayout(self)
        self.fields: dict[str, Field] = {"stages": Field(stages_widget, "stages run in this order; "
                                                                          "hover over one for what it does")}
        layout.addWidget(self.fields["stages"])
        for stage in STAGE_ORDER:
            cls, key = SECTIONS[stage]
            form = DataclassForm(stage, cls, key, f"Advanced {STAGE_TITLES.get(stage, stage)} settings")
            form.sig_changed.connect(self.sig_changed)
            section = QWidget()
            box = QVBoxLayout(section)
            box.setContentsMargins(0, 6, 0, 0)
            box.addWidget(label(STAGE_TITLES.get(stage, stage), "section"))
            box.addWidget(label(STAGE_HELP[stage].capitalize() + ".", "muted"))
            box.addWidget(form)
            if stage == "grpo":  # health alerts watch GRPO's steps
                cls, key = SECTIONS["health"]
                health = DataclassForm("health", cls, key)
                health.sig_changed.connect(self.sig_changed)
                self.forms["health"] = health
                box.addWidget(Collapsible("Training health alerts", health))
            self.forms[stage] = form
            self.sections[stage] = section
            layout.addWidget(section)

        self.run_seed = SpinBox(0, 2**31 - 1, 42)
        self.run_seed.valueChanged.connect(self.sig_changed)
        self.output_dir = QLineEdit()
        self.output_dir.setPlaceholderText("under the Ponder home")
        self.output_dir.textChanged.connect(self.sig_changed)
        run_form = form_layout()
        self.fields["seed"] = Field(self.run_seed)
        self.fields["output_dir"] = Field(self.output_dir, "where the run folder (checkpoints, adapter) goes")
        run_form.addRow("Seed", self.fields["seed"])
        run_form.addRow("Output folder", self.fields["output_dir"])
        run_widget = QWidget()
        run_widget.setLayout(run_form)
        layout.addWidget(Collapsible("Run seed and output folder", run_widget))
        for form in self.forms.values():
            self.fields.update(form.fields)
        self.set_spec_dict({"stages": ["grpo"]})

    def widget(self, path: str) -> QWidget:
        """The input of a dotted spec path, e.g. "grpo.batch_size"."""
        section, name = path.split(".", 1)
        return self.forms[section].inputs[name]

    def _on_stage_box_toggled(self, _on: bool) -> None:
        self._show_sections()
        self.sig_changed.emit()

    def _show_sections(self) -> None:
        for stage, section in self.sections.items():
            section.setVisible(self.stage_boxes[stage].isChecked())

    def stages(self) -> list[str]:
        return [s for s, box in self.stage_boxes.items() if box.isChecked()]

    def spec_parts(self) -> dict[str, Any]:
        """The stage sections of the spec (every stage's settings, chosen or not) and the stage list."""
        out: dict[str, Any] = {"stages": self.stages(), "seed": self.run_seed.value(),
                               "output_dir": self.output_dir.text().strip()}
        out.update({section: form.values() for section, form in self.forms.items()})
        return out

    def set_spec_dict(self, spec: dict[str, Any]) -> None:
        stages = spec.get("stages") or ["grpo"]
        for stage, box in self.stage_boxes.items():
            box.blockSignals(True)
            box.setChecked(stage in stages)
            box.blockSignals(False)
        for section, form in self.forms.items():
            form.set_values(spec.get(section) or {})
        self.run_seed.setValue(int(spec.get("seed", 42)))
        self.output_dir.setText(str(spec.get("output_dir", "")))
        self._show_sections()
