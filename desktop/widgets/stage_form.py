"""The stages of a run and their settings: the key ones in view, the rest under "Advanced"."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QGroupBox, QHBoxLayout, QLineEdit, QVBoxLayout, QWidget

from engine.spec import AVAILABLE_STAGES, LOSS_TYPES, SCALE_REWARDS, STAGE_ORDER, GRPOSpec

from desktop.widgets.forms import Collapsible, ComboBox, DoubleSpinBox, Field, SciEdit, SpinBox, form_layout, label
from desktop.widgets.timeline import STAGE_TITLES

STAGE_HELP = {
    "sft": "teaches the output format and concise thinking from sketch traces",
    "judge": "trains a reward model that prefers concise, correct reasoning",
    "grpo": "reinforcement learning with the chosen rewards",
    "eval": "scores the trained model on the held-out problems",
}


class StageForm(QGroupBox):
    sig_changed = Signal()
    """A stage was switched on or off, or a setting changed."""

    def __init__(self, parent=None):
        super().__init__("Stages", parent)
        d = GRPOSpec()
        self.stage_boxes: dict[str, QCheckBox] = {}
        stages_row = QHBoxLayout()
        for stage in STAGE_ORDER:
            box = QCheckBox(STAGE_TITLES.get(stage, stage))
            available = stage in AVAILABLE_STAGES
            box.setEnabled(available)
            box.setChecked(stage == "grpo")
            box.setToolTip(STAGE_HELP.get(stage, "") + ("" if available else " (not available in this version)"))
            box.toggled.connect(self._on_stage_box_toggled)
            self.stage_boxes[stage] = box
            stages_row.addWidget(box)
        stages_row.addStretch(1)
        stages_widget = QWidget()
        stages_widget.setLayout(stages_row)

        self.max_steps = SpinBox(0, 1_000_000, d.max_steps)
        self.learning_rate = SciEdit(d.learning_rate)
        self.num_generations = SpinBox(0, 256, d.num_generations)
        self.batch_size = SpinBox(0, 65536, d.batch_size)
        self.max_completion_length = SpinBox(0, 131072, d.max_completion_length, 16, " tokens")
        self.temperature = DoubleSpinBox(0, 5, d.temperature, 0.05, 2)
        self.top_p = DoubleSpinBox(0, 1, d.top_p, 0.05, 2)
        self.beta = DoubleSpinBox(0, 10, d.beta, 0.01, 3)
        self.loss_type = ComboBox()
        self.loss_type.addItems(LOSS_TYPES)
        self.scale_rewards = ComboBox()
        self.scale_rewards.addItems(SCALE_REWARDS)
        self.grad_accum = SpinBox(0, 1024, d.gradient_accumulation_steps)
        self.save_steps = SpinBox(0, 1_000_000, d.save_steps)
        self.traces_per_step = SpinBox(0, 65536, d.traces_per_step)
        self.traces_per_step.setSpecialValueText("all")
        self.grad_ckpt = QCheckBox("Gradient checkpointing")
        self.run_seed = SpinBox(0, 2**31 - 1, 42)
        self.output_dir = QLineEdit()
        self.output_dir.setPlaceholderText("under the Ponder home")

        self.fields: dict[str, Field] = {
            "stages": Field(stages_widget),
            "grpo.max_steps": Field(self.max_steps),
            "grpo.learning_rate": Field(self.learning_rate, "1e-5 to 5e-5 is typical with LoRA"),
            "grpo.num_generations": Field(self.num_generations, "completions per prompt, compared with each other"),
            "grpo.batch_size": Field(self.batch_size, "completions per step: whole groups of generations"),
            "grpo.max_completion_length": Field(self.max_completion_length, "longer completions are cut off"),
            "grpo.temperature": Field(self.temperature),
            "grpo.top_p": Field(self.top_p),
            "grpo.beta": Field(self.beta, "KL weight to the base model; 0 = no reference model"),
            "grpo.loss_type": Field(self.loss_type, "dr_grpo: length effects come from the rewards alone"),
            "grpo.scale_rewards": Field(self.scale_rewards),
            "grpo.gradient_accumulation_steps": Field(self.grad_accum),
            "grpo.save_steps": Field(self.save_steps, "checkpoint every N steps (and at the end and on stop)"),
            "grpo.traces_per_step": Field(self.traces_per_step, "completions kept per step for the monitor"),
            "grpo.gradient_checkpointing": Field(self.grad_ckpt, "less memory, a little slower"),
            "seed": Field(self.run_seed),
            "output_dir": Field(self.output_dir),
        }
        key = form_layout()
        for name, text in (("grpo.max_steps", "Steps"), ("grpo.learning_rate", "Learning rate"),
                           ("grpo.num_generations", "Generations"), ("grpo.batch_size", "Batch"),
                           ("grpo.max_completion_length", "Completion length")):
            key.addRow(text, self.fields[name])
        advanced = QWidget()
        form = form_layout()
        form.setContentsMargins(0, 0, 0, 0)
        for name, text in (("grpo.temperature", "Temperature"), ("grpo.top_p", "Top-p"), ("grpo.beta", "KL weight"),
                           ("grpo.loss_type", "Loss"), ("grpo.scale_rewards", "Reward scaling"),
                           ("grpo.gradient_accumulation_steps", "Gradient accumulation"),
                           ("grpo.save_steps", "Save every"), ("grpo.traces_per_step", "Traces per step"),
                           ("grpo.gradient_checkpointing", ""), ("seed", "Seed"), ("output_dir", "Output folder")):
            form.addRow(text, self.fields[name])
        advanced.setLayout(form)
        self.advanced = Collapsible("Advanced GRPO settings", advanced)

        layout = QVBoxLayout(self)
        layout.addWidget(self.fields["stages"])
        layout.addWidget(label("GRPO", "section"))
        layout.addLayout(key)
        layout.addWidget(self.advanced)

        for spin in (self.max_steps, self.num_generations, self.batch_size, self.max_completion_length,
                     self.grad_accum, self.save_steps, self.traces_per_step, self.run_seed):
            spin.valueChanged.connect(self.sig_changed)
        for spin in (self.temperature, self.top_p, self.beta):
            spin.valueChanged.connect(self.sig_changed)
        self.learning_rate.textChanged.connect(self.sig_changed)
        self.loss_type.currentTextChanged.connect(self.sig_changed)
        self.scale_rewards.currentTextChanged.connect(self.sig_changed)
        self.grad_ckpt.toggled.connect(self.sig_changed)
        self.output_dir.textChanged.connect(self.sig_changed)
        self.set_spec_dict({"grpo": {}, "stages": ["grpo"]})

    def _on_stage_box_toggled(self, _on: bool) -> None:
        self.sig_changed.emit()

    def stages(self) -> list[str]:
        return [s for s, box in self.stage_boxes.items() if box.isChecked()]

    def grpo_dict(self) -> dict[str, Any]:
        lr = self.learning_rate.value()
        return {
            "max_steps": self.max_steps.value(), "learning_rate": lr if math.isfinite(lr) else math.nan,
            "num_generations": self.num_generations.value(), "batch_size": self.batch_size.value(),
            "gradient_accumulation_steps": self.grad_accum.value(),
            "max_completion_length": self.max_completion_length.value(),
            "temperature": round(self.temperature.value(), 4), "top_p": round(self.top_p.value(), 4),
            "beta": round(self.beta.value(), 5), "loss_type": self.loss_type.currentText(),
            "scale_rewards": self.scale_rewards.currentText(), "save_steps": self.save_steps.value(),
            "traces_per_step": self.traces_per_step.value(),
            "gradient_checkpointing": self.grad_ckpt.isChecked(),
        }

    def set_spec_dict(self, spec: dict[str, Any]) -> None:
        d = GRPOSpec()
        g = {**d.__dict__, **(spec.get("grpo") or {})}
        stages = spec.get("stages") or ["grpo"]
        for stage, box in self.stage_boxes.items():
            box.setChecked(stage in stages)
        self.max_steps.setValue(int(g["max_steps"]))
        self.learning_rate.set_value(float(g["learning_rate"]))
        self.num_generations.setValue(int(g["num_generations"]))
        self.batch_size.setValue(int(g["batch_size"]))
        self.grad_accum.setValue(int(g["gradient_accumulation_steps"]))
        self.max_completion_length.setValue(int(g["max_completion_length"]))
        self.temperature.setValue(float(g["temperature"]))
        self.top_p.setValue(float(g["top_p"]))
        self.beta.setValue(float(g["beta"]))
        self.loss_type.setCurrentText(str(g["loss_type"]))
        self.scale_rewards.setCurrentText(str(g["scale_rewards"]))
        self.save_steps.setValue(int(g["save_steps"]))
        self.traces_per_step.setValue(int(g["traces_per_step"]))
        self.grad_ckpt.setChecked(bool(g["gradient_checkpointing"]))
        self.run_seed.setValue(int(spec.get("seed", 42)))
        self.output_dir.setText(str(spec.get("output_dir", "")))
