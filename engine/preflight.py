"""Pre-flight checks: what would fail or learn nothing, found before a run starts.

`ponder check SPEC.toml` and the GUI's New-run page run these. In order:
1. the spec's own validation (every TRL start-up rule: batch/num_generations, loss type, ...);
2. the model's config, read without loading weights (a meta-device model): LoRA targets that
   exist, prompt + completion length within the context;
3. a memory estimate against free GPU memory (or RAM), with settings that would fit;
4. the reward preset scored on the dataset's own reference traces (or, without traces, on a
   few base-model generations): a component that pays 0 on every sample is flagged, an error
   for format and accuracy (the usual cause is a tag or regex mismatch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.spec import RunSpec, SpecInvalid, spec_from_dict

SAMPLE = 16  # examples scored against the rewards


@dataclass(frozen=True)
class Finding:
    level: str  # error | warning | info
    field: str  # dotted spec path, or "" for the run as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.field + ': ' if self.field else ''}{self.message}"


def check(spec: RunSpec | dict[str, Any], *, generate_if_no_traces: bool = True) -> list[Finding]:
    if isinstance(spec, dict):
        try:
            spec = spec_from_dict(spec)
        except SpecInvalid as invalid:
            return [Finding("error", e.field, e.message) for e in invalid.errors]
    out: list[Finding] = []
    from engine.rewards.presets import PRESETS

    for warning in PRESETS[spec.rewards.preset].warnings(spec.rewards.resolved_weights()):
        out.append(Finding("warning", "rewards.weights", warning))
    try:
        info = _model_info(spec)
    except Exception as exc:  # noqa: BLE001 - any failure to read the model is the finding
        return out + [Finding("error", "model.source", f"{type(exc).__name__}: {exc}")]
    data = _data_counts(spec)
    if data:  # the checks below read the data too
        return out + data
    out += _lengths_and_targets(spec, info)
    out += _memory(spec, info)
    out += _rewards_on_references(spec, info, generate_if_no_traces)
    return out


# ---- the model, without its weights ---------------------------------------------------------------

def _model_info(spec: RunSpec) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from engine.models import check_model_folder, load_tokenizer, resolve_source

    folder = resolve_source(spec.model.source)
    check_model_folder(folder, spec.model.trust_remote_code)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=spec.model.trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=spec.model.trust_remote_code)
    modules = {name.rsplit(".", 1)[-1]: m for name, m in model.named_modules()}
    linear = {name: (m.in_features, m.out_features) for name, m in model.named_modules()
              if isinstance(m, torch.nn.Linear)}
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return {"folder": folder, "config": text, "params": sum(p.numel() for p in model.parameters()),
            "module_names": set(modules), "linear": linear, "tokenizer": load_tokenizer(folder)}


def _data_counts(spec: RunSpec) -> list[Finding]:
    from engine.data import DataError
    from engine.stages import check_data

    try:
        check_data(spec)
    except DataError as exc:
        return [Finding("error", "data.source", str(exc))]
    return []


def _lengths_and_targets(spec: RunSpec, info: dict[str, Any]) -> list[Finding]:
    out = []
    lora = spec.model.lora
    if lora.enabled:
        missing = [t for t in lora.target_modules if t not in info["module_names"]]
        if missing:
            linear_names = sorted({n.rsplit(".", 1)[-1] for n in info["linear"]} - {"lm_head"})
            out.append(Finding("error", "model.lora.target_modules",
                               f"the model has no modules named {', '.join(missing)}; its linear layers are "
                               f"{', '.join(linear_names)}."))
    from engine.data import load_examples
    from engine.prompts import render_prompt

    try:
        examples = load_examples(spec.data.source, n=min(spec.data.train_size, SAMPLE), seed=spec.data.seed,
                                 difficulty_mix=spec.data.mix(), columns=spec.data.columns(), min_rows=1)
    except Exception as exc:  # noqa: BLE001
        return out + [Finding("error", "data.source", str(exc))]
    mode = spec.rewards.resolved_prompt_mode()
    longest = max(len(info["tokenizer"](render_prompt(ex["question"], info["tokenizer"], mode),
                                        add_special_tokens=False)["input_ids"]) for ex in examples)
    info["prompt_tokens"] = longest  # measured on the data, so the memory estimate need not guess
    context = getattr(info["config"], "max_position_embeddings", None)
    if context:
        if "grpo" in spec.stages and longest + spec.grpo.max_completion_length > context:
            out.append(Finding("error", "grpo.max_completion_length",
                               f"prompts of up to {longest} tokens plus {spec.grpo.max_completion_length} completion "
                               f"tokens exceed the model's context of {context}; use at most "
                               f"{context - longest}."))
    return out


# ---- memory -----------------------------------------------------------------------------------------

def estimate_memory_gb(spec: RunSpec, info: dict[str, Any], batch: int | None = None,
                       completion: int | None = None) -> float:
    """A rough peak for one GRPO step (weights, optimizer, activations, logits, generation cache), in GiB."""
    from engine.models import choose_placement

    cfg = info["config"]
    bytes_ = 2 if choose_placement(spec.model.device, spec.model.dtype).dtype_name != "float32" else 4
    batch = batch or spec.grpo.batch_size
    completion = completion or spec.grpo.max_completion_length
    seq = info["prompt_tokens"] + completion  # measured by _lengths_and_targets
    hidden, layers = cfg.hidden_size, cfg.num_hidden_layers
    vocab = getattr(cfg, "vocab_size", 32000)
    weights = info["params"] * bytes_
    if spec.model.lora.enabled:
        trainable = sum(spec.model.lora.r * (i + o) * 1 for name, (i, o) in info["linear"].items()
                        if name.rsplit(".", 1)[-1] in spec.model.lora.target_modules)
    else:
        trainable = info["params"]
    optimizer = trainable * 16  # fp32 weights' grads + two Adam moments + master copy
    per_layer = 2 if spec.grpo.gradient_checkpointing else 18  # activations kept per token per hidden unit
    activations = batch * seq * hidden * layers * per_layer * bytes_
    logits = batch * seq * vocab * 4 * 3  # logits, log-softmax and their gradient, in fp32
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    kv = batch * seq * layers * 2 * kv_heads * (hidden // cfg.num_attention_heads) * bytes_
    refs = weights if spec.grpo.beta > 0 and not spec.model.lora.enabled else 0
    return (weights + optimizer + activations + logits + kv + refs) * 1.2 / 2**30  # 20% allocator slack


def available_memory_gb(spec: RunSpec) -> tuple[float, str]:
    import psutil

    from engine.models import choose_placement

    placement = choose_placement(spec.model.device, spec.model.dtype)
    if placement.device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(placement.device))
        return free / 2**30, "free GPU memory"
    return psutil.virtual_memory().available / 2**30, "free RAM"


def _largest(fits, lo: int, hi: int) -> int:
    """The largest x in [lo, hi] with fits(x) (fits is monotone: true up to a point), or lo - 1."""
    if hi < lo or not fits(lo):
        return lo - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def _memory(spec: RunSpec, info: dict[str, Any]) -> list[Finding]:
    """The estimate for the spec's own batch (num_generations completions per prompt) and completion
    length, against the memory there is; when it does not fit, the largest settings that do, solved
    from the same estimate. Over twice the memory there is, it is an error: the run would only fail later."""
    if "grpo" not in spec.stages or "prompt_tokens" not in info:
        return []
    need = estimate_memory_gb(spec, info)
    have, what = available_memory_gb(spec)
    text = f"a GRPO step needs about {need:.1f} GiB; {have:.1f} GiB {what}"
    if need <= have:
        return [Finding("info", "grpo.batch_size", text + ".")]
    g = spec.grpo
    options = []
    groups = _largest(lambda k: estimate_memory_gb(spec, info, batch=k * g.num_generations) <= have,
                      1, g.batch_size // g.num_generations - 1)
    if groups >= 1:
        options.append(f"grpo.batch_size = {groups * g.num_generations} (at most {groups} prompt"
                       f"{'s' * (groups != 1)} x {g.num_generations} generations per step)")
    elif (pairs := _largest(lambda n: estimate_memory_gb(spec, info, batch=n) <= have, 2,
                            g.num_generations - 1)) >= 2:
        options.append(f"grpo.num_generations = grpo.batch_size = {pairs} (one prompt per step: even one group of "
                       f"{g.num_generations} does not fit)")
    length = _largest(lambda n: estimate_memory_gb(spec, info, completion=n) <= have, 1,
                      g.max_completion_length - 1)
    if length >= 1:
        options.append(f"grpo.max_completion_length = {length} (the most that fits)")
    if not spec.grpo.gradient_checkpointing:
        options.append("grpo.gradient_checkpointing = true")
    hint = "; would fit: " + " or ".join(options) if options else "; choose a smaller model"
    level = "error" if need > 2 * have else "warning"
    return [Finding(level, "grpo.batch_size", f"{text}: it will {'not' if level == 'error' else 'probably not'} "
                                               f"fit{hint}.")]


# ---- rewards on reference traces ------------------------------------------------------------------------

def _rewards_on_references(spec: RunSpec, info: dict[str, Any], generate: bool) -> list[Finding]:
    from engine.data import load_examples
    from engine.prompts import PREFIXES, prompt_rows
    from engine.rewards import MODEL_COMPONENTS, build_rewards

    if "grpo" not in spec.stages:
        return []
    tok = info["tokenizer"]
    examples = load_examples(spec.data.source, n=min(spec.data.train_size, SAMPLE), seed=spec.data.seed,
                             difficulty_mix=spec.data.mix(), columns=spec.data.columns())
    mode = spec.rewards.resolved_prompt_mode()
    cols = prompt_rows(examples, tok, mode, spec.rewards.budget)
    traces = [ex.get("sketch") or ex.get("reasoning") or "" for ex in examples]
    source = "reference traces"
    if all(traces):
        completions = [f"{t}\n</think>\n<answer>{ex['answer']}</answer>" for t, ex in zip(traces, examples,
                                                                                          strict=True)]
        if not PREFIXES.get(mode):
            completions = [f"<think>\n{c}" for c in completions]
    elif generate:
        from engine.evaluate import EvalSettings
        from engine.evaluate import generate as gen
        from engine.models import load_model

        model, tok, _ = load_model(spec.model)
        settings = EvalSettings(max_completion_length=spec.grpo.max_completion_length, batch_size=8)
        completions = [g[0][0] for g in gen(model, tok, cols["prompt"][:4], settings)]
        cols = {k: v[:4] for k, v in cols.items()}
        source = "base-model generations"
    else:
        return [Finding("info", "rewards.preset", "the data has no reference traces; rewards not pre-scored.")]
    try:  # model components need trained models; they are checked when they load
        weights = {k: 0.0 if k in MODEL_COMPONENTS else w for k, w in spec.rewards.resolved_weights().items()}
        funcs, _ = build_rewards(spec.rewards.preset, weights=weights, params=spec.rewards.params,
                                 custom_file=spec.rewards.custom_file or None,
                                 max_completion_length=spec.grpo.max_completion_length,
                                 custom_timeout_s=spec.rewards.custom_timeout_s)
    except ValueError as exc:
        return [Finding("error", f"rewards.{getattr(exc, 'field', 'preset')}", str(exc))]
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in completions]
    kwargs = {k: v for k, v in cols.items() if k != "prompt"}
    out = []
    for name, func in funcs.items():
        try:
            values = func(prompts=cols["prompt"], completions=completions, completion_ids=ids, trainer_state=None,
                          log_metric=lambda *a, **k: None, log_extra=lambda *a, **k: None, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a reward that fails here fails at the first step
            out.append(Finding("error", f"rewards.weights.{name}", f"{name} fails on {source}: "
                                                                 f"{type(exc).__name__}: {exc}"))
            continue
        scored = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if scored and all(v == 0 for v in scored):
            level = "error" if name in ("format", "accuracy") and source == "reference traces" else "warning"
            out.append(Finding(level, f"rewards.weights.{name}",
                               f"{name} pays 0 on every one of {len(scored)} {source}; the usual cause is a tag or "
                               "regex mismatch between the reward and the output format "
                               "(<think>...</think><answer>...</answer>)."))
        elif scored:
            out.append(Finding("info", f"rewards.weights.{name}",
                               f"{name}: mean {sum(scored) / len(scored):.3g} on {len(scored)} {source}."))
    return out
