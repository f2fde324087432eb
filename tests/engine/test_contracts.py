"""Import contracts: the engine never imports Qt or the desktop (import-linter, configured in pyproject)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 2 kept, 0 broken" in out.stdout, out.stdout


def test_import_contracts_follow_indirect_imports():
    """An engine module that pulls Qt in through another module breaks a contract: none of them
    is limited to direct imports."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(contracts) == 2
    assert not any(c.get("allow_indirect_imports") for c in contracts), contracts
