"""GGUF export on the tiny model: the files, llama.cpp (xllamacpp, in a fresh process without Ponder) running
them, transformers' GGUF reader, the Modelfile's checkable parts, and failures that leave nothing behind.
The run is made by hand: a random LoRA adapter on every Llama projection, so Q/K permutation matters."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.export import ExportError, export_run
from engine.gguf_export import GGUFError, check_supported, stop_tokens
from tests.conftest import ROOT
from tests.engine.test_export import _leftovers, _make_run

CLIENT = ROOT / "tests" / "e2e" / "gguf_client.py"
PROMPTS = ["What is 17 + 25?", "Compute 3 * 14.", "What is 100 - 58?"]


def gguf_client(request: dict, tmp_path: Path) -> dict:
    """Run the llama.cpp client in a fresh process that cannot import Ponder (no PYTHONPATH, cwd elsewhere)."""
    out = tmp_path / f"client-{len(list(tmp_path.glob('client-*')))}.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(CLIENT)], input=json.dumps({**request, "out": str(out)}),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    answer = json.loads(out.read_text())
    assert answer["ponder_modules"] == []
    return answer


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A LoRA adapter with random (non-zero) A and B on q, k, v, o and the MLP, saved like a trained one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.models import resolve_source

    base = resolve_source("builtin:tiny-random")
    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"], task_type="CAUSAL_LM", init_lora_weights=False))
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def _hf_greedy(model, tokenizer, prompts: list[str], n: int) -> list[tuple[str, list[int]]]:
    """Ponder's own evaluation code (engine.evaluate.generate) on the given model: (text, token ids)."""
    from engine.evaluate import EvalSettings, generate

    settings = EvalSettings(max_completion_length=n, batch_size=1, temperature=0.0, num_samples=1)
    return [group[0] for group in generate(model, tokenizer, prompts, settings)]


def assert_same_greedy(got: list[str], want: list[tuple[str, list[int]]], prompts: list[str], model, tokenizer,
                       gap: float = 0.05, max_splits: int | None = None) -> None:
    """llama.cpp's completions equal Ponder's, token for token, except after a step where Ponder's own fp32
    logits hold a near tie: an f16 file (llama.cpp also rounds activations to f16 in its matmuls) may then
    pick the other token. Each such split must be a real tie (top-2 logits within `gap`), and at most one
    prompt in two (or `max_splits`) may have one; the random tiny model's flat logits make ties likely."""
    import torch

    splits = []
    for text, (want_text, want_ids), prompt in zip(got, want, prompts, strict=True):
        if text == want_text:
            continue
        k = max(k for k in range(len(want_ids) + 1)
                if text.startswith(tokenizer.decode(want_ids[:k], skip_special_tokens=True)))
        assert k < len(want_ids), (text, want_text)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] + want_ids[:k]
        with torch.inference_mode():
            top2 = model(torch.tensor([ids])).logits[0, -1].topk(2).values.tolist()
        assert top2[0] - top2[1] < gap, f"not a tie at token {k}: {top2}; llama.cpp {text!r} vs {want_text!r}"
        splits.append(k)
    assert len(splits) <= (len(got) // 2 if max_splits is None else max_splits), splits


def test_gguf_f16_q8_and_lora_run_in_llama_cpp_like_the_merged_model(store, adapter, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.prompts import render_prompt

    run_id = _make_run(store, adapter)
    seen = []
    where = tmp_path / "exports"
    f16 = export_run(store, run_id, where / "f16", gguf="f16",
                     progress=lambda i, n, text: seen.append((i, n, text)))
    q8 = export_run(store, run_id, where / "q8", gguf="q8_0")
    lora = export_run(store, run_id, where / "lora", gguf_adapter=True)
    assert [i for i, _, _ in seen] == [1, 2, 3, 4, 5]
    assert seen[1][2] == "merging the adapter into the base model" and seen[2][2] == "writing f16-f16.gguf"
    assert _leftovers(f16) == ["Modelfile", "README.md", "f16-f16.gguf", "spec.toml"]
    assert _leftovers(lora) == ["Modelfile", "README.md", "lora-base-f16.gguf", "lora-lora.gguf", "spec.toml"]
    assert _leftovers(where) == ["f16", "lora", "q8"]  # no temporary folders left beside them
    assert (q8 / "q8-q8_0.gguf").stat().st_size < 0.7 * (f16 / "f16-f16.gguf").stat().st_size
    (art,) = [a for a in store.artifacts(run_id, "export") if a["path"] == str(f16)]
    assert art["meta"]["gguf"] == "f16"

    base_dir = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter).merge_and_unload()
    prompts = [render_prompt(q, tokenizer, "think") for q in PROMPTS]
    want = _hf_greedy(merged, tokenizer, prompts, 24)

    got = gguf_client({"model": str(f16 / "f16-f16.gguf"), "prompts": prompts, "max_new_tokens": 24}, tmp_path)
    assert_same_greedy(got["completions"], want, prompts, merged, tokenizer)
    paired = gguf_client({"model": str(lora / "lora-base-f16.gguf"), "lora": str(lora / "lora-lora.gguf"),
                          "prompts": prompts, "max_new_tokens": 24}, tmp_path)
    assert_same_greedy(paired["completions"], want, prompts, merged, tokenizer)  # GGUF LoRA on the base GGUF
    bare = gguf_client({"model": str(lora / "lora-base-f16.gguf"), "prompts": prompts, "max_new_tokens": 24},
                       tmp_path)
    assert bare["completions"] != got["completions"]  # the adapter matters
    quantised = gguf_client({"model": str(q8 / "q8-q8_0.gguf"), "prompts": prompts, "max_new_tokens": 8},
                            tmp_path)
    # q8_0 rounds every weight to 8 bits (~0.4%): only wider ties may split the random model's babble
    assert_same_greedy(quantised["completions"], _hf_greedy(merged, tokenizer, prompts, 8), prompts, merged,
                       tokenizer, gap=0.5, max_splits=len(PROMPTS))

    # transformers' own GGUF reader: the same logits as the merged model, within f16 rounding
    read = AutoModelForCausalLM.from_pretrained(f16, gguf_file="f16-f16.gguf")
    ids = torch.tensor([tokenizer(prompts[0], add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        a, b = read(ids).logits, merged(ids).logits
    assert torch.allclose(a, b, atol=5e-2, rtol=0), (a - b).abs().max()  # measured 0.027 on logits up to ~5
    assert (a - b).abs().max() > 0  # f16 weights: not bit-equal, which shows it is the GGUF that was read


def test_modelfile_template_is_the_chat_template_rendering(store, adapter, tmp_path):
    from transformers import AutoTokenizer

    from engine.prompts import PREFIXES, SYSTEM, render_prompt

    run_id = _make_run(store, adapter)
    out = export_run(store, run_id, tmp_path / "m", gguf_adapter=True)
    text = (out / "Modelfile").read_text()
    lines = text.splitlines()
    froms = [line.split(" ", 1)[1] for line in lines if line.startswith("FROM ")]
    adapters = [line.split(" ", 1)[1] for line in lines if line.startswith("ADAPTER ")]
    assert froms == ["./m-base-f16.gguf"] and adapters == ["./m-lora.gguf"]
    assert all((out / p).is_file() for p in froms + adapters)  # relative to the Modelfile, as Ollama reads them
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    stops = [json.loads(line.split(" ", 2)[2]) for line in lines if line.startswith("PARAMETER stop ")]
    assert stops == stop_tokens(tokenizer) == [tokenizer.eos_token]  # <|im_end|>: pad and EOS are one token
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    system = text.split('SYSTEM """', 1)[1].split('"""', 1)[0]
    assert system == SYSTEM
    # Ollama fills .System from SYSTEM, .Prompt with the message, .Response empty while it generates:
    # what it feeds the model is then exactly Ponder's prompt (role markers, system prompt, <think> opened).
    question = "What is 6 * 7?"
    filled = template.replace("{{ .System }}", system).replace("{{ .Prompt }}", question)
    prompt, _, after = filled.partition("{{ .Response }}")
    assert prompt == render_prompt(question, tokenizer, "think") and prompt.endswith(PREFIXES["think"])
    assert after == tokenizer.eos_token + "\n"  # the template's own end of the assistant turn
    card = (out / "README.md").read_text()
    for want in ("## Run it with llama.cpp / Ollama", "llama-server -m m-base-f16.gguf --lora m-lora.gguf",
                 "ollama create m -f Modelfile", "library_name: gguf", "not run by Ollama"):
        assert want in card, want


def test_unsupported_architecture_names_it_and_the_formats_that_work(tmp_path):
    from transformers import GPT2Config

    config = GPT2Config(architectures=["GPT2LMHeadModel"]).to_dict()
    with pytest.raises(GGUFError, match=r"is GPT2LMHeadModel\. Export it as a LoRA adapter .* or --merged"):
        check_supported(config, tmp_path)
    assert issubclass(GGUFError, ExportError)  # the CLI and GUI show it like any export error


def test_module_cli_gguf_progress_and_a_full_disk_leaves_nothing(store, adapter, tmp_path, monkeypatch):
    import gguf

    run_id = _make_run(store, adapter)
    argv = [sys.executable, "-m", "engine.export", str(run_id), "--out", str(tmp_path / "g"), "--gguf", "q8_0",
            "--store", str(store.path)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == ["progress 1/5 reading the run", "progress 2/5 merging the adapter into the base model",
                         "progress 3/5 writing g-q8_0.gguf"]
    assert lines[-1] == f"exported {tmp_path / 'g'}"
    both = subprocess.run(argv[:-2] + ["--merged", "--store", str(store.path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr and "Traceback" not in both.stderr

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", full)
    (tmp_path / "out").mkdir()
    with pytest.raises(ExportError, match="no space left"):
        export_run(store, run_id, tmp_path / "out" / "x", gguf="f16")
    assert _leftovers(tmp_path / "out") == []
