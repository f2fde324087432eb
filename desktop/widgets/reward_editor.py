"""The reward chooser: presets, each component's weight, constants and formula, and a live preview.

The preview scores a handful of sample completions of one prompt with the chosen
components and weights, using the engine's own (pure-python) reward functions, so a
user sees what each weight does before a run starts. Token lengths there are estimated
(about 4 characters per token); the run measures them with the model's tokenizer.
"""

from __future__ import annotations

import html
import math
from functools import partial
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from desktop import theme
from desktop.widgets.forms import ComboBox, DoubleSpinBox, Field, SciEdit, SpinBox, form_layout, label
from engine.prompts import PREFIXES
from engine.rewards import COMPONENT_PARAMS, MODEL_COMPONENTS, REGISTRY, build_component
from engine.rewards.presets import PRESETS, formula
from engine.rewards.weights import WeightError, resolve_weights, weighted_total

QUESTION, ANSWER = "What is 17 + 25?", "42"
SAMPLES = (  # (label, completion after the prompt's "<think>\n")
    ("short, correct", "17 + 25 = 42.\n</think>\n<answer>42</answer>"),
    ("long, correct", "Let me add the tens first: 10 + 20 = 30. Then the ones: 7 + 5 = 12. "
                      "So 30 + 12 = 42. Let me check again: 42 - 25 = 17, which matches. "
                      "I am confident the sum is 42.\n</think>\n<answer>42</answer>"),
    ("no thinking, correct", "</think>\n<answer>42</answer>"),
    ("short, wrong", "17 + 25 = 32.\n</think>\n<answer>32</answer>"),
    ("long, wrong", "Adding 17 and 25: 17 + 20 = 37 and 37 + 5 = 41. Hmm, let me recount the ones, 7 + 5 "
                    "is 11, so the total must be 41.\n</think>\n<answer>41</answer>"),
    ("bad format", "The answer is 42."),
)
PROMPT_MODE_LABELS = {"": "the preset's own", "think": "think: the prompt opens a think block",
                      "ellipsis": "ellipsis: the model may close the think block at once",
                      "budget": "budget: the token budget is stated in the prompt"}


def score_samples(weights: dict[str, float], params: dict[str, dict[str, float]], mode: str, max_len: int,
                  budget: int = 0) -> tuple[list[str], list[list[float | None]], dict[str, str]]:
    """Each component's score of each sample: (components, rows of scores then the total, problems).

    The total follows TRL's rule (engine.rewards.weights.weighted_total): a component that skipped a
    sample (None) adds nothing, and a sample no component scored totals NaN, shown as a dash."""
    prefix = PREFIXES.get(mode, "")
    completions = [text for _, text in SAMPLES]
    n = len(completions)
    kwargs = {"answer": [ANSWER] * n, "difficulty": [2] * n, "prefix": [prefix] * n, "prompt_id": ["p"] * n,
              "question": [QUESTION] * n, "budget": [budget or 64] * n,
              "completion_ids": [[0] * max(1, round(len(c) / 4)) for c in completions]}
    names = [name for name, w in weights.items() if w != 0]
    columns: dict[str, list[float | None]] = {}
    problems: dict[str, str] = {}
    for name in names:
        if name in MODEL_COMPONENTS or name not in REGISTRY:
            problems[name] = "needs a trained model; scored during the run"
            continue
        try:
            func = build_component(name, params.get(name), max_len)
            values = func(prompts=[QUESTION] * n, completions=completions, **kwargs)
            columns[name] = [None if v is None else float(v) for v in values]
        except Exception as exc:  # noqa: BLE001 - shown in the preview, never raised into Qt
            problems[name] = f"{type(exc).__name__}: {exc}"
    totals = weighted_total(columns, weights) if columns else [math.nan] * n  # NaN: nothing scored it
    rows = [[*(columns[name][i] if name in columns else None for name in names), totals[i]] for i in range(n)]
    return names, rows, problems


class RewardEditor(QGroupBox):
    sig_changed = Signal()
    """Preset, weights, constants, prompt mode or custom file changed."""

    def __init__(self, parent=None):
        super().__init__("Rewards", parent)
        self.max_completion_length = 128
        self.presets = QListWidget()
        self.presets.setMinimumWidth(200)
        self.presets.setMaximumWidth(240)
        self.presets.setWordWrap(True)
        self.presets.setSpacing(2)
        for name, preset in PRESETS.items():
            item = QListWidgetItem(f"{name}\n{preset.reproduces or 'your own reward functions'}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(preset.description)
            self.presets.addItem(item)
        self.presets.currentItemChanged.connect(self._on_presets_current_item_changed)
        self.description = label("", "muted")
        self.components = QTableWidget(0, 3)
        self.components.setHorizontalHeaderLabels(["Component", "Weight", "Formula"])
        self.components.verticalHeader().hide()
        self.components.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.components.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.components.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.components.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.components.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.components.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.components.setWordWrap(False)
        self.components.setMaximumHeight(160)
        self.components.currentCellChanged.connect(self._on_components_current_cell_changed)
        self.add_combo = ComboBox()
        self.add_combo.addItem("Add a component…", "")
        for name in [*REGISTRY, *MODEL_COMPONENTS]:
            self.add_combo.addItem(name, name)
        self.add_combo.activated.connect(self._on_add_combo_activated)
        self.constants = QTableWidget(0, 2)
        self.constants.setHorizontalHeaderLabels(["Constant", "Value"])
        self.constants.verticalHeader().hide()
        self.constants.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.constants.setMaximumHeight(150)
        self.constants_title = label("", "muted")
        self.prompt_mode = ComboBox()
        for mode, text in PROMPT_MODE_LABELS.items():
            self.prompt_mode.addItem(text, mode)
        self.prompt_mode.currentIndexChanged.connect(self._on_any_changed)
        self.budget = SpinBox(0, 100_000, 0, 16)
        self.budget.setSpecialValueText("per difficulty")
        self.budget.valueChanged.connect(self._on_any_changed)
        self.custom_file = QLineEdit()
        self.custom_file.setPlaceholderText("a Python file of reward_* functions (TRL signature)")
        self.custom_file.textChanged.connect(self._on_any_changed)
        self.warnings = label("", "warning")
        self.preview = QTableWidget()
        self.preview.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.preview.verticalHeader().setDefaultSectionSize(22)
        self.preview.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.preview.setFixedHeight(28 + 23 * len(SAMPLES))

        self.weights: dict[str, SciEdit] = {}
        self.param_values: dict[str, dict[str, float]] = {}  # component -> constant -> value (changed ones)
        self.fields: dict[str, Field] = {
            "rewards.preset": Field(self.presets),
            "rewards.weights": Field(self.components),
            "rewards.params": Field(self.constants),
            "rewards.prompt_mode": Field(self.prompt_mode),
            "rewards.budget": Field(self.budget),
            "rewards.custom_file": Field(self.custom_file),
        }
        right = QVBoxLayout()
        right.addWidget(self.description)
        right.addWidget(self.fields["rewards.weights"], 1)
        add_row = QHBoxLayout()
        add_row.addWidget(self.add_combo)
        add_row.addStretch(1)
        right.addLayout(add_row)
        right.addWidget(self.constants_title)
        right.addWidget(self.fields["rewards.params"])
        form = form_layout()
        form.addRow("Prompt mode", self.fields["rewards.prompt_mode"])
        form.addRow("Token budget", self.fields["rewards.budget"])
        form.addRow("Custom rewards", self.fields["rewards.custom_file"])
        right.addLayout(form)
        right.addWidget(self.warnings)
        top = QHBoxLayout()
        top.addWidget(self.fields["rewards.preset"])
        top.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(label("Preview: the chosen rewards scoring sample answers to “What is 17 + 25?” "
                               "(lengths estimated at 4 characters a token)", "muted"))
        layout.addWidget(self.preview)

        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(150)
        self._preview_timer.timeout.connect(self._on_preview_timer_timeout)
        self._loading = False
        self.presets.setCurrentRow(0)

    # ---- presets and components -------------------------------------------------------------------
    def preset(self) -> str:
        item = self.presets.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else ""

    def _on_presets_current_item_changed(self, current, _previous) -> None:
        if current is None:
            return
        preset = PRESETS[current.data(Qt.ItemDataRole.UserRole)]
        self.description.setText(preset.description)
        if not self._loading:
            self.param_values = {}
            self._set_components(dict(preset.components))
        self._on_any_changed()

    def _set_components(self, weights: dict[str, float]) -> None:
        self.components.setRowCount(0)
        self._show_constants("")
        self.weights = {}
        for name, weight in weights.items():
            self._add_row(name, weight)
        if weights:
            self.components.setCurrentCell(0, 0)
            self._show_constants(next(iter(weights)))

    def _add_row(self, name: str, weight: float) -> None:
        row = self.components.rowCount()
        self.components.insertRow(row)
        item = QTableWidgetItem(name)
        item.setData(Qt.ItemDataRole.UserRole, name)
        self.components.setItem(row, 0, item)
        edit = SciEdit()  # as typed: no range, no rounding; the spec check says what is invalid
        if isinstance(weight, int | float):
            edit.set_value(weight)
        else:  # a loaded spec's non-number, kept for the spec check to name
            edit.setText(str(weight))
        edit.setToolTip("weight of this component in the total reward; 0 leaves it out")
        edit.sig_value_changed.connect(self._on_any_changed)
        self.components.setCellWidget(row, 1, edit)
        try:
            text = formula(name)
        except ValueError:
            text = "your function"
        formula_item = QTableWidgetItem(text)
        formula_item.setToolTip(text)
        self.components.setItem(row, 2, formula_item)
        self.weights[name] = edit

    def _on_add_combo_activated(self, index: int) -> None:
        name = self.add_combo.itemData(index)
        self.add_combo.setCurrentIndex(0)
        if name and name not in self.weights:
            self._add_row(name, 1.0)
            self._on_any_changed()

    def _on_components_current_cell_changed(self, row: int, *_args) -> None:
        self._show_constants(self.components.item(row, 0).text() if row >= 0 and self.components.item(row, 0)
                             else "")

    def _show_constants(self, name: str) -> None:
        defaults = COMPONENT_PARAMS.get(name, {})
        self.constants.setRowCount(0)
        try:
            text = formula(name)
        except ValueError:
            text = "a function from your custom file"
        consts = "its constants:" if defaults else "no constants."
        self.constants_title.setText(f"<b>{name}</b> = {html.escape(text)}; {consts}" if name else
                                     "Select a component to see its formula and constants.")
        self.constants.setVisible(bool(defaults))
        for key, default in defaults.items():
            row = self.constants.rowCount()
            self.constants.insertRow(row)
            self.constants.setItem(row, 0, QTableWidgetItem(key))
            spin = DoubleSpinBox(-1e6, 1e6, self.param_values.get(name, {}).get(key, default), 0.05, 4)
            spin.valueChanged.connect(partial(self._on_constant_changed, name, key, default))
            self.constants.setCellWidget(row, 1, spin)

    def _on_constant_changed(self, name: str, key: str, default: float, value: float) -> None:
        values = self.param_values.setdefault(name, {})
        if value == default:
            values.pop(key, None)
        else:
            values[key] = value
        if not values:
            self.param_values.pop(name, None)
        self._on_any_changed()

    def _on_any_changed(self, *_args) -> None:
        self.budget.setEnabled(self.resolved_prompt_mode() == "budget")
        preset = PRESETS.get(self.preset())
        self.warnings.setText("\n".join(preset.warnings(self.weight_values())) if preset else "")
        self._preview_timer.start()
        if not self._loading:
            self.sig_changed.emit()

    def weight_values(self) -> dict[str, float]:
        """Component -> weight as typed (NaN where the text is not a number: the spec check names it)."""
        return {name: edit.value() for name, edit in self.weights.items()}

    def resolved_prompt_mode(self) -> str:
        mode = self.prompt_mode.currentData() or ""
        preset = PRESETS.get(self.preset())
        return mode or (preset.prompt_mode if preset else "think")

    # ---- preview ----------------------------------------------------------------------------------
    def _on_preview_timer_timeout(self) -> None:
        names, rows, problems = score_samples(self.weight_values(), self.param_values,
                                              self.resolved_prompt_mode(), self.max_completion_length,
                                              self.budget.value())
        t = theme.current()
        headers = [*names, "Total"]
        self.preview.clear()
        self.preview.setColumnCount(len(headers))
        self.preview.setRowCount(len(rows))
        self.preview.setHorizontalHeaderLabels(headers)
        self.preview.setVerticalHeaderLabels([lab for lab, _ in SAMPLES])
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                name = headers[c]
                shown = value is not None and not math.isnan(value)
                item = QTableWidgetItem(f"{value:+.3g}" if shown else "—")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if name in problems:
                    item.setToolTip(problems[name])
                if c == len(row) - 1:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                    item.setForeground(QColor(t.success if shown and value > 0 else
                                              t.error if shown and value < 0 else t.muted))
                self.preview.setItem(r, c, item)
        for r, (_, text) in enumerate(SAMPLES):
            header = self.preview.verticalHeaderItem(r)
            if header is not None:
                header.setToolTip(text)

    # ---- spec -------------------------------------------------------------------------------------
    def spec_dict(self) -> dict[str, Any]:
        preset = PRESETS.get(self.preset())
        defaults = preset.components if preset else {}
        weights = {n: w for n, w in self.weight_values().items() if defaults.get(n) != w}
        return {"preset": self.preset(), "weights": weights, "params": {k: dict(v) for k, v in
                                                                       self.param_values.items()},
                "custom_file": self.custom_file.text().strip(),
                "prompt_mode": self.prompt_mode.currentData() or "",
                "budget": self.budget.value()}

    def set_spec_dict(self, rewards: dict[str, Any]) -> None:
        self._loading = True
        try:
            name = str(rewards.get("preset", "r1-zero"))
            for row in range(self.presets.count()):
                if self.presets.item(row).data(Qt.ItemDataRole.UserRole) == name:
                    self.presets.setCurrentRow(row)
            preset = PRESETS.get(name)
            self.param_values = {k: dict(v) for k, v in (rewards.get("params") or {}).items()}
            overrides = rewards.get("weights") or {}
            try:  # the custom file's own functions are not rows here: the run adds them at weight 1
                weights = resolve_weights(name, overrides, str(rewards.get("custom_file", "")), custom_names=())
            except WeightError:  # shown as loaded; the spec check names what is wrong
                weights = {**(preset.components if preset else {}), **overrides}
            self._set_components(weights)
            mode = self.prompt_mode.findData(rewards.get("prompt_mode", ""))
            self.prompt_mode.setCurrentIndex(max(0, mode))
            self.budget.setValue(int(rewards.get("budget", 0)))
            self.custom_file.setText(str(rewards.get("custom_file", "")))
        finally:
            self._loading = False
        self._on_any_changed()

    def set_max_completion_length(self, value: int) -> None:
        if value != self.max_completion_length:
            self.max_completion_length = value
            self._preview_timer.start()

