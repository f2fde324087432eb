"""The dataset chooser: a built-in task with a difficulty mix and size, or a file with a column mapping.

A file is previewed and validated by `ponder data check --json` in a QProcess (FileCheck): the
engine's own reader, so the preview shows the rows a run reads; its answer fills the column
choices, the preview table and the validation report.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

import engine.data as data_catalogue
from desktop.widgets.file_check import FileCheck, check_argv, check_message
from desktop.widgets.forms import ComboBox, Field, SpinBox, form_layout, label

LEVELS = (1, 2, 3, 4, 5)
GUESSES = {  # column mapping guesses, in order of preference
    "question": ("question", "problem", "prompt", "input", "query", "instruction"),
    "answer": ("answer", "final_answer", "target", "output", "solution", "label"),
    "reasoning": ("reasoning", "rationale", "cot", "explanation", "solution", "thinking"),
    "difficulty": ("difficulty", "level"),
}
NONE = "(none)"


def task_levels(task: str) -> tuple[int, ...]:
    """Difficulty levels a built-in task has (the engine's catalogue)."""
    return data_catalogue.TASK_LEVELS.get(task, LEVELS)


class DataPicker(QGroupBox):
    sig_changed = Signal()
    """Any dataset setting changed."""
    sig_report = Signal(object)
    """A file check finished; the argument is its JSON answer (a dict)."""

    def __init__(self, parent=None):
        super().__init__("Dataset", parent)
        self.builtin_radio = QRadioButton("Built-in task (generated offline, every answer verifiable)")
        self.file_radio = QRadioButton("My data file (JSONL, CSV, Parquet or a saved datasets folder)")
        group = QButtonGroup(self)
        group.addButton(self.builtin_radio)
        group.addButton(self.file_radio)
        self.builtin_radio.setChecked(True)
        self.builtin_radio.toggled.connect(self._on_builtin_radio_toggled)
        self.builtin_page = self._build_builtin()
        self.file_page = self._build_file()
        self.file_page.hide()  # one of the two pages shows; a hidden one takes no room
        self.train_size = SpinBox(0, 1_000_000, 256)
        self.eval_size = SpinBox(-1, 1_000_000, 64)
        self.seed = SpinBox(0, 2**31 - 1, 0)
        self.fields.update({
            "data.train_size": Field(self.train_size),
            "data.eval_size": Field(self.eval_size, "never trained on; used for evaluation"),
            "data.seed": Field(self.seed),
        })
        sizes = form_layout()
        sizes.addRow("Training problems", self.fields["data.train_size"])
        sizes.addRow("Held out", self.fields["data.eval_size"])
        sizes.addRow("Data seed", self.fields["data.seed"])
        layout = QVBoxLayout(self)
        layout.addWidget(self.builtin_radio)
        layout.addWidget(self.file_radio)
        layout.addWidget(self.builtin_page)
        layout.addWidget(self.file_page)
        layout.addLayout(sizes)
        for spin in (self.train_size, self.eval_size, self.seed):
            spin.valueChanged.connect(self.sig_changed)

        self.check_result: dict[str, Any] | None = None
        self.file_check = FileCheck(self)
        self.file_check.sig_finished.connect(self._finish_check)
        self._check_again = False
        self._checked_mapping: tuple[str, str, str, str] | None = None
        self._guessed_for = ""  # the file whose column mapping was last guessed
        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(400)
        self._check_timer.timeout.connect(self._on_check_timer_timeout)

    # ---- built-in tasks ---------------------------------------------------------------------------
    def _build_builtin(self) -> QWidget:
        page = QWidget()
        self.task = ComboBox()
        for name in data_catalogue.TASKS:
            self.task.addItem(name, name)
        self.task.currentIndexChanged.connect(self._on_task_index_changed)
        self.task_info = label("", "muted")
        self.sliders: dict[int, QSlider] = {}
        self.slider_labels: dict[int, QLabel] = {}
        mix = QWidget()
        mix.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        grid = QGridLayout(mix)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        for col, level in enumerate(LEVELS):
            slider = QSlider(Qt.Orientation.Vertical)
            slider.setRange(0, 10)
            slider.setValue(5)
            slider.setFixedHeight(70)
            slider.valueChanged.connect(self._on_slider_value_changed)
            self.sliders[level] = slider
            self.slider_labels[level] = QLabel("")
            grid.addWidget(slider, 0, col, Qt.AlignmentFlag.AlignHCenter)
            grid.addWidget(self.slider_labels[level], 1, col, Qt.AlignmentFlag.AlignHCenter)
            grid.addWidget(QLabel(f"level {level}"), 2, col, Qt.AlignmentFlag.AlignHCenter)
        self.uniform_button = QPushButton("Even mix")
        self.uniform_button.clicked.connect(self._on_uniform_button_clicked)
        grid.addWidget(self.uniform_button, 0, len(LEVELS), Qt.AlignmentFlag.AlignBottom)
        grid.setColumnStretch(len(LEVELS) + 1, 1)
        self.fields: dict[str, Field] = {
            "data.source": Field(self.task),
            "data.difficulty_mix": Field(mix, "share of problems per difficulty level (1 = easiest)"),
        }
        form = form_layout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Task", self.fields["data.source"])
        form.addRow("", self.task_info)
        form.addRow("Difficulty mix", self.fields["data.difficulty_mix"])
        page.setLayout(form)
        self._on_task_index_changed(0)
        return page

    def _on_task_index_changed(self, _index: int) -> None:
        task = self.task.currentData() or ""
        self.task_info.setText(data_catalogue.TASK_INFO.get(task, ""))
        levels = task_levels(task)
        for level, slider in self.sliders.items():
            slider.setEnabled(level in levels)
        self._update_slider_labels()
        self.sig_changed.emit()

    def _on_slider_value_changed(self, _value: int) -> None:
        self._update_slider_labels()
        self.sig_changed.emit()

    def _on_uniform_button_clicked(self) -> None:
        for slider in self.sliders.values():
            slider.blockSignals(True)
            slider.setValue(5)
            slider.blockSignals(False)
        self._on_slider_value_changed(5)

    def _update_slider_labels(self) -> None:
        mix = self.mix()
        total = sum(mix.values()) or 1.0
        levels = task_levels(self.task.currentData() or "")
        for level, lab in self.slider_labels.items():
            share = (mix[str(level)] / total) if mix else (1 / len(levels) if level in levels else 0)
            lab.setText(f"{share:.0%}" if level in levels else "—")

    def mix(self) -> dict[str, float]:
        """The difficulty mix for the spec: {} when even (the spec's "uniform")."""
        levels = task_levels(self.task.currentData() or "")
        values = {str(lv): self.sliders[lv].value() / 10 for lv in levels if lv in self.sliders}
        return {} if len(set(values.values())) <= 1 and any(values.values()) else values

    # ---- files ------------------------------------------------------------------------------------
    def _build_file(self) -> QWidget:
        page = QWidget()
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("/path/to/data.jsonl")
        self.path_edit.textChanged.connect(self._on_file_setting_changed)
        browse = QPushButton("Choose file…")
        browse.clicked.connect(self._on_browse_button_clicked)
        folder = QPushButton("Folder…")
        folder.setToolTip("a folder saved with datasets' save_to_disk")
        folder.clicked.connect(self._on_folder_button_clicked)
        path_row = QWidget()
        row = QHBoxLayout(path_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        row.addWidget(folder)
        self.columns: dict[str, ComboBox] = {}
        mapping = QWidget()
        grid = QGridLayout(mapping)
        grid.setContentsMargins(0, 0, 0, 0)
        for i, (key, title) in enumerate((("question", "Question"), ("answer", "Answer"),
                                          ("reasoning", "Reasoning (optional)"),
                                          ("difficulty", "Difficulty (optional)"))):
            combo = ComboBox(8)
            combo.setEditable(True)
            combo.currentTextChanged.connect(self._on_file_setting_changed)
            self.columns[key] = combo
            grid.addWidget(QLabel(title), 2 * (i // 2), i % 2)
            grid.addWidget(combo, 2 * (i // 2) + 1, i % 2)
        self.check_status = label("", "muted")
        self.report_text = QPlainTextEdit()
        self.report_text.setReadOnly(True)
        self.report_text.setMaximumHeight(110)
        self.report_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.report_text.hide()
        self.preview = QTableWidget()
        self.preview.setMinimumHeight(150)
        self.preview.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.preview.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.preview.horizontalHeader().setStretchLastSection(True)
        self.preview.verticalHeader().setDefaultSectionSize(22)
        self.file_fields = {"data.source": Field(path_row), "data.question": Field(mapping)}
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.file_fields["data.source"])
        layout.addWidget(label("Column mapping", "muted"))
        layout.addWidget(self.file_fields["data.question"])
        layout.addWidget(self.check_status)
        layout.addWidget(self.report_text)
        layout.addWidget(label("First rows of the file, as a run reads them", "muted"))
        layout.addWidget(self.preview)
        return page

    def _on_builtin_radio_toggled(self, on: bool) -> None:
        self.builtin_page.setVisible(on)
        self.file_page.setVisible(not on)
        if not on:
            self._check_timer.start()
        self.sig_changed.emit()

    def _on_browse_button_clicked(self) -> None:
        kinds = "Data files (*.jsonl *.json *.csv *.tsv *.parquet);;All files (*)"
        path, _ = QFileDialog.getOpenFileName(self, "Choose a data file", "", kinds)
        if path:
            self.path_edit.setText(path)

    def _on_folder_button_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a saved datasets folder")
        if path:
            self.path_edit.setText(path)

    def _on_file_setting_changed(self, _text: str = "") -> None:
        self._check_timer.start()
        self.sig_changed.emit()

    def is_file(self) -> bool:
        return self.file_radio.isChecked()

    def _column(self, key: str) -> str:
        text = self.columns[key].currentText().strip()
        return "" if text == NONE else text

    def _on_check_timer_timeout(self) -> None:
        """Check the file in a separate process; one check at a time, the latest settings win."""
        path = self.path_edit.text().strip()
        if not self.is_file() or not path:
            return
        if self.file_check.running():
            self._check_again = True
            return
        self.check_status.setProperty("role", "muted")
        self.check_status.setText("Reading and checking the file…")
        self._checked_mapping = self._mapping()
        self.file_check.start(check_argv(path, *self._checked_mapping))

    def _mapping(self) -> tuple[str, str, str, str]:
        return (self._column("question") or "question", self._column("answer") or "answer",
                self._column("reasoning"), self._column("difficulty"))

    def _finish_check(self, result: dict[str, Any]) -> None:
        self.check_result = result
        self._show_check(result)
        if self._mapping() != self._checked_mapping:  # the columns were guessed just now: check with them
            self._check_again = True
        self.sig_report.emit(result)
        self.sig_changed.emit()
        if self._check_again:
            self._check_again = False
            self._check_timer.start()

    def _show_check(self, result: dict[str, Any]) -> None:
        columns, rows = result.get("columns") or [], result.get("preview") or []
        path = self.path_edit.text().strip()
        guess = self._guessed_for != path and bool(columns)  # a new file: guess its mapping, once
        if guess:
            self._guessed_for = path
        for key, combo in self.columns.items():
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            if key in ("reasoning", "difficulty"):
                combo.addItem(NONE)
            combo.addItems(columns)
            if guess or not current:
                fallback = NONE if key in ("reasoning", "difficulty") else (columns[0] if columns else "")
                current = next((c for c in GUESSES[key] if c in columns
                                and (key != "reasoning" or c != self._column("answer"))), fallback)
            combo.setCurrentText(current)
            combo.blockSignals(False)
        self.preview.clear()
        self.preview.setColumnCount(len(columns))
        self.preview.setRowCount(len(rows))
        self.preview.setHorizontalHeaderLabels(columns)
        label_of = {"line": "line", "row": "row", "index": "#"}.get(result.get("row_label", ""), "")
        self.preview.setVerticalHeaderLabels([f"{label_of} {n}".strip() for n in result.get("preview_numbers") or []])
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                self.preview.setItem(r, c, QTableWidgetItem(str(value)))
        self.preview.resizeColumnsToContents()
        for c in range(len(columns)):
            self.preview.setColumnWidth(c, min(self.preview.columnWidth(c), 260))
        usable, status = check_message(result)
        role, text = ("" if usable else "error"), result.get("text") or ""
        self.check_status.setText(status)
        self.check_status.setProperty("role", role)
        self.check_status.style().unpolish(self.check_status)
        self.check_status.style().polish(self.check_status)
        self.report_text.setPlainText(text)
        self.report_text.setVisible(bool(text) and (not usable or bool(result.get("dropped"))))

    def check_error(self) -> str | None:
        """The file check's complaint, if the file cannot be used as mapped."""
        if not self.is_file() or self.check_result is None:
            return None
        usable, message = check_message(self.check_result)
        return None if usable else message

    def checking(self) -> bool:
        return self.file_check.running() or self._check_timer.isActive()

    # ---- spec -------------------------------------------------------------------------------------
    def all_fields(self) -> dict[str, Field]:
        """Field widgets by dotted spec path, for the mode shown (file or built-in)."""
        fields = dict(self.fields)
        if self.is_file():
            fields.update(self.file_fields)
            for key in ("answer", "reasoning", "difficulty"):
                fields[f"data.{key}"] = self.file_fields["data.question"]
            fields.pop("data.difficulty_mix", None)
        return fields

    def spec_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"train_size": self.train_size.value(), "eval_size": self.eval_size.value(),
                               "seed": self.seed.value()}
        if self.is_file():
            out.update(source=self.path_edit.text().strip(), question=self._column("question") or "question",
                       answer=self._column("answer") or "answer", reasoning=self._column("reasoning"),
                       difficulty=self._column("difficulty"), difficulty_mix={})
        else:
            out.update(source=f"builtin:{self.task.currentData()}", difficulty_mix=self.mix())
        return out

    def set_spec_dict(self, data: dict[str, Any]) -> None:
        source = str(data.get("source", "builtin:arithmetic"))
        self.train_size.setValue(int(data.get("train_size", 256)))
        self.eval_size.setValue(int(data.get("eval_size", 64)))
        self.seed.setValue(int(data.get("seed", 0)))
        if source.startswith("builtin:"):
            self.builtin_radio.setChecked(True)
            index = self.task.findData(source[len("builtin:"):])
            self.task.setCurrentIndex(max(index, 0))
            mix = {str(k): float(v) for k, v in (data.get("difficulty_mix") or {}).items()}
            top = max(mix.values(), default=0) or 1.0
            for level, slider in self.sliders.items():
                slider.blockSignals(True)
                slider.setValue(round(10 * mix.get(str(level), 0) / top) if mix else 5)
                slider.blockSignals(False)
            self._update_slider_labels()
        else:
            self.file_radio.setChecked(True)
            self._guessed_for = source  # the spec's mapping stands: no guessing for its file
            for key in ("question", "answer", "reasoning", "difficulty"):
                default = NONE if key in ("reasoning", "difficulty") else key
                self.columns[key].setCurrentText(str(data.get(key) or default))
            self.path_edit.setText(source)
        self.sig_changed.emit()
