"""A plain llama.cpp client of an exported GGUF: xllamacpp (llama.cpp's own server code), no Ponder, no torch.

Run as `python gguf_client.py` with a JSON request on stdin:
    "model": FILE.gguf, optional "lora": ADAPTER.gguf (applied at scale 1),
    "prompts": [...] raw prompts (already rendered with the chat template), "max_new_tokens": N,
    "chats": [[messages...], ...] for the chat-completion API (the GGUF's own chat template),
    "tokenize": [...] strings to tokenize with llama.cpp's tokenizer (special tokens parsed, nothing added)
    "out": where to write the answer, a JSON file
Writes {"completions", "chat_completions", "tokens", "ponder_modules"}: greedy (top-k 1, temperature 0)
completions up to the first end-of-generation token, which llama.cpp leaves out of the text as Ponder's
evaluation does (it decodes with skip_special_tokens).
"""

import json
import sys
import urllib.request

import xllamacpp as xlc


def main() -> None:
    request = json.load(sys.stdin)
    params = xlc.CommonParams()
    params.model.path = request["model"]
    params.n_ctx = 1024
    params.n_parallel = 1  # one slot: prompts run one after another, no batching effects
    params.cpuparams.n_threads = 1
    params.verbosity = -1
    if request.get("lora"):
        params.lora_adapters = [xlc.CommonAdapterLoraInfo(request["lora"], 1.0)]
    server = xlc.Server(params)
    greedy = {"n_predict": request.get("max_new_tokens", 32), "temperature": 0, "top_k": 1,
              "cache_prompt": False}
    completions = [server.handle_completions({"prompt": p, **greedy})["choices"][0]["text"]
                   for p in request.get("prompts", [])]
    chats = [server.handle_chat_completions({"messages": m, "max_tokens": greedy["n_predict"], **greedy})
             ["choices"][0]["message"]["content"] for m in request.get("chats", [])]
    tokens = []
    for text in request.get("tokenize", []):  # the server's /tokenize endpoint (it listens on localhost)
        body = json.dumps({"content": text, "add_special": False, "parse_special": True}).encode()
        req = urllib.request.Request(server.listening_address + "/tokenize", body,
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            tokens.append(json.load(resp)["tokens"])
    del server
    ponder = sorted(m for m in sys.modules if m.split(".")[0] in ("engine", "desktop"))
    with open(request["out"], "w", encoding="utf-8") as f:  # not stdout: llama.cpp logs there
        json.dump({"completions": completions, "chat_completions": chats, "tokens": tokens,
                   "ponder_modules": ponder}, f)


if __name__ == "__main__":
    main()
