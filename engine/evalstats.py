"""Small pure functions behind the evaluation views: pass@k, confidence intervals, the Pareto front, labels.

No torch and no Qt: the evaluation, the CLI's plot and the GUI's charts all use these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k).

    Computed as 1 - prod_{i<k} (n-c-i)/(n-i), a product of factors in [0, 1], so it never forms the
    binomials (which overflow a float for n in the hundreds) and loses no precision."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:  # fewer wrong samples than k: every k-subset holds a right one
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def pass_at_k_curve(groups: Sequence[tuple[int, int]]) -> list[float]:
    """Mean pass@k over prompts for k = 1..n, from (n, c) per prompt; n is the smallest group's size."""
    if not groups:
        return []
    n = min(g[0] for g in groups)
    return [sum(pass_at_k(gn, gc, k) for gn, gc in groups) / len(groups) for k in range(1, n + 1)]


def wilson_interval(successes: float, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (sound at 0 and 1, unlike the normal one)."""
    if total <= 0:
        return (float("nan"), float("nan"))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: fewer-or-equal tokens (x) and higher-or-equal accuracy (y),
    better in at least one. Returned in order of x. NaN points are never on the front."""
    ok = [i for i, (x, y) in enumerate(points) if math.isfinite(x) and math.isfinite(y)]
    ok.sort(key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in ok:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


ROLE_TITLES = {"base": "base", "sft": "after SFT", "trained": "trained"}


def source_title(label: str, info: dict[str, Any] | None = None) -> str:
    """What a summary column is, in words: base, after SFT, trained, checkpoint 16 (SFT checkpoint 2)."""
    info = info or {}
    role = info.get("role")
    parts = label.split(":")
    run = f"run #{parts[1]} " if parts[0] == "run" and len(parts) > 1 else ""  # a source named on the CLI
    if role in ROLE_TITLES:
        return run + ROLE_TITLES[role]
    if role == "checkpoint":
        stage = info.get("stage")
        return f"{run}{'SFT ' if stage == 'sft' else ''}checkpoint {info.get('step')}"
    if label in ROLE_TITLES:
        return ROLE_TITLES[label]
    if label.startswith("sft:"):
        return "after SFT"
    return label


def frontier_points(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One point per model or checkpoint of an evaluation summary: label, title, role, x (mean tokens),
    y (accuracy), lo/hi (its 95% interval), step; the Pareto flag set on the front's points."""
    points = []
    for label, s in summary.items():
        if label == "deltas" or not isinstance(s, dict) or "accuracy" not in s:
            continue
        lo, hi = s.get("ci95") or wilson_interval(s["accuracy"] * s.get("n_rows", 0), s.get("n_rows", 0))
        points.append({"label": label, "title": source_title(label, s), "role": s.get("role", "source"),
                       "x": float(s.get("tokens", float("nan"))), "y": float(s["accuracy"]),
                       "lo": float(lo), "hi": float(hi), "step": s.get("step"), "stage": s.get("stage"),
                       "pareto": False})
    for i in pareto_front([(p["x"], p["y"]) for p in points]):
        points[i]["pareto"] = True
    return points


def level_table(summary: dict[str, Any]) -> tuple[list[int], list[str], dict[str, dict[int, tuple]]]:
    """Per difficulty level and model: (accuracy, tokens, think-rate). Returns levels, labels, values."""
    labels = [k for k, v in summary.items() if k != "deltas" and isinstance(v, dict)]
    levels = sorted({int(k.rsplit("/d", 1)[1]) for label in labels for k in summary[label]
                     if k.startswith("accuracy/d") and k.rsplit("/d", 1)[1].isdigit()})
    values = {label: {lv: tuple(summary[label].get(f"{m}/d{lv}") for m in ("accuracy", "tokens", "think_rate"))
                      for lv in levels} for label in labels}
    return levels, labels, values
