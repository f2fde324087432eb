"""Light and dark themes that follow the system, the style sheet, icons and plot colours.

`apply(app, "system" | "light" | "dark")` sets a Fusion palette and the style sheet from
resources/style/ponder.qss; `manager()` emits `sig_changed` when the theme changes (the
system switching between light and dark too), so plots can recolour themselves. Icons are
the SVGs in resources/icons, drawn with `currentColor` and tinted to the theme here.
"""

from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass
from functools import cache

import shiboken6
from PySide6.QtCore import QByteArray, QObject, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from engine.paths import resources_dir

RESOURCES = resources_dir()  # the checkout's resources/, or the copy an installed wheel carries
MODES = ("system", "light", "dark")

# Tableau 10: distinguishable on light and dark backgrounds, and for most colour-blind readers
SERIES_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                 "#9c755f", "#bab0ac")


@dataclass(frozen=True)
class Theme:
    name: str
    window: str
    base: str
    alt_base: str
    sidebar: str
    text: str
    muted: str
    border: str
    button: str
    hover: str
    accent: str
    accent_hover: str
    accent_soft: str
    accent_text: str
    error: str
    error_soft: str
    warning: str
    warning_soft: str
    success: str

    @property
    def dark(self) -> bool:
        return self.name == "dark"


LIGHT = Theme(name="light", window="#f4f5f7", base="#ffffff", alt_base="#f7f8fa", sidebar="#eceef1",
              text="#1f2328", muted="#656d76", border="#d0d7de", button="#ffffff", hover="#e4e7eb",
              accent="#2f6fde", accent_hover="#255fc4", accent_soft="#dbe7fb", accent_text="#ffffff",
              error="#c62828", error_soft="#fdecea", warning="#b26a00", warning_soft="#fff4e0",
              success="#2e7d32")
DARK = Theme(name="dark", window="#1e1f22", base="#2b2d30", alt_base="#27292c", sidebar="#191a1c",
             text="#dfe1e5", muted="#9aa0a8", border="#3d4046", button="#2f3134", hover="#393b40",
             accent="#4c8df6", accent_hover="#5d9bff", accent_soft="#27406b", accent_text="#ffffff",
             error="#f07167", error_soft="#3d2426", warning="#e0a040", warning_soft="#3b3120",
             success="#6cc070")


class ThemeManager(QObject):
    """Holds the current theme and follows the system's light/dark setting in "system" mode."""

    sig_changed = Signal(object)
    """The theme changed; the argument is the new Theme."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "system"
        self.theme = LIGHT
        hints = QGuiApplication.styleHints()
        hints.colorSchemeChanged.connect(self._on_hints_color_scheme_changed)

    def _on_hints_color_scheme_changed(self, _scheme) -> None:
        if self.mode == "system":
            self.apply("system")

    def apply(self, mode: str) -> Theme:
        self.mode = mode if mode in MODES else "system"
        theme = resolve(self.mode)
        app = QApplication.instance()
        app.setStyle("Fusion")
        font = app.font()
        if 0 < font.pointSizeF() < 10:  # some minimal desktops default to 9 pt, small for dense forms
            font.setPointSizeF(10)
            app.setFont(font)
        app.setPalette(palette(theme))
        app.setStyleSheet(style_sheet(theme))
        self.theme = theme
        import pyqtgraph as pg

        pg.setConfigOptions(background=theme.base, foreground=theme.muted, antialias=True)
        for widget, (name, color) in list(_FOLLOWERS.items()):
            if shiboken6.isValid(widget):  # a deleted widget's Python object may outlive it
                widget.setIcon(icon(name, _color(color)))
            else:
                del _FOLLOWERS[widget]
        self.sig_changed.emit(theme)
        return theme


def resolve(mode: str) -> Theme:
    if mode == "dark":
        return DARK
    if mode == "light":
        return LIGHT
    scheme = QGuiApplication.styleHints().colorScheme()
    return DARK if scheme == Qt.ColorScheme.Dark else LIGHT


@cache
def manager() -> ThemeManager:
    return ThemeManager()


def current() -> Theme:
    return manager().theme


def palette(t: Theme) -> QPalette:
    p = QPalette()
    role = QPalette.ColorRole
    for r, value in ((role.Window, t.window), (role.WindowText, t.text), (role.Base, t.base),
                     (role.AlternateBase, t.alt_base), (role.ToolTipBase, t.base), (role.ToolTipText, t.text),
                     (role.PlaceholderText, t.muted), (role.Text, t.text), (role.Button, t.button),
                     (role.ButtonText, t.text), (role.BrightText, t.error), (role.Highlight, t.accent),
                     (role.HighlightedText, t.accent_text), (role.Link, t.accent), (role.Mid, t.border),
                     (role.Midlight, t.hover), (role.Dark, t.border), (role.Light, t.base)):
        p.setColor(r, QColor(value))
    for r in (role.Text, role.WindowText, role.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, r, QColor(t.muted))
    return p


def style_sheet(t: Theme) -> str:
    text = (RESOURCES / "style" / "ponder.qss").read_text(encoding="utf-8")
    for key, value in asdict(t).items():
        text = text.replace(f"@{key}@", str(value))
    return text


_FOLLOWERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # widget -> (icon name, colour)


def _color(color: str) -> str:
    return color if color.startswith("#") else getattr(current(), color)


def set_icon(widget, name: str, color: str = "text") -> None:
    """Give a button `name`'s icon in `color` (a Theme colour name or "#rrggbb"), redrawn with the theme."""
    widget.setIcon(icon(name, _color(color)))
    _FOLLOWERS[widget] = (name, color)


def icon(name: str, color: str | None = None) -> QIcon:
    """The icon resources/icons/NAME.svg, drawn in `color` (the theme's text colour by default)."""
    return _icon(name, color or current().text)


@cache
def _icon(name: str, color: str) -> QIcon:
    svg = (RESOURCES / "icons" / f"{name}.svg").read_text(encoding="utf-8").replace("currentColor", color)
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    out = QIcon()
    for size in (16, 24, 32, 48):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        out.addPixmap(pixmap)
    return out


def series_color(i: int) -> str:
    return SERIES_COLORS[i % len(SERIES_COLORS)]


# difficulty 1 (easy) .. 5 (hard): a light-to-dark sequential ramp, so levels read in order on any chart
LEVEL_COLORS = ("#9ecae1", "#6baed6", "#3182bd", "#08519c", "#08306b")


def level_color(level: int) -> str:
    return LEVEL_COLORS[min(max(level, 1), len(LEVEL_COLORS)) - 1]
