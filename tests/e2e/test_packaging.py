"""Packaging: the launcher for the current user, and the wheel installed into a fresh venv that runs the
smoke spec from the installed resources (not the checkout).

The fresh venv reuses the project venv's big dependencies (torch, transformers, ...) instead of
installing them again: the wheel goes in with --no-deps, and a .pth file appends the project venv's
site-packages to sys.path. Its own site-packages comes first, so `engine` and `desktop` are the
wheel's; a .pth line only adds a path, so the project's editable install there stays inactive.
"""

from __future__ import annotations

import configparser
import os
import shutil
import site
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine import __version__
from engine.cli import main
from engine.install import APP_ID, targets
from engine.paths import resources_dir
from tests.conftest import ROOT


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path)
    return parser["Desktop Entry"]


def test_resources_come_from_the_checkout():
    assert resources_dir() == ROOT / "resources"


def test_install_desktop_entry_for_this_user(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    assert main(["install-desktop-entry"]) == 0
    where = targets(tmp_path / "share")
    assert all(path.is_file() for path in where.values()), capsys.readouterr().out
    entry = _entry(where["desktop"])
    assert entry["Name"] == "Ponder" and entry["Icon"] == APP_ID and entry["Type"] == "Application"
    exe = Path(entry["Exec"])
    assert exe.is_absolute() and exe.name == "ponder" and os.access(exe, os.X_OK)
    assert entry["TryExec"] == entry["Exec"]
    icon = ET.parse(where["icon"]).getroot()
    assert icon.tag.endswith("svg")
    assert "currentColor" not in where["icon"].read_text()  # a launcher cannot tint it
    assert ET.parse(where["metainfo"]).getroot().findtext("id") == APP_ID
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(where["desktop"])], capture_output=True,
                               text=True)
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout
    assert main(["install-desktop-entry", "--remove"]) == 0
    assert not any(path.exists() for path in where.values())


def test_exec_line_quotes_a_path_with_spaces():
    from engine.install import desktop_entry

    text = desktop_entry(["/opt/my apps/bin/ponder"])
    assert 'Exec="/opt/my apps/bin/ponder"\n' in text and "TryExec=/opt/my apps/bin/ponder\n" in text


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_smoke_spec(tmp_path, store):
    # a copy of the sources: setuptools builds in the tree, and a stale build/ would leak into the wheel
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "dist", "*.egg-info",
                                                                "__pycache__", "tests", "bench"))
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("ponder-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "ponder_project_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    work = tmp_path / "elsewhere"  # not the checkout: resources must come from the install
    work.mkdir()
    run = lambda *argv, **kw: subprocess.run([str(a) for a in argv], cwd=work, env={**env, **kw},  # noqa: E731
                                             capture_output=True, text=True, timeout=600)

    version = run(venv / "bin" / "ponder", "--version")
    assert version.stdout.strip() == f"ponder {__version__}", version.stderr
    where = run(python, "-c", "import engine.paths as p; print(p.__file__); print(p.resources_dir())")
    engine_file, resources = (Path(line) for line in where.stdout.split())
    assert engine_file.is_relative_to(venv), where.stderr
    assert resources == venv / "share" / "ponder" / "resources"

    share = tmp_path / "share"
    launcher = run(venv / "bin" / "ponder", "install-desktop-entry", XDG_DATA_HOME=str(share))
    assert launcher.returncode == 0, launcher.stdout + launcher.stderr
    assert _entry(targets(share)["desktop"])["Exec"] == str(venv / "bin" / "ponder")

    smoke = run(venv / "bin" / "ponder", "run", resources / "specs" / "smoke.toml")
    assert smoke.returncode == 0, smoke.stdout[-3000:] + smoke.stderr[-3000:]
    (ran,) = store.list_runs()
    assert ran["status"] == "succeeded"
    assert store.artifacts(ran["id"], "adapter")
