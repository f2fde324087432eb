"""Exporting a run's trained model for use outside Ponder: `ponder export RUN_ID --out DIR`.

An export is a folder that plain `transformers` + `peft` load, with no Ponder installed (`--gguf`,
`--gguf-adapter`: GGUF files and an Ollama Modelfile for llama.cpp runtimes instead; see engine.gguf_export):

    adapter_config.json          peft's format; base_model_name_or_path is a base a client can load
    adapter_model.safetensors    (--merged: config.json + model.safetensors, the LoRA merged in)
    tokenizer files              tokenizer.json, tokenizer_config.json, chat_template.jinja, ...
    spec.toml                    the run spec the model was trained with
    README.md                    model card: base model, stages, rewards, evaluation, how to prompt it

`--zip` packs the folder into DIR.zip. Everything is written to a hidden temporary folder next
to the target and moved into place only when complete: a failure (no space, no permission, the
target exists) leaves nothing behind and raises ExportError naming the path.

The GUI's Export page runs `python -m engine.export RUN_ID --out DIR [...] [--store DB]` and
reads stdout: `progress 3/5 writing the tokenizer` lines, then `exported PATH`, or
`error MESSAGE` and exit status 1. SIGTERM cancels it, and it cleans up (exit status 143).

Modules: transaction (what to export, and writing it all or nothing), model_card (the README.md),
cli (`ponder export` and `python -m engine.export`).
"""

from engine.export.cli import add_commands, cmd_export, main
from engine.export.model_card import _evaluation_section, model_card
from engine.export.transaction import (ADAPTER_WEIGHTS, BUNDLED_ORIGINS, MODEL_FILES, TOKENIZER_FILES,
                                       ExportError, Picked, Progress, base_reference, export_run, pick_weights,
                                       write_adapter, write_merged, write_tokenizer)

__all__ = ["ADAPTER_WEIGHTS", "BUNDLED_ORIGINS", "MODEL_FILES", "TOKENIZER_FILES", "ExportError", "Picked",
           "Progress", "_evaluation_section", "add_commands", "base_reference", "cmd_export", "export_run", "main",
           "model_card", "pick_weights", "write_adapter", "write_merged", "write_tokenizer"]
