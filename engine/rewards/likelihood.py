"""The `reference_likelihood` reward: how likely the policy finds the reference answer after its own reasoning.

For answers no rule can verify (free text, proofs), VeriFree (Zhou et al. 2025, "Reinforcing
General Reasoning without Verifiers") and DRO use the policy's own probability of the
reference answer y* given the prompt x and the sampled reasoning z as the reward:

    r = exp( mean_t log pi(y*_t | x, z, y*_<t) )      (the per-token geometric mean, in [0, 1])

The reasoning z is the completion's think block; the answer is scored inside the output
format (`</think>\n<answer>` y* `</answer>`). The policy is the model being trained, so the
GRPO stage sets `model` after building the trainer. Runs under no_grad; costs one forward
pass per completion batch.
"""

from __future__ import annotations

import math
from typing import Any

from engine.rewards.components import column
from engine.rewards.parsing import completion_text, parse_response


class ReferenceLikelihood:
    __name__ = "reference_likelihood"

    def __init__(self, tokenizer: Any, model: Any = None, batch_size: int = 8):
        self.tokenizer, self.model, self.batch_size = tokenizer, model, batch_size

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        import torch

        if self.model is None:
            raise RuntimeError("reference_likelihood needs the policy model; the GRPO stage sets it")
        n = len(completions)
        answers = column(kwargs, "answer", n)
        prefixes = column(kwargs, "prefix", n, "")
        out: list[float | None] = []
        for start in range(0, n, self.batch_size):
            contexts, targets = [], []
            for i in range(start, min(n, start + self.batch_size)):
                parsed = parse_response(completion_text(completions[i]), prefixes[i] or "")
                prompt = prompts[i] if isinstance(prompts[i], str) else str(prompts[i])
                body = (prompt[: -len(prefixes[i])] if prefixes[i] and prompt.endswith(prefixes[i]) else prompt)
                contexts.append(f"{body}<think>\n{(parsed.think or '').strip()}\n</think>\n<answer>")
                targets.append(f"{answers[i]}</answer>" if answers[i] not in (None, "") else "")
            out.extend(self._score(contexts, targets, torch))
        return out

    def _score(self, contexts: list[str], targets: list[str], torch) -> list[float | None]:
        from trl.trainer.utils import selective_log_softmax

        tok = self.tokenizer
        ctx_ids = [tok(c, add_special_tokens=False)["input_ids"] for c in contexts]
        tgt_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in targets]
        # right padding: every row's positions start at 0, as in an unpadded forward pass
        enc = tok.pad({"input_ids": [c + t for c, t in zip(ctx_ids, tgt_ids, strict=True)]}, padding=True,
                      padding_side="right", return_tensors="pt")
        device = next(self.model.parameters()).device
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        with torch.no_grad():
            logits = self.model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
            # position t predicts token t+1; one log-probability per position, not a (B, T, V) log-softmax
            logps = selective_log_softmax(logits[:, :-1], ids[:, 1:]).float()  # (B, T-1)
        out: list[float | None] = []
        for row, (c, t) in enumerate(zip(ctx_ids, tgt_ids, strict=True)):
            if not t:
                out.append(None)
                continue
            out.append(math.exp(float(logps[row, len(c) - 1: len(c) + len(t) - 1].mean())))
        return out
