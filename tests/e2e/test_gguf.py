"""GGUF export checked by a real llama.cpp runtime (xllamacpp, in a fresh process that imports no Ponder code).

1. A trained run (the smoke spec, one GRPO step, greedy evaluation) exported as f16, q8_0 and GGUF LoRA:
   llama.cpp's greedy completions equal Ponder's evaluation of the run.
2. The bundled SmolLM2, where the tokenizer matters: llama.cpp tokenizes tricky strings exactly like the
   Hugging Face tokenizer, the chat template inside the GGUF renders Ponder's prompt, and q8_0 gives
   the same final answers as f16.

How the chat API is compared fairly: Ponder prompts end inside the assistant turn, with `<think>\\n`
already opened. The chat API renders the GGUF's template; with a last assistant message `<think>\\n`
llama.cpp's server continues that message (prefill_assistant) instead of opening a new turn, so the
model sees exactly Ponder's prompt, and the reply is the prefix followed by Ponder's completion.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.export import export_run
from engine.spec import load_spec, save_spec
from tests.conftest import ROOT, SPECS
from tests.engine.test_export import _make_run
from tests.engine.test_gguf_export import _hf_greedy, assert_same_greedy, gguf_client

pytestmark = pytest.mark.slow
TRICKY = ["12345 + 678 = 13023", "  two  spaces   and\ttabs\n\nnewlines ", "naïve café — 東京 🙂 ∑x²",
          "<think>\n12 + 5 = 17\n</think>\n<answer>17</answer>", "<|im_start|>user\nHi<|im_end|>\n",
          "3.14159, -42, 1e-5, 0x1F, 1,000,000", "don't won't I'm you'll", "<think></think><answer>",
          "emoji🙂and\u00a0nbsp", "\n\n\n    indented()\n"]


def _answer(text: str) -> str | None:
    found = re.search(r"<answer>(.*?)</answer>", text, re.S)
    return found.group(1).strip() if found else None


def test_gguf_of_a_trained_run_gives_ponders_evaluation(store, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.prompts import PREFIXES, SYSTEM, render_prompt

    spec = load_spec(SPECS / "smoke.toml").replace(**{
        "stages": ["grpo", "eval"],
        "grpo.max_steps": 1,  # one step is enough to move the adapter away from the base
        "grpo.learning_rate": 1e-2,  # large, so that step changes what the model says
        "data.eval_size": 3,  # a few held-out prompts: each is one llama.cpp call per file
        "eval.max_completion_length": 24,  # short: the tiny model babbles until the limit
    })
    assert spec.eval.temperature == 0.0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "desktop.entry", "run", str(save_spec(spec, tmp_path / "s.toml"))],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    (run,) = store.list_runs()
    (evaluation,) = store.list_evaluations(run["id"])
    trained = [r for r in store.generations(evaluation["id"]) if r["source"] == "trained"]
    base = [r for r in store.generations(evaluation["id"]) if r["source"] == "base"]
    want = [r["completion"] for r in trained]
    assert want != [r["completion"] for r in base]  # the adapter matters

    f16 = export_run(store, run["id"], tmp_path / "e" / "f16", gguf="f16")
    q8 = export_run(store, run["id"], tmp_path / "e" / "q8", gguf="q8_0")
    lora = export_run(store, run["id"], tmp_path / "e" / "lora", gguf_adapter=True)
    adapter = store.artifacts(run["id"], "adapter")[-1]["path"]
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    base_dir = json.loads((Path(adapter) / "adapter_config.json").read_text())["base_model_name_or_path"]
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter).merge_and_unload()
    pairs = [(w, tokenizer(w, add_special_tokens=False)["input_ids"]) for w in want]  # for assert_same_greedy
    prompts = [render_prompt(r["prompt"], tokenizer, "think") for r in trained]
    request = {"prompts": prompts, "max_new_tokens": spec.eval.max_completion_length}
    chats = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": r["prompt"]},
              {"role": "assistant", "content": PREFIXES["think"]}] for r in trained]

    got = gguf_client({**request, "model": str(f16 / "f16-f16.gguf"), "chats": chats}, tmp_path)
    assert_same_greedy(got["completions"], pairs, prompts, merged, tokenizer)
    assert got["chat_completions"] == [PREFIXES["think"] + c for c in got["completions"]]  # see the docstring
    paired = gguf_client({**request, "model": str(lora / "lora-base-f16.gguf"),
                          "lora": str(lora / "lora-lora.gguf")}, tmp_path)
    assert_same_greedy(paired["completions"], pairs, prompts, merged, tokenizer)
    quantised = gguf_client({**request, "model": str(q8 / "q8-q8_0.gguf")}, tmp_path)
    # the random tiny model answers nothing, so this compares None with None; the bundled test below does better
    assert [_answer(c) for c in quantised["completions"]] == [_answer(w) for w in want]


@pytest.fixture(scope="module")
def bundled_exports(tmp_path_factory):
    """The bundled model with an untrained LoRA (B = 0: the base's behaviour), exported f16, q8_0, adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.models import resolve_source
    from engine.store import RunStore

    root = tmp_path_factory.mktemp("bundled")
    base = resolve_source("bundled:smollm2-135m-instruct")
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM"))
    adapter = root / "adapter"
    model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base).save_pretrained(adapter)
    with pytest.MonkeyPatch.context() as mp, RunStore(root / "store.db") as store:
        mp.setenv("PONDER_HOME", str(root / "home"))  # module scope: the per-test home is not set yet
        run_id = _make_run(store, adapter)  # the adapter records the bundled folder as its base
        files = {fmt: export_run(store, run_id, root / fmt, **kw) for fmt, kw in
                 (("f16", {"gguf": "f16"}), ("q8", {"gguf": "q8_0"}), ("lora", {"gguf_adapter": True}))}
    return base, files


def test_bundled_tokenizer_chat_template_and_q8_answers_in_llama_cpp(bundled_exports, tmp_path):
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.prompts import SYSTEM, render_prompt

    base, files = bundled_exports
    tokenizer = AutoTokenizer.from_pretrained(base)
    f16 = str(files["f16"] / "f16-f16.gguf")
    reader = gguf.GGUFReader(f16)
    assert reader.fields["tokenizer.chat_template"].contents() == tokenizer.chat_template

    questions = ["What is 17 + 25?", "What is 9 * 8?", "What is 100 - 37?"]
    prompts = [render_prompt(q, tokenizer, "think") for q in questions]
    # Ponder's own evaluation code on the base (the untrained adapter changes nothing)
    model = AutoModelForCausalLM.from_pretrained(base)
    pairs = _hf_greedy(model, tokenizer, prompts, 48)
    want = [text for text, _ in pairs]
    no_system = [{"role": "user", "content": questions[0]}]  # the template's own default system prompt
    plain = tokenizer.apply_chat_template(no_system, tokenize=False, add_generation_prompt=True)
    chats = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": questions[0]},
              {"role": "assistant", "content": "<think>\n"}], no_system]
    got = gguf_client({"model": f16, "prompts": prompts + [plain], "max_new_tokens": 48, "chats": chats,
                       "tokenize": TRICKY}, tmp_path)
    assert got["tokens"] == [tokenizer(t, add_special_tokens=False)["input_ids"] for t in TRICKY]
    assert_same_greedy(got["completions"][:3], pairs, prompts, model, tokenizer, gap=0.02)
    # the chat API renders the GGUF's template: Ponder's prompt (see the module docstring), and without
    # a system message SmolLM2's own default one, which a generic ChatML fallback would not add
    assert got["chat_completions"] == ["<think>\n" + got["completions"][0], got["completions"][3]]
    quantised = gguf_client({"model": str(files["q8"] / "q8-q8_0.gguf"), "prompts": prompts,
                             "max_new_tokens": 48}, tmp_path)
    # q8_0 rounds every weight to 8 bits: measured on the untrained base, it flips one close call in three
    # ("100 - 37": 43 for 63, both written by the base model); a split is allowed only at such a near tie
    assert_same_greedy(quantised["completions"], pairs, prompts, model, tokenizer, gap=0.5, max_splits=1)
    assert any(_answer(w) for w in want)  # the bundled model does answer in the format
    paired = gguf_client({"model": str(files["lora"] / "lora-base-f16.gguf"),
                          "lora": str(files["lora"] / "lora-lora.gguf"), "prompts": prompts,
                          "max_new_tokens": 48}, tmp_path)
    assert_same_greedy(paired["completions"], pairs, prompts, model, tokenizer, gap=0.02)
