"""Form building blocks: a field that can show its spec error, a collapsible section, number inputs."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop import theme


class Field(QWidget):
    """An editor with an error line under it; `set_error` marks the editor and shows the message."""

    def __init__(self, editor: QWidget, hint: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.editor = editor
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(editor)
        self.hint = QLabel(hint)
        self.hint.setProperty("role", "muted")
        self.hint.setWordWrap(True)
        self.hint.setVisible(bool(hint))
        layout.addWidget(self.hint)
        self.error = QLabel()
        self.error.setProperty("role", "error")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        layout.addWidget(self.error)

    def set_error(self, message: str | None) -> None:
        self.error.setText(message or "")
        self.error.setVisible(bool(message))
        self.editor.setToolTip(message or "")
        if bool(self.editor.property("invalid")) != bool(message):
            # the style sheet tints inputs with invalid=true; a composite editor tints the inputs inside it
            inputs = [self.editor, *self.editor.findChildren(QLineEdit),
                      *self.editor.findChildren(QAbstractSpinBox), *self.editor.findChildren(QComboBox)]
            for widget in inputs:
                widget.setProperty("invalid", bool(message))
                widget.style().unpolish(widget)
                widget.style().polish(widget)


class Collapsible(QWidget):
    """A header button that shows or hides its content (for "Advanced" settings)."""

    def __init__(self, title: str, content: QWidget, expanded: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self.content = content
        self.button = QToolButton()
        self.button.setText(title)
        self.button.setCheckable(True)
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.toggled.connect(self._on_button_toggled)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(content)
        self.button.setChecked(expanded)
        self._on_button_toggled(expanded)

    def _on_button_toggled(self, on: bool) -> None:
        self.content.setVisible(on)
        theme.set_icon(self.button, "chevron-down" if on else "chevron-right")

    def set_expanded(self, on: bool) -> None:
        self.button.setChecked(on)


class _NoWheelMixin:
    """Spin boxes and combos ignore the wheel unless focused: scrolling the form must not change values."""

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt override)
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class SpinBox(_NoWheelMixin, QSpinBox):
    def __init__(self, lo: int, hi: int, value: int = 0, step: int = 1, suffix: str = ""):
        super().__init__()
        self.setRange(lo, hi)
        self.setSingleStep(step)
        self.setValue(value)
        self.setSuffix(suffix)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setStepType(QAbstractSpinBox.StepType.DefaultStepType)


class DoubleSpinBox(_NoWheelMixin, QDoubleSpinBox):
    def __init__(self, lo: float, hi: float, value: float = 0.0, step: float = 0.1, decimals: int = 2):
        super().__init__()
        self.setRange(lo, hi)
        self.setDecimals(decimals)
        self.setSingleStep(step)
        self.setValue(value)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)


class ComboBox(_NoWheelMixin, QComboBox):
    def __init__(self, min_chars: int = 12):
        super().__init__()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # long item texts must not force the form wider than the window; the popup still shows them whole
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(min_chars)


class SciEdit(QLineEdit):
    """A number in plain or scientific notation (learning rates: 1e-5); NaN when it is not a number."""

    sig_value_changed = Signal(float)
    """The text changed; the argument is its value (NaN if it is not a number)."""

    def __init__(self, value: float = 0.0):
        super().__init__()
        self.set_value(value)
        self.textChanged.connect(self._on_self_text_changed)

    def value(self) -> float:
        try:
            return float(self.text().strip())
        except ValueError:
            return math.nan

    def set_value(self, value: float) -> None:
        short = f"{value:g}"
        self.setText(short if float(short) == value else repr(float(value)))  # never rounds a value away

    def _on_self_text_changed(self, _text: str) -> None:
        self.sig_value_changed.emit(self.value())


def form_layout() -> QFormLayout:
    form = QFormLayout()
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
    form.setHorizontalSpacing(12)
    form.setVerticalSpacing(8)
    return form


def label(text: str, role: str = "") -> QLabel:
    widget = QLabel(text)
    widget.setWordWrap(True)
    if role:
        widget.setProperty("role", role)
    return widget


def icon_button(text: str, icon: str, on_clicked, color: str = "text") -> QPushButton:
    """A push button with a themed icon, its clicked signal connected to `on_clicked`."""
    button = QPushButton(text)
    theme.set_icon(button, icon, color)
    button.clicked.connect(on_clicked)
    return button
