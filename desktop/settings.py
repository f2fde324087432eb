"""The app's QSettings (window geometry, last choices), under one organisation and app name.

Tests point them at a temporary folder with `QSettings.setPath(IniFormat, UserScope, folder)`.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORG, APP = "Ponder", "Ponder"


def settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORG, APP)
