"""The New run page: base model, dataset, rewards and stages, validated as they are edited.

The form is turned into a spec dict on every change (debounced) and validated by the
engine (`spec_from_dict`); every problem is shown under its own widget, from
`SpecInvalid.by_field()`, and Start stays disabled until there are none. Start writes the
spec and launches the worker through the run controller. Specs open and save as TOML; the
last form is remembered between sessions.
"""

from __future__ import annotations

import html
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from desktop import theme
from desktop.runner import RunController
from desktop.settings import settings
from desktop.widgets.data_picker import DataPicker
from desktop.widgets.forms import Collapsible, Field, form_layout, label
from desktop.widgets.model_picker import ModelPicker
from desktop.widgets.reward_editor import RewardEditor
from desktop.widgets.stage_form import StageForm
from desktop.widgets.page import Page
from engine.spec import RunSpec, SpecInvalid, spec_from_dict

LAST_SPEC_KEY = "new_run/last_spec"
SPEC_DIR_KEY = "new_run/spec_dir"
VALIDATE_MS = 150


def _toml_safe(value: Any) -> Any:
    """The form's dict without None values, which TOML cannot hold."""
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items() if v is not None}
    return value


def _ancestors_of_type(widget: QWidget, cls: type) -> list:
    out, parent = [], widget.parentWidget()
    while parent is not None:
        if isinstance(parent, cls):
            out.append(parent)
        parent = parent.parentWidget()
    return out


def describe(spec: RunSpec) -> str:
    """One line saying what a run will do."""
    parts = []
    for stage in spec.stages:
        if stage == "grpo":
            g = spec.grpo
            parts.append(f"{g.max_steps} GRPO steps of {g.batch_size} completions "
                         f"({g.batch_size // g.num_generations} prompts × {g.num_generations})")
        elif stage == "prefer":
            pr = spec.prefer
            parts.append(f"{pr.samples_per_mode} + {pr.samples_per_mode} sampled answers per problem, then "
                         f"{pr.max_steps} DPO steps")
        elif stage == "eval":
            parts.append(f"evaluation on {spec.data.eval_size} held-out problems")
        else:
            parts.append(f"{getattr(spec, stage).max_steps} {stage.upper()} steps")
    return (f"{', then '.join(parts)}; model {spec.model.source}, data {spec.data.source}, "
            f"rewards {spec.rewards.preset}.")


class NewRunPage(Page):
    sig_run_started = Signal(int)
    """A run was created and its worker started; the argument is the run id."""
    sig_error = Signal(str, str)
    """Something the user should know about went wrong; arguments: message, details."""

    def __init__(self, controller: RunController, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.spec: RunSpec | None = None
        self.errors: dict[str, str] = {}
        self._build()
        self._validate_timer = QTimer(self)
        self._validate_timer.setSingleShot(True)
        self._validate_timer.setInterval(VALIDATE_MS)
        self._validate_timer.timeout.connect(self.validate)
        for section in (self.model, self.data, self.rewards, self.stages):
            section.sig_changed.connect(self._on_form_changed)
        self.data.sig_report.connect(self._on_data_report)
        self.name_edit.textChanged.connect(self._on_form_changed)
        self.stages.widget("grpo.max_completion_length").valueChanged.connect(self.rewards.set_max_completion_length)
        self._restore()
        self.validate()

    # ---- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        title = QLabel("New run")
        title.setProperty("role", "title")
        subtitle = label("Pick a base model, a dataset and rewards. Ponder trains in a background process; "
                         "you can close the window while it runs.", "subtitle")
        self.open_button = QPushButton("Open spec…")
        theme.set_icon(self.open_button, "open")
        self.open_button.clicked.connect(self._on_open_button_clicked)
        self.save_button = QPushButton("Save spec…")
        theme.set_icon(self.save_button, "save")
        self.save_button.clicked.connect(self._on_save_button_clicked)
        header = QHBoxLayout()
        titles = QVBoxLayout()
        titles.addWidget(title)
        titles.addWidget(subtitle)
        header.addLayout(titles, 1)
        header.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignTop)
        header.addWidget(self.save_button, 0, Qt.AlignmentFlag.AlignTop)

        self.name_edit = QLineEdit("run")
        self.name_field = Field(self.name_edit)
        name_form = form_layout()
        name_form.setContentsMargins(0, 0, 0, 0)
        name_form.addRow("Run name", self.name_field)
        self.model = ModelPicker()
        self.data = DataPicker()
        self.rewards = RewardEditor()
        self.stages = StageForm()

        body = QWidget()
        grid = QGridLayout(body)
        grid.setContentsMargins(0, 0, 8, 0)
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(10)
        left, right = QVBoxLayout(), QVBoxLayout()
        left.addLayout(name_form)
        left.addWidget(self.model)
        left.addWidget(self.data)
        left.addWidget(self.stages)
        left.addStretch(1)
        right.addWidget(self.rewards)
        right.addStretch(1)
        grid.addLayout(left, 0, 0)
        grid.addLayout(right, 0, 1)
        grid.setColumnStretch(0, 4)
        grid.setColumnStretch(1, 5)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(body)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.summary = label("", "muted")
        self.summary.linkActivated.connect(self._on_summary_link_activated)
        self.start_button = QPushButton("Start run")
        theme.set_icon(self.start_button, "start", "#ffffff")
        self.start_button.setProperty("role", "primary")
        self.start_button.setMinimumWidth(140)
        self.start_button.clicked.connect(self._on_start_button_clicked)
        footer = QHBoxLayout()
        footer.addWidget(self.summary, 1)
        footer.addWidget(self.start_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(10)
        layout.addLayout(header)
        layout.addWidget(self.scroll, 1)
        layout.addLayout(footer)

    def fields(self) -> dict[str, Field]:
        """Every error-showing field by dotted spec path."""
        return {"name": self.name_field, **self.model.fields, **self.data.all_fields(), **self.rewards.fields,
                **self.stages.fields}

    # ---- the spec ---------------------------------------------------------------------------------
    def spec_dict(self) -> dict[str, Any]:
        return {"name": self.name_edit.text(), "model": self.model.spec_dict(), "data": self.data.spec_dict(),
                "rewards": self.rewards.spec_dict(), **self.stages.spec_parts()}

    def set_spec_dict(self, spec: dict[str, Any]) -> None:
        """Fill the form from a spec dict (which may be invalid: its problems are then marked)."""
        self.name_edit.setText(str(spec.get("name", "run")))
        self.model.set_spec_dict(spec.get("model") or {})
        self.data.set_spec_dict(spec.get("data") or {})
        self.rewards.set_spec_dict(spec.get("rewards") or {})
        self.stages.set_spec_dict(spec)
        self.validate()

    def _on_form_changed(self, *_args) -> None:
        self._validate_timer.start()

    def _on_data_report(self, _result: dict) -> None:
        self.validate()

    def validate(self) -> bool:
        """Validate the form now: mark every problem, enable Start only when there is none."""
        self._validate_timer.stop()
        data = self.spec_dict()
        try:
            self.spec, errors = spec_from_dict(data), {}
        except SpecInvalid as invalid:
            self.spec, errors = None, invalid.by_field()
        file_problem = self.data.check_error()
        if file_problem and "data.source" not in errors:
            errors["data.source"] = file_problem
        self.errors = errors
        fields = self.fields()
        shown: dict[Field, list[str]] = {}
        unplaced = []
        for path, message in errors.items():
            field = self._field_for(path, fields)
            if field is None:
                unplaced.append(f"{path}: {message}")
            else:
                own = field is fields.get(path)
                shown.setdefault(field, []).append(message if own else f"{path}: {message}")
        for field in set(fields.values()):
            field.set_error("\n".join(shown.get(field, [])) or None)
        ok = not errors
        self.start_button.setEnabled(ok)
        if ok:
            self.summary.setProperty("role", "muted")
            self.summary.setText(f"Ready: {describe(self.spec)}"
                                 + ("  (still checking the data file…)" if self.data.checking() else ""))
        else:
            self.summary.setProperty("role", "error")
            n = len(errors)
            links = ", ".join(f"<a href='{html.escape(p)}'>{html.escape(p)}</a>" for p in errors)
            rest = "".join(f"<br>{html.escape(u)}" for u in unplaced)
            self.summary.setText(f"{n} setting{'s' * (n != 1)} to fix before starting (marked in red): "
                                 f"{links}{rest}")
        self.summary.style().unpolish(self.summary)
        self.summary.style().polish(self.summary)
        return ok

    def _on_summary_link_activated(self, path: str) -> None:
        """Scroll to the field of a problem named in the summary."""
        field = self._field_for(path, self.fields())
        if field is not None:
            for collapsible in _ancestors_of_type(field, Collapsible):
                collapsible.set_expanded(True)
            self.scroll.ensureWidgetVisible(field, 50, 80)
            field.editor.setFocus()

    @staticmethod
    def _field_for(path: str, fields: dict[str, Field]) -> Field | None:
        """The field of `path`, or of its nearest parent (data.difficulty_mix.3 -> data.difficulty_mix)."""
        parts = path.split(".")
        for n in range(len(parts), 0, -1):
            field = fields.get(".".join(parts[:n]))
            if field is not None:
                return field
        return None

    # ---- actions ----------------------------------------------------------------------------------
    def _on_start_button_clicked(self) -> None:
        if not self.validate() or self.spec is None:
            return
        self.start_button.setEnabled(False)
        settings().setValue(LAST_SPEC_KEY, tomli_w.dumps(_toml_safe(self.spec_dict())))
        try:
            run_id = self.controller.start(self.spec)
        except Exception as exc:  # noqa: BLE001 - the store or the disk refused: tell the user, keep the form
            self.sig_error.emit(f"Could not create the run: {exc}", "")
            self.validate()
            return
        self.validate()
        self.sig_run_started.emit(run_id)

    def _on_open_button_clicked(self) -> None:
        self.ask_open_spec()

    def ask_open_spec(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a run spec", settings().value(SPEC_DIR_KEY, ""),
                                              "Run specs (*.toml)")
        if path:
            self.open_spec(Path(path))

    def open_spec(self, path: Path) -> None:
        try:
            spec = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            self.sig_error.emit(f"Could not open {path.name}: {exc}", "")
            return
        settings().setValue(SPEC_DIR_KEY, str(path.parent))
        try:
            self.set_spec_dict(spec)
        except (TypeError, ValueError, AttributeError) as exc:
            self.sig_error.emit(f"{path.name} holds a setting of the wrong type: {exc}", "")

    def _on_save_button_clicked(self) -> None:
        self.ask_save_spec()

    def ask_save_spec(self) -> None:
        start = str(Path(settings().value(SPEC_DIR_KEY, "")) / f"{self.name_edit.text() or 'run'}.toml")
        path, _ = QFileDialog.getSaveFileName(self, "Save the run spec", start, "Run specs (*.toml)")
        if path:
            self.save_spec(Path(path))

    def save_spec(self, path: Path) -> None:
        """Write the form as TOML (also when it has problems: they are marked again when it is opened)."""
        try:
            path.write_text(tomli_w.dumps(_toml_safe(self.spec_dict())), encoding="utf-8")
        except (OSError, ValueError) as exc:
            self.sig_error.emit(f"Could not save {path.name}: {exc}", "")
            return
        settings().setValue(SPEC_DIR_KEY, str(path.parent))

    # ---- remembering the last form ----------------------------------------------------------------
    def _restore(self) -> None:
        text = settings().value(LAST_SPEC_KEY, "")
        if not text:
            return
        try:
            self.set_spec_dict(tomllib.loads(text))
        except (tomllib.TOMLDecodeError, TypeError, ValueError, AttributeError):
            settings().remove(LAST_SPEC_KEY)  # from an older version: start from the defaults

    def remember(self) -> None:
        settings().setValue(LAST_SPEC_KEY, tomli_w.dumps(_toml_safe(self.spec_dict())))
