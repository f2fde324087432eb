"""Spec files: TOML in and out, each value type-checked against the dataclasses, relative paths resolved."""

from __future__ import annotations

import difflib
import tomllib
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import tomli_w

from engine.spec.errors import SpecError, SpecInvalid
from engine.spec.run import RunSpec


def _type_ok(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin is list:
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _type_ok(v, args[1])
                                               for k, v in value.items())
    return True


_TYPE_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _build(cls: type, data: Any, prefix: str, errors: list[SpecError]) -> dict[str, Any]:
    """Type-check `data` against dataclass `cls`; returns constructor kwargs (bad values left out)."""
    if not isinstance(data, dict):
        errors.append(SpecError(prefix.rstrip(".") or "spec", "must be a table of settings."))
        return {}
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known settings: {', '.join(names)}."
            errors.append(SpecError(f"{prefix}{key}", f"unknown setting.{hint}"))
            continue
        hint_t = hints[key]
        if is_dataclass(hint_t):
            kwargs[key] = hint_t(**_build(hint_t, value, f"{prefix}{key}.", errors))
        elif _type_ok(value, hint_t):
            kwargs[key] = list(value) if isinstance(value, list) else value
        else:
            want = _TYPE_WORDS.get(hint_t, str(hint_t).replace("typing.", ""))
            errors.append(SpecError(f"{prefix}{key}", f"must be {want}; got {value!r}."))
    return kwargs


def spec_from_dict(data: dict[str, Any]) -> RunSpec:
    """Build and validate a spec; raises SpecInvalid listing every problem."""
    errors: list[SpecError] = []
    kwargs = _build(RunSpec, data, "", errors)
    try:
        spec = RunSpec(**kwargs)
    except SpecInvalid as invalid:
        raise SpecInvalid(errors + invalid.errors) from None
    if errors:
        raise SpecInvalid(errors)
    return spec


PATH_FIELDS = (("rewards", "custom_file"), ("data", "source"), ("model", "source"), ("sft", "teacher_source"))


def resolve_paths(data: dict[str, Any], spec_dir: Path) -> dict[str, Any]:
    """Relative file paths in a spec file become absolute, found beside the spec, in the working folder,
    or in Ponder's data folder (the shipped specs' "resources/..."), so a worker finds them from anywhere.
    Changes `data` in place and returns it."""
    from engine.paths import resources_dir

    for section, key in PATH_FIELDS:
        table = data.get(section)
        value = table.get(key) if isinstance(table, dict) else None
        if not isinstance(value, str) or not value.strip() or value.startswith(("builtin:", "bundled:")) \
                or Path(value).expanduser().is_absolute():
            continue
        for root in (spec_dir, Path.cwd(), resources_dir().parent):
            if (root / value).exists():
                table[key] = str((root / value).resolve())
                break
    return data


def _read_spec_text(path: Path) -> str:
    """The spec file's text (a UTF-8 BOM, as some Windows editors write, is dropped). Only a regular
    file is read: a FIFO or a device would block or never end."""
    from engine.data.readers import path_problem

    problem = path_problem(path, allow_dir=False)
    if problem == "no such file or folder":
        raise FileNotFoundError(path)
    if problem:
        raise SpecInvalid([SpecError("spec", f"{path}: {problem}")])
    return path.read_text(encoding="utf-8-sig")


def load_spec(path: str | Path) -> RunSpec:
    path = Path(path)
    try:
        data = tomllib.loads(_read_spec_text(path))
    except FileNotFoundError:
        raise SpecInvalid([SpecError("spec", f"no such file: {path}")]) from None
    except IsADirectoryError:
        raise SpecInvalid([SpecError("spec", f"{path} is a folder, not a spec file (give the .toml file)")]) from None
    except OSError as exc:
        raise SpecInvalid([SpecError("spec", f"cannot read {path}: {exc.strerror or exc}")]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecInvalid([SpecError("spec", f"{path} is not valid TOML: {exc}")]) from None
    return spec_from_dict(resolve_paths(data, path.resolve().parent))


def dumps_spec(spec: RunSpec) -> str:
    return tomli_w.dumps(spec.to_dict())


def save_spec(spec: RunSpec, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from engine.paths import atomic_write

    return atomic_write(path, dumps_spec(spec))

