"""A user's Python file of reward functions, and the guard every such function runs under.

A custom file defines top-level functions with TRL's reward signature whose names start
with `reward_` (or lists them in `__all__`):

    def reward_short(prompts, completions, **kwargs):
        return [1.0 if len(c) < 200 else 0.0 for c in completions]

`checked` turns anything odd a function does (an exception, sys.exit() or another
BaseException but Ctrl-C, NaN, a non-number, the wrong number of values, changing its inputs
in place, running too long) into a `RewardError` that names the function and the batch, so
the run stops with a message instead of training on garbage. Each call gets its own copy of
the batch, so the traces stored and the other rewards never see what a function changed.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import inspect
import itertools
import math
import numbers
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

_module_counter = itertools.count()


class CustomRewardError(ValueError):
    """A custom reward file cannot be used; the message names the file (and line)."""


class RewardError(RuntimeError):
    """A reward function failed or returned unusable values on a batch."""


def load_custom_rewards(path: str | Path) -> list[Callable]:
    """The reward functions of a user's Python file, in definition order.

    Takes the public top-level callables named `reward_*`, or exactly those listed in
    `__all__` when the file defines it. Raises CustomRewardError when the file is missing,
    does not compile or import, or defines no reward function.
    """
    path = Path(path)
    if not path.is_file():
        raise CustomRewardError(f"custom reward file {path} does not exist")
    # a unique name per load, so two files (or two versions of one) never share a module
    name = f"ponder_custom_rewards_{next(_module_counter)}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CustomRewardError(f"custom reward file {path} cannot be imported (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling inside the file look it up there
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        sys.modules.pop(name, None)
        raise CustomRewardError(f"custom reward file {path}, line {e.lineno}: syntax error: {e.msg}") from e
    except BaseException as e:  # noqa: BLE001 - SystemExit in a user file must not end the worker
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        line = _line_in(e, path)
        where = f"{path}, line {line}" if line else str(path)
        raise CustomRewardError(f"custom reward file {where}: importing it failed: "
                                f"{type(e).__name__}: {e}") from e

    exported = getattr(module, "__all__", None)
    if exported is not None:
        missing = [n for n in exported if not callable(getattr(module, n, None))]
        if missing:
            raise CustomRewardError(f"custom reward file {path}: __all__ lists {', '.join(missing)}, "
                                    "which is not a callable defined in the file")
        names = list(exported)
    else:
        names = [n for n, v in vars(module).items()
                 if n.startswith("reward_") and callable(v) and not inspect.isclass(v)]
    if not names:
        raise CustomRewardError(f"custom reward file {path} defines no reward functions: name them "
                                "reward_<something>(prompts, completions, **kwargs) or list them in __all__")
    return [getattr(module, n) for n in names]


def _line_in(error: BaseException, path: Path) -> int | None:
    """The last line of `path` in the error's traceback."""
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename).resolve() == path.resolve():
            line = frame.lineno
    return line


def checked(func: Callable, timeout_s: float | None = 30) -> Callable:
    """`func` guarded: an exception (any BaseException but KeyboardInterrupt), a NaN/inf, a
    non-number, a value count other than the number of completions passed in, or a change to its
    inputs (it is given copies) raises RewardError naming the function and the batch; None
    values pass (TRL leaves the function out for that completion). With `timeout_s`, the call runs in a daemon worker
    thread; if it has not returned in time RewardError says so and the thread is abandoned:
    Python cannot stop a thread, so it runs on in the background until the function returns
    (a daemon thread does not keep the process alive).
    """
    name = getattr(func, "__name__", type(func).__name__)

    @functools.wraps(func)
    def wrapper(prompts, completions, **kwargs):
        def batch() -> str:
            return _describe(prompts, completions)

        if not hasattr(completions, "__len__"):
            raise RewardError(f"reward function {name!r} was called with completions of type "
                              f"{type(completions).__name__}, not a list, on {batch()}")
        n = len(completions)  # counted before the call: a function may empty the list it is given
        given = {"prompts": prompts, "completions": completions, **kwargs}
        copies = {k: _own_copy(v) for k, v in given.items()}  # the caller's batch is never touched
        try:
            values = _call(func, timeout_s, copies, timeout_name=name)
        except _Timeout:
            raise RewardError(f"reward function {name!r} took longer than {timeout_s:g} s on "
                              f"{batch()}; its thread was abandoned") from None
        except BaseException as e:  # noqa: BLE001 - sys.exit() or any BaseException in user code ends no run
            if isinstance(e, KeyboardInterrupt):
                raise
            what = (f"called sys.exit({e.code!r})" if isinstance(e, SystemExit)
                    else f"raised {type(e).__name__}: {e}")
            raise RewardError(f"reward function {name!r} {what} on {batch()}") from e
        values = _validate(values, n, name, batch)
        changed = [k for k, v in copies.items() if isinstance(v, _DATA_TYPES) and not _same(v, given[k])]
        if changed:
            raise RewardError(f"reward function {name!r} changed its {', '.join(changed)} argument"
                              f"{'s' * (len(changed) != 1)} in place on {batch()}; a reward function must "
                              "only read its inputs (copy them first to change them)")
        return values

    wrapper.__name__ = name
    return wrapper


class _Timeout(Exception):
    pass


# the batch's data (prompts, completions, completion_ids, the dataset's columns): copied for each
# call and compared after it; anything else (trainer_state, the logging callbacks) is passed as it is
_DATA_TYPES = (list, tuple, dict)


def _own_copy(value):
    return copy.deepcopy(value) if isinstance(value, _DATA_TYPES) else value


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - e.g. arrays whose == is elementwise: take them as unchanged
        return True


def _call(func: Callable, timeout_s: float | None, kwargs: dict, timeout_name: str = "func"):
    if timeout_s is None:
        return func(**kwargs)
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = func(**kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            box["error"] = e

    thread = threading.Thread(target=target, name=f"reward-{timeout_name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise _Timeout
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def _validate(values, n: int, name: str, batch: Callable[[], str]) -> list[float | None]:
    if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        raise RewardError(f"reward function {name!r} returned {type(values).__name__}, not a list of "
                          f"{n} numbers, on {batch()}")
    values = list(values)
    if len(values) != n:
        raise RewardError(f"reward function {name!r} returned {len(values)} values for {n} completions "
                          f"on {batch()}")
    out: list[float | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        if not isinstance(v, numbers.Real):
            raise RewardError(f"reward function {name!r} returned {type(v).__name__} {v!r} for completion "
                              f"{i}, not a number, on {batch()}")
        if not math.isfinite(float(v)):
            raise RewardError(f"reward function {name!r} returned {float(v)} for completion {i} on {batch()}")
        out.append(float(v))
    return out


def _describe(prompts, completions) -> str:
    first = ""
    n = len(completions) if hasattr(completions, "__len__") else "?"
    if isinstance(prompts, list | tuple) and prompts:
        p = prompts[0]
        if isinstance(p, list) and p and isinstance(p[-1], dict):
            p = p[-1].get("content", "")
        first = " ".join(str(p).split())
        if len(first) > 60:
            first = first[:57] + "..."
    return f"a batch of {n} completions (first prompt {first!r})"
