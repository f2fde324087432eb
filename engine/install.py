"""`ponder install-desktop-entry`: the launcher (desktop entry, icon, AppStream metadata) for this user.

Writes, under `$XDG_DATA_HOME` (default ~/.local/share):

    applications/io.github.ponder.Ponder.desktop        packaging/'s entry, Exec = this install's `ponder`
    icons/hicolor/scalable/apps/io.github.ponder.Ponder.svg   the app icon (resources/icons/app.svg) on
                                                         the accent colour: the GUI draws that glyph in
                                                         `currentColor`, which a launcher cannot tint
    metainfo/io.github.ponder.Ponder.metainfo.xml       for software centres

`--remove` deletes them again. No torch, no Qt here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from engine.paths import atomic_write

APP_ID = "io.github.ponder.Ponder"
ACCENT = "#2f6fde"  # desktop/theme.py's light accent: readable on light and dark panels
SVG_NS = "http://www.w3.org/2000/svg"


def data_home() -> Path:
    env = os.environ.get("XDG_DATA_HOME")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share"


def packaging_dir() -> Path:
    from engine.paths import resources_dir

    return resources_dir().parent / "packaging"


def targets(base: Path | None = None) -> dict[str, Path]:
    base = base or data_home()
    return {"desktop": base / "applications" / f"{APP_ID}.desktop",
            "icon": base / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg",
            "metainfo": base / "metainfo" / f"{APP_ID}.metainfo.xml"}


def ponder_command() -> list[str]:
    """The absolute command that starts this install's `ponder` (a launcher has no venv on its PATH)."""
    name = "ponder.exe" if os.name == "nt" else "ponder"
    for folder in (sysconfig.get_path("scripts"), Path(sys.executable).parent):
        if folder and (Path(folder) / name).is_file():
            return [str(Path(folder) / name)]
    found = shutil.which("ponder")
    return [found] if found else [sys.executable, "-m", "desktop.entry"]


def _exec_quote(arg: str) -> str:
    """Quote one argument of a desktop entry's Exec key (Desktop Entry Specification, "The Exec key")."""
    if not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`='):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


def desktop_entry(command: list[str]) -> str:
    """packaging/'s desktop entry with Exec (and TryExec) pointing at `command`."""
    lines = []
    for line in (packaging_dir() / f"{APP_ID}.desktop").read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            line = "Exec=" + " ".join(_exec_quote(a) for a in command)
            lines += [f"TryExec={command[0]}", line] if len(command) == 1 else [line]
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def launcher_icon() -> str:
    """The GUI's app glyph (resources/icons/app.svg, in currentColor) in white on a rounded accent square."""
    import xml.etree.ElementTree as ET

    from engine.paths import resources_dir

    ET.register_namespace("", SVG_NS)
    text = (resources_dir() / "icons" / "app.svg").read_text(encoding="utf-8")
    glyph = ET.fromstring(text.replace("currentColor", "#ffffff"))  # not every renderer knows currentColor
    glyph.attrib.update({"x": "8", "y": "8", "width": "48", "height": "48"})
    outer = ET.Element(f"{{{SVG_NS}}}svg", {"width": "64", "height": "64", "viewBox": "0 0 64 64"})
    ET.SubElement(outer, f"{{{SVG_NS}}}rect", {"x": "2", "y": "2", "width": "60", "height": "60", "rx": "14",
                                               "fill": ACCENT})
    outer.append(glyph)
    return ET.tostring(outer, encoding="unicode") + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)


def install_desktop_entry(base: Path | None = None, command: list[str] | None = None) -> dict[str, Path]:
    """Install the launcher for the current user; returns what was written, by kind."""
    where = targets(base)
    _write(where["desktop"], desktop_entry(command or ponder_command()))
    _write(where["icon"], launcher_icon())
    _write(where["metainfo"], (packaging_dir() / f"{APP_ID}.metainfo.xml").read_text(encoding="utf-8"))
    _refresh_caches(where["desktop"].parent)
    return where


def remove_desktop_entry(base: Path | None = None) -> list[Path]:
    removed = []
    for path in targets(base).values():
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def _refresh_caches(applications: Path) -> None:
    """Best effort: menus pick the entry up sooner where update-desktop-database exists."""
    tool = shutil.which("update-desktop-database")
    if tool:
        subprocess.run([tool, str(applications)], capture_output=True, timeout=30, check=False)


# ---- command line ---------------------------------------------------------------------------------

def cmd_install_desktop_entry(args) -> int:
    from engine.cli import _out

    if args.remove:
        removed = remove_desktop_entry()
        _out("\n".join(f"removed {p}" for p in removed) if removed else "no Ponder launcher was installed")
        return 0
    try:
        written = install_desktop_entry()
    except OSError as exc:
        _out(f"could not install the launcher: {exc}")
        return 1
    for path in written.values():
        _out(f"wrote {path}")
    _out("Ponder is in your applications menu now (some desktops show it after the next log-in).")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("install-desktop-entry", help="add Ponder to your applications menu (this user, "
                       "under $XDG_DATA_HOME)")
    p.add_argument("--remove", action="store_true", help="remove the launcher again")
    p.set_defaults(func=cmd_install_desktop_entry)
