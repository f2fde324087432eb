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
        tok = self.tokenizer
        ctx_ids = [tok(c, add_special_tokens=False)["input_ids"] for c in contexts]
        tgt_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in targets]
        width = max(len(c) + len(t) for c, t in zip(ctx_ids, tgt_ids, strict=True))
        pad = tok.pad_token_id or 0
        ids = torch.full((len(contexts), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, (c, t) in enumerate(zip(ctx_ids, tgt_ids, strict=True)):
            seq = c + t
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        device = next(self.model.parameters()).device
        with torch.no_grad():
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logps = torch.log_softmax(logits[:, :-1], dim=-1)  # (B, T-1, V): position t predicts token t+1
        out: list[float | None] = []
        for row, (c, t) in enumerate(zip(ctx_ids, tgt_ids, strict=True)):
            if not t:
                out.append(None)
                continue
            positions = torch.arange(len(c) - 1, len(c) + len(t) - 1, device=logps.device)
            token_logps = logps[row, positions, torch.tensor(t, device=logps.device)]
            out.append(math.exp(float(token_logps.mean())))
        return out
