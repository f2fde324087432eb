"""The real client check: train the smoke spec and evaluate it (greedy), export it, then load the export in
a fresh Python process with plain transformers + peft (no Ponder) and get exactly Ponder's completions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.export import export_run
from engine.spec import load_spec, save_spec
from tests.conftest import ROOT, SPECS

pytestmark = pytest.mark.slow
CLIENT = Path(__file__).with_name("plain_client.py")


def _plain_client(request: dict, cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, str(CLIENT)], input=json.dumps(request), cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)


def test_export_gives_a_plain_client_the_same_greedy_completions(store, tmp_path):
    spec = load_spec(SPECS / "smoke.toml").replace(**{
        "stages": ["grpo", "eval"],
        "grpo.max_steps": 1,  # one step is enough to move the adapter away from the base
        "grpo.learning_rate": 1e-2,  # large, so that step changes what the model says
        "eval.max_completion_length": 32,  # short: the tiny model babbles until the limit
    })
    assert spec.eval.temperature == 0.0  # greedy: the client must reproduce every token
    spec_file = save_spec(spec, tmp_path / "spec.toml")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "desktop.entry", "run", str(spec_file)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    (run,) = store.list_runs()
    (evaluation,) = store.list_evaluations(run["id"])
    rows = store.generations(evaluation["id"])
    trained = [r for r in rows if r["source"] == "trained"]
    base = [r for r in rows if r["source"] == "base"]
    assert len(trained) == len(base) == spec.data.eval_size
    assert [r["completion"] for r in trained] != [r["completion"] for r in base]  # the adapter matters

    adapter_dir = export_run(store, run["id"], tmp_path / "export" / "adapter")
    merged_dir = export_run(store, run["id"], tmp_path / "export" / "merged", merged=True)
    card = (adapter_dir / "README.md").read_text()
    assert f"| accuracy | {evaluation['summary']['base']['accuracy']:.1%}" in card

    # the prompts Ponder's evaluation used, rendered from the questions with the exported tokenizer
    from transformers import AutoTokenizer

    from engine.prompts import render_prompt

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    mode = spec.rewards.resolved_prompt_mode()
    request = {"prompts": [render_prompt(r["prompt"], tokenizer, mode) for r in trained],
               "max_new_tokens": spec.eval.max_completion_length, "batch_size": spec.eval.batch_size}
    base_path = json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    want = [r["completion"] for r in trained]

    got = _plain_client({**request, "base": base_path, "adapter": str(adapter_dir)}, tmp_path)
    assert got["ponder_modules"] == []
    assert got["completions"] == want

    got = _plain_client({**request, "model": str(merged_dir)}, tmp_path)
    assert got["ponder_modules"] == []
    assert got["completions"] == want
