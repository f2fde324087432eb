"""GGUF export for llama.cpp-based runtimes (llama.cpp, Ollama, LM Studio, Jan), written with the `gguf` package.

    ponder export RUN_ID --out DIR --gguf [f16|q8_0]   DIR/NAME-f16.gguf: the adapter merged into the base
    ponder export RUN_ID --out DIR --gguf-adapter      DIR/NAME-lora.gguf (a GGUF LoRA) + DIR/NAME-base-f16.gguf

Both also write DIR/Modelfile for Ollama. What a GGUF file holds, the way llama.cpp's own
convert_hf_to_gguf.py / convert_lora_to_gguf.py write it (no converter script is vendored):
- hyper-parameters under `llama.*`; tensors renamed by `gguf.get_tensor_name_map` (`blk.0.attn_q.weight`);
  the Q and K projections permuted into the rotary layout llama.cpp uses (`_permute`);
- the tokenizer: every token with its type, the BPE merges and the special ids (`gguf.SpecialVocab`),
  whether a BOS is added, the pre-tokenizer's llama.cpp name, and the chat template;
- f16 (1-d tensors stay f32) or q8_0 through `gguf.quants.quantize`.
A GGUF LoRA is `general.type=adapter`, `adapter.type=lora`, `adapter.lora.alpha`, and per target tensor
`<base tensor>.lora_a` (peft's A, (r, in)) and `.lora_b` (peft's B, (out, r), permuted like its Q/K base).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from engine.export import ExportError

FORMATS = ("f16", "q8_0")
# Hugging Face architectures with the Llama tensor layout; others get an error naming the formats that work.
ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
# llama.cpp's name for a tokenizer.json pre-tokenizer (tokenizer.ggml.pre), keyed by its shape.
_GPT2_REGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
PRE_TOKENIZERS = {
    json.dumps(_GPT2_REGEX, sort_keys=True): "gpt-2",
    json.dumps({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                      _GPT2_REGEX]}, sort_keys=True): "smollm",
}


class GGUFError(ExportError):
    """A model or adapter cannot be written as GGUF; the message says why and what works instead."""


# ---- checks ---------------------------------------------------------------------------------------

def check_supported(config: dict, folder: Path) -> None:
    """Refuse, before any work, a model the writer does not cover."""
    arch = (config.get("architectures") or [config.get("model_type", "unknown")])[0]
    if arch not in ARCHITECTURES:
        raise GGUFError(f"GGUF export covers Llama-family models ({', '.join(ARCHITECTURES)}); the model in "
                        f"{folder} is {arch}. Export it as a LoRA adapter (the default) or --merged instead.")
    rope = config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type") or \
        (config.get("rope_parameters") or {}).get("rope_type", "default")
    if rope_type != "default":
        raise GGUFError(f"GGUF export does not write rope scaling ({rope_type!r} in {folder / 'config.json'}); "
                        "export it as a LoRA adapter (the default) or --merged instead.")


def _pre_tokenizer(tokenizer_json: dict, folder: Path) -> str:
    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback") or \
            (tokenizer_json.get("decoder") or {}).get("type") != "ByteLevel":
        raise GGUFError(f"GGUF export covers byte-level BPE tokenizers (GPT-2 style); {folder / 'tokenizer.json'} "
                        f"is a {model.get('type', 'unknown')} tokenizer. Export it as a LoRA adapter or --merged.")
    shape = json.dumps(tokenizer_json.get("pre_tokenizer"), sort_keys=True)
    if shape not in PRE_TOKENIZERS:
        raise GGUFError(f"the pre-tokenizer in {folder / 'tokenizer.json'} is not one llama.cpp is known to "
                        "reproduce here; export it as a LoRA adapter or --merged.")
    return PRE_TOKENIZERS[shape]


# ---- tensors --------------------------------------------------------------------------------------

def _permute(w, n_head: int, n_head_kv: int | None):
    """llama.cpp's rotary layout for Q/K rows: HF keeps each head's two rotary halves apart, llama.cpp
    interleaves them. (out, ...) -> (heads, 2, out/heads/2, ...) -> swap -> (out, ...)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _heads(config: dict, hf_name: str) -> tuple[int, int] | None:
    n_head, n_kv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    if ".q_proj." in hf_name:
        return n_head, n_head
    if ".k_proj." in hf_name:
        return n_head, n_kv
    return None


def _tensor_map(config: dict):
    import gguf

    return gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])


def _gguf_name(tmap, hf_name: str) -> str:
    name = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if name is None:
        raise GGUFError(f"no GGUF name for the tensor {hf_name}: the model is not plain Llama-layout")
    return name


def _encode(data, qtype: str):
    """(array, raw dtype or None): 1-d tensors (norms) stay f32; 2-d ones f16 or q8_0."""
    import gguf
    import numpy as np

    if data.ndim < 2:
        return data.astype(np.float32), None
    if qtype == "q8_0" and data.shape[-1] % 32 == 0:  # q8_0 blocks are 32 values along a row
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    return data.astype(np.float16), None


# ---- the model file -------------------------------------------------------------------------------

def _add_hparams(w, config: dict, qtype: str) -> None:
    import gguf

    n_head = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    rope = config.get("rope_parameters") or {}
    w.add_vocab_size(config["vocab_size"])
    w.add_context_length(config.get("max_position_embeddings", 2048))
    w.add_embedding_length(config["hidden_size"])
    w.add_block_count(config["num_hidden_layers"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(config.get("num_key_value_heads") or n_head)
    w.add_rope_freq_base(float(config.get("rope_theta") or rope.get("rope_theta") or 10000.0))
    w.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    w.add_rope_dimension_count(head_dim)
    if head_dim != config["hidden_size"] // n_head:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == "q8_0" else gguf.LlamaFileType.MOSTLY_F16)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_tokenizer(w, tokenizer_dir: Path, n_vocab: int) -> None:
    """Tokens and types as llama.cpp's converter lists them, merges and special ids, BOS, chat template."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer_json = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    pre = _pre_tokenizer(tokenizer_json, tokenizer_dir)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    reverse = {i: t for t, i in tok.get_vocab().items()}
    added = tok.added_tokens_decoder  # id -> AddedToken
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in reverse:  # the embedding has more rows than the tokenizer has tokens
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:  # special tokens are CONTROL: llama.cpp parses them in text only as whole tokens
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    special = gguf.SpecialVocab(tokenizer_dir, load_merges=True, n_vocab=n_vocab)
    probe = tok("a")["input_ids"]  # what the HF tokenizer adds around text, as llama.cpp must
    special.add_special_token["bos"] = tok.bos_token_id is not None and probe[0] == tok.bos_token_id
    special.add_special_token["eos"] = tok.eos_token_id is not None and probe[-1] == tok.eos_token_id
    if special.chat_template is None and getattr(tok, "chat_template", None):
        special.chat_template = tok.chat_template
    special.add_to_gguf(w, quiet=True)


def write_model(state: dict[str, Any], config: dict, tokenizer_dir: Path, path: Path, qtype: str,
                name: str) -> None:
    """One GGUF model file from a Llama state dict (HF names, torch tensors)."""
    import gguf

    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    _add_hparams(w, config, qtype)
    _add_tokenizer(w, tokenizer_dir, config["vocab_size"])
    tmap = _tensor_map(config)
    for hf_name, tensor in state.items():
        if hf_name.endswith("rotary_emb.inv_freq") or \
                (hf_name == "lm_head.weight" and config.get("tie_word_embeddings")):
            continue  # recomputed / shared with token_embd
        data = tensor.detach().float().cpu().numpy()
        if heads := _heads(config, hf_name):
            data = _permute(data, *heads)
        array, raw = _encode(data, qtype)
        w.add_tensor(_gguf_name(tmap, hf_name), array, raw_dtype=raw)
    _write(w)


def _write(w) -> None:
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file(progress=False)
    finally:
        w.close()


# ---- the LoRA file --------------------------------------------------------------------------------

def check_adapter(adapter_config: dict, folder: Path) -> None:
    """Refuse what a GGUF LoRA cannot hold: one alpha/r for all tensors, plain LoRA on linear layers."""
    problems = [what for what, bad in (
        ("DoRA (use_dora)", adapter_config.get("use_dora")),
        ("per-module ranks (rank_pattern)", adapter_config.get("rank_pattern")),
        ("per-module alphas (alpha_pattern)", adapter_config.get("alpha_pattern")),
        ("fully trained modules (modules_to_save)", adapter_config.get("modules_to_save")),
        (f"trained biases (bias = {adapter_config.get('bias')!r})", adapter_config.get("bias", "none") != "none"),
    ) if bad]
    if problems:
        raise GGUFError(f"the adapter in {folder} uses {', '.join(problems)}, which a GGUF LoRA cannot hold; "
                        "export --gguf (merged) instead.")


def write_lora(adapter_dir: Path, config: dict, path: Path, name: str) -> None:
    """The peft adapter as a GGUF LoRA: llama.cpp adds (alpha / r) * B (A x) to each target's output."""
    import gguf
    from safetensors.torch import load_file

    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    check_adapter(adapter_config, adapter_dir)
    r, alpha = adapter_config["r"], float(adapter_config["lora_alpha"])
    if adapter_config.get("use_rslora"):
        alpha *= math.sqrt(r)  # rsLoRA scales by alpha / sqrt(r); llama.cpp divides by r
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_name(name)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    tmap = _tensor_map(config)
    for key in sorted(k for k in weights if ".lora_A." in k):
        base = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        if ".embed_tokens." in base:
            raise GGUFError(f"the adapter in {adapter_dir} trains the embedding ({key}); export --gguf instead.")
        a = weights[key].float().numpy()  # (r, in): GGUF dims [in, r], as llama.cpp checks against the base
        b = weights[key.replace(".lora_A.", ".lora_B.")].float().numpy()  # (out, r)
        if heads := _heads(config, base):
            b = _permute(b, *heads)  # the base's rows are permuted, so are the rows B writes into
        target = _gguf_name(tmap, base)
        w.add_tensor(f"{target}.lora_a", a)  # f32: small, and no extra rounding on top of the base's
        w.add_tensor(f"{target}.lora_b", b)
    _write(w)


# ---- the Ollama Modelfile -------------------------------------------------------------------------

_SYS, _USER, _REPLY = "\x01PONDER-SYSTEM\x01", "\x01PONDER-USER\x01", "\x01PONDER-REPLY\x01"


def ollama_template(tokenizer, prefix: str) -> str:
    """The chat template's rendering of one system + user turn as an Ollama (Go) template, the answer
    turn opened by `prefix` the way Ponder prompts; closed by the template's own end of turn."""
    turn = [{"role": "system", "content": _SYS}, {"role": "user", "content": _USER}]
    opened = tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
    whole = tokenizer.apply_chat_template(turn + [{"role": "assistant", "content": _REPLY}], tokenize=False)
    end = whole.split(_REPLY, 1)[1] if _REPLY in whole else ""
    return (opened.replace(_SYS, "{{ .System }}").replace(_USER, "{{ .Prompt }}") + prefix + "{{ .Response }}"
            + end)


def stop_tokens(tokenizer) -> list[str]:
    """The end-of-turn tokens Ponder's own generation stops at (EOS and the pad token it pads with)."""
    ids = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    return list(dict.fromkeys(tokenizer.convert_ids_to_tokens(i) for i in ids if i is not None))


def modelfile(model_file: str, adapter_file: str | None, tokenizer, system: str, prefix: str,
              temperature: float) -> str:
    for text in (system, tokenizer.chat_template or ""):
        if '"""' in text:
            raise GGUFError('the system prompt or chat template holds """, which a Modelfile cannot quote')
    lines = ["# Ollama Modelfile written by Ponder: ollama create NAME -f Modelfile", f"FROM ./{model_file}"]
    if adapter_file:
        lines.append(f"ADAPTER ./{adapter_file}")
    lines += [f'TEMPLATE """{ollama_template(tokenizer, prefix)}"""', f'SYSTEM """{system}"""',
              *[f"PARAMETER stop {json.dumps(s)}" for s in stop_tokens(tokenizer)],
              f"PARAMETER temperature {temperature:g}", ""]
    return "\n".join(lines)


# ---- the export folder ----------------------------------------------------------------------------

def file_names(name: str, fmt: str, adapter: bool) -> tuple[str, str | None]:
    """(the model GGUF, the LoRA GGUF or None) inside the export folder NAME."""
    if adapter:
        return f"{name}-base-{fmt}.gguf", f"{name}-lora.gguf"
    return f"{name}-{fmt}.gguf", None


def _tokenizer_dir(picked, base_folder: Path) -> Path:
    return picked.path if (picked.path / "tokenizer.json").is_file() else base_folder


def write_export(picked, spec, base_folder: Path, dst: Path, fmt: str, adapter: bool, name: str, say) -> None:
    """NAME-FMT.gguf (merged), or NAME-base-FMT.gguf + NAME-lora.gguf, and the Modelfile, into `dst`.
    `say(step, text)` reports steps 2 and 3 of the export."""
    from engine.models import load_tokenizer

    config = json.loads((base_folder / "config.json").read_text(encoding="utf-8"))
    check_supported(config, base_folder)
    if adapter and picked.full_model:
        raise GGUFError(f"run {picked.path} was trained without LoRA, so there is no adapter to export; "
                        "export --gguf instead.")
    if adapter:
        check_adapter(json.loads((picked.path / "adapter_config.json").read_text(encoding="utf-8")), picked.path)
    tokenizer_dir = _tokenizer_dir(picked, base_folder)
    _pre_tokenizer(json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8")), tokenizer_dir)
    model_file, lora_file = file_names(name, fmt, adapter)
    say(2, "loading the base model" if adapter else "merging the adapter into the base model")
    model = _trained_model(picked, spec, base_folder, merge=not adapter)
    say(3, f"writing {model_file}" + (f" and {lora_file}" if lora_file else ""))
    write_model(model.state_dict(), config, tokenizer_dir, dst / model_file, fmt, name)
    del model
    if lora_file:
        write_lora(picked.path, config, dst / lora_file, name)
    tokenizer = load_tokenizer(tokenizer_dir)
    system, prefix = _system_and_prefix(spec)
    (dst / "Modelfile").write_text(modelfile(model_file, lora_file, tokenizer, system, prefix,
                                             spec.eval.temperature), encoding="utf-8")


def _trained_model(picked, spec, base_folder: Path, merge: bool):
    """fp32 on the CPU: base + adapter merged (`merge_and_unload`: W + (alpha / r) B A), a full fine-tune as
    it was saved, or (merge=False) the base alone."""
    import dataclasses

    from engine.models import Placement, load_model

    source = picked.path if picked.full_model else base_folder  # the base the adapter was trained on
    adapter = picked.path if merge and not picked.full_model else None
    model, _, _ = load_model(dataclasses.replace(spec.model, source=str(source)),
                             placement=Placement("cpu", "float32"), adapter=adapter)
    return model.merge_and_unload() if adapter else model


def _system_and_prefix(spec) -> tuple[str, str]:
    from engine.prompts import PREFIXES, system_prompt

    mode = spec.rewards.resolved_prompt_mode()
    return system_prompt(mode, spec.rewards.budget or 256), PREFIXES.get(mode, "")


def card_section(picked, spec, base_folder: Path, fmt: str, adapter: bool, name: str) -> list[str]:
    """The model card's "Run it with llama.cpp / Ollama": exact commands for the files in this export."""
    import shlex

    from engine.models import load_tokenizer
    from engine.prompts import render_prompt

    model_file, lora_file = file_names(name, fmt, adapter)
    tokenizer = load_tokenizer(_tokenizer_dir(picked, base_folder))
    mode = spec.rewards.resolved_prompt_mode()
    system, prefix = _system_and_prefix(spec)
    prompt = render_prompt("What is 17 + 25?", tokenizer, mode, spec.rewards.budget or 256)
    request = json.dumps({"prompt": prompt, "n_predict": spec.eval.max_completion_length, "temperature": 0})
    lora = f" --lora {lora_file}" if lora_file else ""
    return [
        "## Run it with llama.cpp / Ollama", "",
        f"`{model_file}` is " + (f"the base model ({fmt}) and `{lora_file}` the LoRA adapter (GGUF LoRA, f32): "
                                 "llama.cpp and Ollama apply it on top of the base at load time."
                                 if adapter else f"the stand-alone model ({fmt}), the LoRA merged in.")
        + " The tokenizer and the chat template are inside the GGUF file.", "",
        "llama.cpp (`llama-server` from a llama.cpp release), from this folder:", "", "```sh",
        f"llama-server -m {model_file}{lora} --port 8080",
        f"curl -s http://localhost:8080/completion -d {shlex.quote(request)}", "```", "",
        "The prompt is the chat template's rendering of Ponder's system prompt and the question, with the "
        f"answer turn opened by `{prefix!r}`: exactly what Ponder's evaluation feeds the model. The chat "
        "endpoint (`/v1/chat/completions`) applies the template stored in the GGUF but leaves the think block "
        "unopened, so prefer `/completion` with this prompt.", "",
        "Ollama, from this folder (the `Modelfile` holds the same prompt as a template, the system prompt and "
        "the stop tokens):", "", "```sh", f"ollama create {name} -f Modelfile", f'ollama run {name} "What is 17 + 25?"',
        "```", "", "## Files", "",
        f"- {model_file}" + (f", {lora_file}" if lora_file else "") + ": the model, its tokenizer and chat template",
        "- Modelfile: for Ollama (checked piece by piece by Ponder's tests, not run by Ollama)",
        "- spec.toml: the Ponder run spec; `ponder run spec.toml` trains it again", ""]
