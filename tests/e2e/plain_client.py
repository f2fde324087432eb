"""A plain client of an exported model: transformers (+ peft for an adapter), no Ponder.

Run as `python plain_client.py` with a JSON request on stdin:
    {"model": DIR} (a merged model) or {"base": BASE, "adapter": DIR},
    "prompts": [...], "max_new_tokens": N, "batch_size": B
Prints {"completions": [...], "ponder_modules": [...]}: greedy completions decoded like any client
would (new tokens up to and with the first EOS, special tokens skipped), and the Ponder modules
that got imported (none, if the export is self-contained).
"""

import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    request = json.load(sys.stdin)
    if "model" in request:
        tokenizer = AutoTokenizer.from_pretrained(request["model"])
        model = AutoModelForCausalLM.from_pretrained(request["model"])
    else:
        from peft import PeftModel

        tokenizer = AutoTokenizer.from_pretrained(request["adapter"])
        base = AutoModelForCausalLM.from_pretrained(request["base"])
        model = PeftModel.from_pretrained(base, request["adapter"])
    model.eval()
    tokenizer.padding_side = "left"  # decoder-only: the new tokens follow the prompt directly
    stop = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    prompts, completions = request["prompts"], []
    for start in range(0, len(prompts), request["batch_size"]):
        enc = tokenizer(prompts[start:start + request["batch_size"]], return_tensors="pt", padding=True,
                        add_special_tokens=False)
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=request["max_new_tokens"], do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        for row in ids[:, enc["input_ids"].shape[1]:].tolist():
            cut = next((j + 1 for j, t in enumerate(row) if t in stop), len(row))
            completions.append(tokenizer.decode(row[:cut], skip_special_tokens=True))
    ponder = sorted(m for m in sys.modules if m.split(".")[0] in ("engine", "desktop"))
    json.dump({"completions": completions, "ponder_modules": ponder}, sys.stdout)


if __name__ == "__main__":
    main()
