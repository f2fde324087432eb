"""What an evaluation scores: a source string resolved to a model (and adapter), and a run's sources
(base, after SFT, its checkpoints, trained) with the held-out problems its eval stage draws. No torch here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Source:
    label: str
    model: Any  # engine.spec.ModelSpec
    adapter: Path | None = None
    prompt_mode: str = "think"
    role: str = "source"  # base, sft, checkpoint, trained, or source (anything named on the command line)
    stage: str | None = None  # a checkpoint's stage and step
    step: int | None = None
    run_id: int | None = None  # the run whose weights these are (so a view can offer to export them)


def _spec_near(path: Path):
    from engine.spec import load_spec

    for folder in (path, *path.parents[:3]):
        if (folder / "spec.toml").is_file():
            return load_spec(folder / "spec.toml")
    return None


def _trained_base(model, adapter: Path):
    """The base the adapter was trained on, as its adapter_config.json records it, when that folder is still there
    (a source like builtin:tiny-random may point at another folder by now)."""
    import dataclasses
    import json

    try:
        recorded = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError):
        return model
    if recorded and Path(recorded).is_dir() and (Path(recorded) / "config.json").is_file():
        return dataclasses.replace(model, source=recorded)
    return model


def resolve_source(text: str, store=None, default_model=None) -> Source:
    """Turn a source as typed ("run:3", "run:3:grpo:16", "base", a folder or hub id) into the model (and
    adapter) to evaluate; raises ValueError naming the source."""
    from engine.store import source_row

    text = text.strip()
    row = source_row(text)
    if text.startswith("run:") and row["run_id"] is None:
        raise ValueError(f"source {text!r}: write run:ID or run:ID:STEP")
    return resolve_row(row, store, default_model)


def resolve_row(row: dict[str, Any], store=None, default_model=None) -> Source:
    """The model (and adapter) of an evaluation's source row (engine.store: kind, label, path, stage, step,
    run_id); raises ValueError naming the source."""
    from engine.spec import ModelSpec, spec_from_dict

    kind, label = row["kind"], row["label"]
    if row.get("run_id") is not None and kind in ("run", "checkpoint", "trained"):
        if kind == "checkpoint" and row.get("step") is None:
            raise ValueError(f"source {label!r}: write run:ID:STEP or run:ID:STAGE:STEP")
        if store is None:
            raise ValueError(f"source {label!r} needs the run store")
        run_id = row["run_id"]
        run = store.get_run(run_id)
        spec = spec_from_dict(run["spec"])
        arts = store.artifacts(run_id)
        mode = spec.rewards.resolved_prompt_mode()
        if kind == "checkpoint":
            step, stage = row["step"], row.get("stage")
            found = sorted((a for a in arts if a["kind"] == "checkpoint" and a["meta"].get("step") == step
                            and stage in (None, a["meta"].get("stage") or a["stage"])),
                           key=lambda a: ("sft", "prefer", "grpo").index(a["stage"])
                           if a["stage"] in ("sft", "prefer", "grpo") else -1)  # the latest stage's at that step
            if not found:
                raise ValueError(f"source {label!r}: run {run_id} has no checkpoint at step {step}")
            adapter = Path(found[-1]["path"])
            return Source(label, _trained_base(spec.model, adapter), adapter, mode, role="checkpoint",
                          stage=found[-1]["meta"].get("stage") or found[-1]["stage"], step=step, run_id=run_id)
        found = [a for a in arts if a["kind"] == "adapter"]
        if not found:
            raise ValueError(f"source {label!r}: run {run_id} has no final adapter yet ({run['status']})")
        adapter = Path(found[-1]["path"])
        return Source(label, _trained_base(spec.model, adapter), adapter, mode, role="trained", run_id=run_id)
    if kind == "base":
        model = default_model if default_model is not None else ModelSpec(source=row.get("path") or "base")
        return Source(label, model, role="base" if row.get("path") else "source")
    text = row.get("path") or label
    path = Path(text).expanduser()
    if path.is_dir() and (path / "adapter_config.json").is_file():
        spec = _spec_near(path)
        if spec is None:
            raise ValueError(f"source {label!r}: an adapter without a spec.toml beside it; Ponder cannot tell its "
                             "base model")
        role = kind if kind in ("sft", "trained", "checkpoint") else "source"
        return Source(label, _trained_base(spec.model, path), path, spec.rewards.resolved_prompt_mode(), role=role,
                      stage=row.get("stage"), step=row.get("step"), run_id=row.get("run_id"))
    return Source(label, ModelSpec(source=text))


def source_record(source: Source) -> dict[str, Any]:
    """The store's row of a resolved source (what an evaluation scored, for the views and a later re-run)."""
    return {"kind": source.role if source.role != "source" else "model", "label": source.label,
            "path": str(source.adapter) if source.adapter else getattr(source.model, "source", None),
            "stage": source.stage, "step": source.step, "run_id": source.run_id}


def run_examples(spec, n: int | None = None) -> list[dict]:
    """The run's held-out problems, as its eval stage draws them (its data seed, difficulty mix and columns)."""
    from engine.data import load_examples

    d = spec.data
    return load_examples(d.source, n=d.eval_size if n is None else n, seed=d.seed, split="eval",
                         difficulty_mix=d.mix(), columns=d.columns(), min_rows=1, needed_for="the eval stage")


def run_sources(store, run_id: int, checkpoints: str | list[int] = "final", compare_base: bool = True) -> list[Source]:
    """What a run's evaluation covers: its base model, the SFT adapter (when RL followed), the chosen checkpoints
    ("final" = none, "all", or a list of steps) in training order, and the final trained adapter."""
    from engine.spec import spec_from_dict

    run = store.get_run(run_id)
    spec = spec_from_dict(run["spec"])
    mode = spec.rewards.resolved_prompt_mode()
    arts = store.artifacts(run_id)
    adapters = {(a["meta"].get("stage") or a["stage"]): Path(a["path"]) for a in arts if a["kind"] == "adapter"}
    trained = adapters.get("grpo") or adapters.get("prefer") or adapters.get("sft") or next(
        (Path(a["path"]) for a in reversed(arts) if a["kind"] == "adapter"), None)
    sources = [Source("base", spec.model, None, mode, role="base")] if compare_base or trained is None else []
    sft = adapters.get("sft")
    if compare_base and sft is not None and trained is not None and sft != trained:
        sources.append(Source("sft", _trained_base(spec.model, sft), sft, mode, role="sft", run_id=run_id))
    if checkpoints != "final":
        order = {stage: i for i, stage in enumerate(("sft", "prefer", "grpo"))}
        found = {}
        for a in arts:
            stage, step = a["meta"].get("stage") or a["stage"], a["meta"].get("step")
            if a["kind"] == "checkpoint" and step is not None and stage != "judge" and Path(a["path"]).is_dir():
                found[(stage, step)] = Path(a["path"])
        wanted = None if checkpoints == "all" else set(checkpoints)
        if wanted is not None and wanted - {step for _, step in found}:
            missing = sorted(wanted - {step for _, step in found})
            have = ", ".join(str(step) for _, step in sorted(found)) or "none"
            raise ValueError(f"run {run_id} has no checkpoint at step {', '.join(map(str, missing))} "
                             f"(checkpoints: {have})")
        for (stage, step), path in sorted(found.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
            if wanted is None or step in wanted:
                sources.append(Source(f"{stage} step {step}", _trained_base(spec.model, path), path, mode,
                                      role="checkpoint", stage=stage, step=step, run_id=run_id))
    if trained is not None:
        sources.append(Source("trained", _trained_base(spec.model, trained), trained, mode, role="trained",
                              run_id=run_id))
    return sources
