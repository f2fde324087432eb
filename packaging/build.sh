#!/usr/bin/env bash
# `make package`: build the sdist and the wheel into dist/, then check that both carry what the
# app needs at run time besides the code: resources/ (specs, rewards, icons, style) and packaging/
# (desktop entry, AppStream metadata). A wheel installs them under {prefix}/share/ponder/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

"$PY" -m pip -q --disable-pip-version-check install build  # small, pure Python; from the local index offline
rm -rf build ./*.egg-info  # a stale file list would leak old files into the new build
"$PY" -m build --no-isolation --outdir dist .  # --no-isolation: the venv's setuptools, no download

version=$("$PY" -c 'import engine; print(engine.__version__)')
"$PY" - "dist/ponder-$version-py3-none-any.whl" "dist/ponder-$version.tar.gz" <<'CHECK'
import sys, tarfile, zipfile
from pathlib import Path

wheel, sdist = sys.argv[1:3]
need = [str(p) for p in Path("resources").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
need += [str(p) for p in Path("packaging").glob("*") if p.suffix in (".desktop", ".xml")]
data = f"ponder-{wheel.split('-')[1]}.data/data/share/ponder/"
in_wheel = set(zipfile.ZipFile(wheel).namelist())
in_sdist = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
missing = [f"{wheel}: {p}" for p in need if data + p not in in_wheel]
missing += [f"{sdist}: {p}" for p in need if p not in in_sdist]
if missing:
    sys.exit("missing from the distributions:\n  " + "\n  ".join(missing))
print(f"checked: {len(need)} resource and packaging files in {wheel} and {sdist}")
CHECK

# Validators, where installed (desktop-file-utils, appstream); they are not needed to build.
if command -v desktop-file-validate >/dev/null; then desktop-file-validate packaging/*.desktop; fi
if command -v appstreamcli >/dev/null; then appstreamcli validate --no-net packaging/*.metainfo.xml >/dev/null; fi
echo "built: $(ls dist/ponder-"$version"*)"
