"""An export, all or nothing: pick the trained weights, write them, the tokenizer, the spec and the model card
into a hidden temporary folder next to the target, and move it into place only when complete."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt",
                   "added_tokens.json", "spiece.model", "vocab.txt")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
MODEL_FILES = ("config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json",
               "pytorch_model*.bin")
# The hub models the bundled GGUF files were quantised from (their weights differ: quantised, de-quantised).
BUNDLED_ORIGINS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
Progress = Callable[[int, int, str], None]  # (step, steps, what is being done)


class ExportError(RuntimeError):
    """An export cannot be made or written; the message says why and names the path."""

    def __init__(self, message: str, path: str | Path | None = None):
        super().__init__(message)
        self.path = Path(path) if path is not None else None


@dataclasses.dataclass
class Picked:
    """The trained weights an export starts from."""
    path: Path
    stage: str | None
    step: int | None
    final: bool  # the run's final adapter, else a checkpoint

    @property
    def full_model(self) -> bool:  # LoRA was off: the stage saved a whole model
        return not (self.path / "adapter_config.json").is_file()


# ---- what to export -------------------------------------------------------------------------------

def _stage_of(art: dict) -> str | None:
    return art["meta"].get("stage") or art["stage"]


def pick_weights(store, run: dict, checkpoint: str | int | None = None) -> Picked:
    """The run's final adapter, or its checkpoint at STEP (GRPO's where SFT has one at that step too) or
    STAGE:STEP; never the judge's weights."""
    arts = [a for a in store.artifacts(run["id"]) if _stage_of(a) != "judge"]
    ckpts = list({a["path"]: a for a in arts if a["kind"] == "checkpoint"}.values())  # one per folder
    listed = ", ".join(f"{_stage_of(a)}:{a['meta'].get('step')}" for a in ckpts) or "none"
    if checkpoint is None:
        finals = [a for a in arts if a["kind"] == "adapter"]
        if not finals:
            raise ExportError(f"run {run['id']} has no final adapter ({run['status']}); export a checkpoint "
                              f"with --checkpoint STEP (checkpoints: {listed})", run.get("run_dir"))
        art = finals[-1]  # the last stage's: GRPO's when SFT ran before it
    else:
        stage, _, step = str(checkpoint).rpartition(":")
        found = [a for a in ckpts if str(a["meta"].get("step")) == step and stage in ("", _stage_of(a))]
        if not found:
            raise ExportError(f"run {run['id']} has no checkpoint {checkpoint} (checkpoints: {listed})",
                              run.get("run_dir"))
        order = ("sft", "prefer", "grpo")  # the latest stage's at that step, as `ponder eval run:ID:STEP` picks
        art = sorted(found, key=lambda a: order.index(_stage_of(a)) if _stage_of(a) in order else -1)[-1]
    path = Path(art["path"])
    if not path.is_dir():
        raise ExportError(f"the trained weights of run {run['id']} are gone: no folder {path}", path)
    return Picked(path, _stage_of(art), art["meta"].get("step"), checkpoint is None)


def base_reference(source: str, picked: Picked) -> tuple[str, Path]:
    """(what the export records as its base, the local base folder).

    A hub id stays a hub id: any client resolves it. Otherwise (bundled, GGUF, builtin, a folder) it
    is the folder the adapter was trained on, as the trainer recorded it; only if that folder is
    gone, the folder the source resolves to now (the model cache moves on: converted files renamed).
    """
    from engine.models import resolve_source

    text = source.strip()
    is_hub = (text.count("/") == 1 and not text.startswith(("/", ".", "~", "bundled:", "builtin:"))
              and not Path(text).expanduser().exists())
    if not is_hub and not picked.full_model:
        config = json.loads((picked.path / "adapter_config.json").read_text(encoding="utf-8"))
        recorded = Path(config.get("base_model_name_or_path") or "").expanduser()
        if str(recorded) != "." and (recorded / "config.json").is_file():
            return str(recorded.resolve()), recorded.resolve()
    folder = resolve_source(source)
    return (text if is_hub else str(folder.resolve())), folder


# ---- writing --------------------------------------------------------------------------------------

def _copy_matching(src: Path, dst: Path, patterns: tuple[str, ...]) -> list[str]:
    copied = []
    for pattern in patterns:
        for file in sorted(src.glob(pattern)):
            if file.is_file():
                shutil.copyfile(file, dst / file.name)
                copied.append(file.name)
    return copied


def write_adapter(picked: Picked, base_ref: str, dst: Path) -> None:
    config = json.loads((picked.path / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_ref
    (dst / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", "utf-8")
    if not _copy_matching(picked.path, dst, ADAPTER_WEIGHTS):
        raise ExportError(f"{picked.path} holds no adapter weights (adapter_model.safetensors)", picked.path)


def write_merged(picked: Picked, spec, base_folder: Path, dst: Path) -> None:
    """Base + adapter merged (`merge_and_unload`) in fp32 on the CPU, saved in the base's own dtype."""
    import torch

    from engine.models import Placement, load_model

    config = json.loads((base_folder / "config.json").read_text(encoding="utf-8"))
    dtype = getattr(torch, str(config.get("dtype") or config.get("torch_dtype") or "float32"), None)
    base = dataclasses.replace(spec.model, source=str(base_folder))  # the base the adapter was trained on
    model, _, _ = load_model(base, placement=Placement("cpu", "float32"), adapter=picked.path)
    model = model.merge_and_unload()  # W + (alpha / r) B A
    model.to(dtype if isinstance(dtype, torch.dtype) else torch.float32)
    model.save_pretrained(dst)


def write_tokenizer(picked: Picked, base_folder: Path, dst: Path) -> None:
    if not _copy_matching(picked.path, dst, TOKENIZER_FILES):
        _copy_matching(base_folder, dst, TOKENIZER_FILES)  # a checkpoint saved without its tokenizer


def _zip(folder: Path, target: Path, name: str) -> None:
    with zipfile.ZipFile(target, "w") as zf:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            weights = file.suffix in (".safetensors", ".bin", ".gguf")  # they barely compress: store them as is
            zf.write(file, f"{name}/{file.relative_to(folder)}",
                     compress_type=zipfile.ZIP_STORED if weights else zipfile.ZIP_DEFLATED)


def _exists(final: Path) -> ExportError:
    return ExportError(f"{final} already exists; choose another name or delete it first", final)


def _place(tmp: Path, final: Path) -> None:
    """Move the finished export into place, never over something that appeared meanwhile."""
    if final.exists():
        raise _exists(final)
    if tmp.is_dir():
        os.rename(tmp, final)
        return
    try:
        os.link(tmp, final)  # fails if the target exists: no check-then-replace race
        tmp.unlink()
    except FileExistsError:
        raise _exists(final) from None
    except OSError:  # no hard links on this file system
        os.rename(tmp, final)


_REASONS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.EROFS: "the file system is read-only", errno.ENAMETOOLONG: "the name is too long"}


def _os_error(exc: OSError, final: Path) -> ExportError:
    reason = _REASONS.get(exc.errno, exc.strerror or str(exc))
    where = f" ({exc.filename})" if exc.filename and Path(str(exc.filename)) != final else ""
    return ExportError(f"could not write the export to {final}: {reason}{where}", final)


def export_run(store, run_id: int, out_dir: str | Path, checkpoint: str | int | None = None,
               merged: bool = False, zip_: bool = False, progress: Progress | None = None,
               gguf: str | None = None, gguf_adapter: bool = False) -> Path:
    """Export run `run_id` to `out_dir` (`out_dir`.zip with `zip_`); returns the path written. `gguf` (f16,
    q8_0): a merged GGUF + Modelfile instead; `gguf_adapter`: a GGUF LoRA + the base as GGUF (engine.gguf_export)."""
    from engine.spec import dumps_spec, spec_from_dict

    steps = 6 if zip_ else 5
    say = progress or (lambda step, steps, text: None)
    say(1, steps, "reading the run")
    out = Path(out_dir).expanduser().absolute()
    final = out.with_name(out.name if out.suffix == ".zip" else out.name + ".zip") if zip_ else out
    name = final.stem if zip_ else final.name
    if final.exists():
        raise _exists(final)
    run = store.get_run(run_id)
    spec = spec_from_dict(run["spec"])
    picked = pick_weights(store, run, checkpoint)
    base_ref, base_folder = base_reference(spec.model.source, picked)
    fmt = gguf or ("f16" if gguf_adapter else None)

    made = [p for p in reversed(final.parents) if not p.exists()]  # folders this export creates, outer first
    tmp = tmp_zip = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=final.parent))
        if fmt:
            from engine import gguf_export

            gguf_export.write_export(picked, spec, base_folder, tmp, fmt, gguf_adapter, name,
                                     lambda step, text: say(step, steps, text))
        elif picked.full_model:
            say(2, steps, "copying the fine-tuned model")
            _copy_matching(picked.path, tmp, MODEL_FILES)
        elif merged:
            say(2, steps, "merging the adapter into the base model")
            write_merged(picked, spec, base_folder, tmp)
        else:
            say(2, steps, "writing the adapter")
            write_adapter(picked, base_ref, tmp)
        if not fmt:
            say(3, steps, "writing the tokenizer")
            write_tokenizer(picked, base_folder, tmp)
        say(4, steps, "writing the spec and the model card")
        spec_file = Path(run["run_dir"] or "") / "spec.toml"
        if spec_file.is_file():
            shutil.copyfile(spec_file, tmp / "spec.toml")
        else:
            (tmp / "spec.toml").write_text(dumps_spec(spec), encoding="utf-8")
        use = gguf_export.card_section(picked, spec, base_folder, fmt, gguf_adapter, name) if fmt else None
        from engine.export.model_card import model_card

        card = model_card(store, run, spec, picked, base_ref, base_folder, bool(merged or picked.full_model or fmt),
                          name, use)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if zip_:
            say(5, steps, "packing the zip file")
            fd, zip_name = tempfile.mkstemp(prefix=f".{name}.partial-", suffix=".zip", dir=final.parent)
            os.close(fd)
            tmp_zip = Path(zip_name)
            _zip(tmp, tmp_zip, name)
        say(steps, steps, "moving it into place")
        _place(tmp_zip or tmp, final)
    except BaseException as exc:
        for leftover in (tmp, tmp_zip):
            if leftover is not None and leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover is not None:
                leftover.unlink(missing_ok=True)
        for folder in reversed(made):  # innermost first; a folder someone else filled meanwhile stays
            try:
                folder.rmdir()
            except OSError:
                break
        if isinstance(exc, OSError):
            raise _os_error(exc, final) from exc
        raise
    if tmp_zip is not None:
        shutil.rmtree(tmp, ignore_errors=True)  # the folder the zip was packed from
    store.add_artifact(run_id, "merged" if merged else "export", final, {
        "from": str(picked.path), "stage": picked.stage, "step": picked.step, "zip": zip_, "base": base_ref,
        **({"gguf": fmt, "gguf_adapter": gguf_adapter} if fmt else {})},
        stage=picked.stage)
    return final

