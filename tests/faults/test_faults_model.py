"""Broken model sources fail before any training starts, with a message that names the file or folder."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.faults.conftest import fault_spec, first_line, start


def _tiny_copy(tmp_path, name: str):
    from engine.models import ensure_tiny_random

    folder = tmp_path / name
    shutil.copytree(ensure_tiny_random(), folder)
    return folder


def truncated_safetensors(tmp_path):
    folder = _tiny_copy(tmp_path, "truncated-model")
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as f:  # a download or copy cut off half way
        f.truncate(os.path.getsize(weights) // 2)
    return folder, [str(weights), "damaged or incomplete"]


def garbage_gguf(tmp_path):
    path = tmp_path / "garbage.gguf"
    path.write_bytes(b"GGUF" + os.urandom(4096))  # the right magic, then noise
    return path, [str(path), "damaged, incomplete or not a GGUF model file"]


def missing_tokenizer(tmp_path):
    folder = _tiny_copy(tmp_path, "no-tokenizer-model")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        (folder / name).unlink(missing_ok=True)
    return folder, [str(folder), "tokenizer"]


def remote_code(tmp_path):
    folder = _tiny_copy(tmp_path, "remote-code-model")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder, [str(folder), "trust_remote_code"]


@pytest.mark.parametrize("make", [truncated_safetensors, garbage_gguf, missing_tokenizer, remote_code],
                         ids=lambda f: f.__name__)
def test_broken_model_fails_before_training_naming_it(store, tmp_path, make):
    source, named = make(tmp_path)
    run_id, run_dir, proc = start(store, fault_spec(**{"model.source": str(source)}))
    assert proc.wait(timeout=300) == 1
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    message = first_line(run["error_message"])
    for words in named:
        assert words in message, message
    assert "Traceback" not in message  # the traceback is the details, not the message
    assert not store.metrics_since(run_id), "training started"
    assert not store.traces_since(run_id)
    assert not (run_dir / "checkpoints").exists()
    assert {s["stage"]: s["status"] for s in store.stages(run_id)} == {"grpo": "failed"}
