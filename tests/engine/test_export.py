"""Exporting a run: the folder's contents and model card, checkpoints, zip, merged, and failures that
leave nothing behind. The run is made by hand (a real LoRA adapter on the tiny model, no training)."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine.export import ExportError, export_run
from engine.launch import create_run
from engine.spec import load_spec
from tests.conftest import ROOT, SPECS

SUMMARY = {"base": {"accuracy": 0.25, "tokens": 80.0, "think_tokens": 70.0, "answer_tokens": 10.0,
                    "think_rate": 1.0, "pass@1": 0.25, "prompts": 8, "accuracy/d1": 0.5, "think_rate/d1": 1.0,
                    "tokens/d1": 60.0, "accuracy/d3": 0.0, "think_rate/d3": 1.0, "tokens/d3": 100.0},
           "trained": {"accuracy": 0.5, "tokens": 40.0, "think_tokens": 32.0, "answer_tokens": 8.0,
                       "think_rate": 0.75, "pass@1": 0.5, "prompts": 8, "accuracy/d1": 0.75, "think_rate/d1": 0.5,
                       "tokens/d1": 20.0, "accuracy/d3": 0.25, "think_rate/d3": 1.0, "tokens/d3": 60.0},
           "deltas": {"d_accuracy_pct": 100.0, "d_tokens_pct": 50.0}}


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model with random (non-zero) B matrices, saved like a trained one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.models import resolve_source

    base = resolve_source("builtin:tiny-random")
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
        init_lora_weights=False))  # random B: merged weights differ from the base's
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def _make_run(store, adapter: Path, status: str = "succeeded", final: bool = True,
              evaluation: bool = True) -> int:
    spec = load_spec(SPECS / "smoke.toml").replace(stages=["grpo", "eval"])
    run_id, run_dir = create_run(spec, store)
    ckpt = run_dir / "checkpoints" / "grpo" / "checkpoint-2"
    shutil.copytree(adapter, ckpt)
    (ckpt / "optimizer.pt").write_bytes(b"not for export")
    store.add_artifact(run_id, "checkpoint", ckpt, {"step": 2, "stage": "grpo"}, stage="grpo")
    judge = run_dir / "checkpoints" / "judge" / "checkpoint-2"
    shutil.copytree(adapter, judge)
    store.add_artifact(run_id, "checkpoint", judge, {"step": 2, "stage": "judge"}, stage="judge")
    if final:
        shutil.copytree(adapter, run_dir / "adapter")
        store.add_artifact(run_id, "adapter", run_dir / "adapter", {"step": 3, "stage": "grpo"}, stage="grpo")
    if evaluation:
        eval_id = store.create_evaluation(["base", "trained"], "builtin:arithmetic", 8,
                                          {"temperature": 0.0, "num_samples": 1, "max_completion_length": 32},
                                          run_id=run_id)
        store.update_evaluation(eval_id, status="succeeded", summary=SUMMARY)
    store.update_run(run_id, status=status)
    return run_id


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _run_card_code(export: Path) -> str:
    """Run the card's "Use" code as written, beside the export (it names the folder relatively)."""
    card = (export / "README.md").read_text()
    code = card.split("## Use", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    out = subprocess.run([sys.executable, "-c", code], cwd=export.parent, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, code + out.stderr[-3000:]
    return out.stdout


def test_adapter_export_holds_peft_files_tokenizer_spec_and_card(store, adapter, tmp_path):
    run_id = _make_run(store, adapter)
    seen = []
    out = export_run(store, run_id, tmp_path / "exports" / "smoke-adapter",
                     progress=lambda i, n, text: seen.append((i, n, text)))
    assert out == tmp_path / "exports" / "smoke-adapter"
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "spec.toml", "README.md"} <= set(_leftovers(out))
    assert "optimizer.pt" not in _leftovers(out)
    assert [i for i, _, _ in seen] == [1, 2, 3, 4, 5] and seen[1][2] == "writing the adapter"
    assert _leftovers(out.parent) == ["smoke-adapter"]  # no temporary folder left beside it
    weights = "adapter_model.safetensors"
    assert (out / weights).read_bytes() == (adapter / weights).read_bytes()
    base = Path(json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"])
    assert base.is_absolute() and (base / "config.json").is_file()  # a plain client can load it
    run = store.get_run(run_id)
    assert (out / "spec.toml").read_text() == (Path(run["run_dir"]) / "spec.toml").read_text()
    card = (out / "README.md").read_text()
    for text in ("library_name: peft", "builtin:tiny-random", str(base), "| GRPO |", "max_steps 3",
                 "Preset **r1-zero**", "| accuracy | 1 |", "| format | 0.5 |", "| reward_plain_text | 1 |",
                 "| accuracy | 25.0% | 50.0% |", "| tokens per answer | 80.0 | 40.0 |",
                 "| think-rate | 100% | 75% |",
                 "| level | base model | trained |", "| 1 | 50% / 100% / 60.0 | 75% / 50% / 20.0 |",
                 "| 3 | 0% / 100% / 100.0 | 25% / 100% / 60.0 |",
                 "accuracy +100.0%, 50.0% fewer tokens", "PeftModel.from_pretrained", "<think>\\n"):
        assert text in card, text
    (art,) = store.artifacts(run_id, "export")
    assert art["path"] == str(out) and art["meta"]["step"] == 3
    _run_card_code(out)  # the card's example loads the adapter and generates


def test_checkpoint_export_and_its_errors(store, adapter, tmp_path):
    run_id = _make_run(store, adapter, status="stopped", final=False, evaluation=False)
    with pytest.raises(ExportError, match=r"no final adapter \(stopped\).*--checkpoint.*grpo:2"):
        export_run(store, run_id, tmp_path / "a")
    with pytest.raises(ExportError, match="no checkpoint 7"):
        export_run(store, run_id, tmp_path / "a", checkpoint=7)
    sft = Path(store.get_run(run_id)["run_dir"]) / "checkpoints" / "sft" / "checkpoint-2"
    shutil.copytree(adapter, sft)
    store.add_artifact(run_id, "checkpoint", sft, {"step": 2, "stage": "sft"}, stage="sft")
    assert export_run(store, run_id, tmp_path / "s", checkpoint="sft:2").is_dir()
    assert store.artifacts(run_id, "export")[-1]["meta"]["from"] == str(sft)
    out = export_run(store, run_id, tmp_path / "a", checkpoint=2)  # GRPO's; the judge's is not a policy
    assert store.artifacts(run_id, "export")[-1]["meta"]["stage"] == "grpo"
    assert "optimizer.pt" not in _leftovers(out)
    card = (out / "README.md").read_text()
    assert "checkpoint at grpo step 2" in card and "No evaluation yet" in card


def test_zip_packs_the_folder_and_leaves_no_folder(store, adapter, tmp_path):
    run_id = _make_run(store, adapter)
    out = export_run(store, run_id, tmp_path / "out" / "shared", zip_=True)
    assert out == tmp_path / "out" / "shared.zip"
    assert _leftovers(out.parent) == ["shared.zip"]
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert zf.testzip() is None
    assert {"shared/adapter_config.json", "shared/adapter_model.safetensors", "shared/README.md"} <= names


def test_an_existing_target_is_refused_and_left_alone(store, adapter, tmp_path):
    run_id = _make_run(store, adapter)
    taken = tmp_path / "out" / "taken"
    taken.mkdir(parents=True)
    (taken / "mine.txt").write_text("keep")
    with pytest.raises(ExportError, match="already exists") as info:
        export_run(store, run_id, taken)
    assert info.value.path == taken
    assert _leftovers(taken) == ["mine.txt"] and _leftovers(taken.parent) == ["taken"]


def test_a_full_disk_leaves_no_partial_export(store, adapter, tmp_path, monkeypatch):
    run_id = _make_run(store, adapter)
    real_copy = shutil.copyfile

    def copy(src, dst, *args, **kwargs):
        if str(src).endswith(".safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copy)
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "new" / "deeper" / "export"
    with pytest.raises(ExportError, match=f"could not write the export to {target}: no space left"):
        export_run(store, run_id, target)
    assert _leftovers(tmp_path / "out") == []  # the folders it made for the target are gone too
    assert not store.artifacts(run_id, "export")


def test_no_permission_says_so(store, adapter, tmp_path, monkeypatch):
    import tempfile

    run_id = _make_run(store, adapter)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(kwargs.get("dir")))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    (tmp_path / "out").mkdir()
    with pytest.raises(ExportError, match=f"could not write the export to {tmp_path / 'out' / 'x'}: "
                                          "permission denied"):
        export_run(store, run_id, tmp_path / "out" / "x")
    assert _leftovers(tmp_path / "out") == []


def test_a_folder_nobody_may_write_says_permission_denied(store, adapter, tmp_path):
    run_id = _make_run(store, adapter)
    target = Path("/sys/fs/ponder-export")  # sysfs refuses new entries even to root (CI runs as root)
    with pytest.raises(ExportError, match="permission denied"):
        export_run(store, run_id, target)
    assert not target.exists()


def test_merged_model_loads_with_plain_transformers_and_matches_the_adapter(store, adapter, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_id = _make_run(store, adapter)
    out = export_run(store, run_id, tmp_path / "merged", merged=True)
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "spec.toml"} <= \
        set(_leftovers(out))
    assert not (out / "adapter_config.json").exists()
    assert "library_name: transformers" in (out / "README.md").read_text()
    _run_card_code(out)
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    lora = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    plain = AutoModelForCausalLM.from_pretrained(base)
    ids = torch.tensor([[1, 5, 9, 200, 3000, 17]])
    with torch.inference_mode():
        want, got, before = lora(ids).logits, merged(ids).logits, plain(ids).logits
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, before, atol=1e-3)  # the adapter is in the weights


def test_module_cli_prints_progress_lines_for_the_gui(store, adapter, tmp_path):
    run_id = _make_run(store, adapter)
    argv = [sys.executable, "-m", "engine.export", str(run_id), "--out", str(tmp_path / "e"), "--store",
            str(store.path)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == ["progress 1/5 reading the run", "progress 2/5 writing the adapter"]
    assert lines[-1] == f"exported {tmp_path / 'e'}"
    again = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert again.stdout.splitlines()[-1] == \
        f"error {tmp_path / 'e'} already exists; choose another name or delete it first"


def test_ponder_export_command(store, adapter, tmp_path):
    from engine.cli import main

    run_id = _make_run(store, adapter)
    assert main(["export", str(run_id), "--out", str(tmp_path / "c"), "--zip"]) == 0
    assert (tmp_path / "c.zip").is_file()
    assert main(["export", "999", "--out", str(tmp_path / "d")]) == 1


def test_a_cancelled_export_cleans_up(store, adapter, tmp_path):
    import signal

    run_id = _make_run(store, adapter)
    (tmp_path / "out").mkdir()
    argv = [sys.executable, "-m", "engine.export", str(run_id), "--out", str(tmp_path / "out" / "m"),
            "--merged", "--store", str(store.path)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("progress 2/5"):  # merging: loading torch and the model takes seconds
            proc.send_signal(signal.SIGTERM)  # the GUI's Cancel
            break
    proc.stdout.close()
    assert proc.wait(timeout=60) == 143
    assert _leftovers(tmp_path / "out") == []
