"""Is the policy moving? A GRPO run can train for an hour and leave the model exactly where it started
(a learning rate too small for LoRA, rewards without spread): nothing else says so until the evaluation.

`PolicyProbe` measures two things, both cheap next to a GRPO step:
- every step, `policy/update_norm` = ||theta - theta_0|| / ||theta_0|| over the trainable weights (the
  LoRA matrices), theta_0 the weights when training began (the SFT adapter, or a fresh LoRA);
- every `probe_steps` steps, greedy completions of a few fixed training prompts, compared with the ones
  generated when training began: `policy/probe_changed` = the share that differ.

The health monitor turns `policy/probe_changed == 0` into the not-learning alert. Greedy output is what
the evaluation and the user see, so "unchanged" there is the symptom itself, not a proxy of it.
"""

from __future__ import annotations

import logging
import math

from transformers import TrainerCallback

log = logging.getLogger(__name__)


class PolicyProbe(TrainerCallback):
    def __init__(self, tokenizer, prompts: list[str], probe_steps: int, max_new_tokens: int):
        self.tokenizer, self.prompts = tokenizer, list(prompts)
        self.probe_steps, self.max_new_tokens = probe_steps, max_new_tokens
        self._start: dict = {}
        self._start_norm = 0.0
        self._baseline: list[list[int]] | None = None
        self._pending: dict[int, dict[str, float]] = {}

    def _greedy(self, model) -> list[list[int]]:
        """(B, new) token ids of greedy completions of the probe prompts, cut at the first EOS."""
        import torch

        tok = self.tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        was_training = model.training
        model.eval()
        try:
            enc = tok(self.prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                ids = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, top_p=None,
                                     top_k=None, temperature=None, pad_token_id=tok.pad_token_id)
        finally:
            tok.padding_side = side
            model.train(was_training)
        eos = {tok.eos_token_id, tok.pad_token_id} - {None}
        out = []
        for row in ids[:, enc["input_ids"].shape[1]:].tolist():
            cut = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))
            out.append(row[:cut])
        return out

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        import torch

        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self._start = {n: p.detach().clone() for n, p in params.items()}  # LoRA only: a few MB
        self._start_norm = math.sqrt(sum(float(torch.sum(p.float() ** 2)) for p in self._start.values()))
        if self.probe_steps and self.prompts:
            self._baseline = self._greedy(model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        import torch

        if not self._start:
            return
        delta = 0.0
        for name, p in model.named_parameters():
            if name in self._start:
                delta += float(torch.sum((p.detach().float() - self._start[name].float()) ** 2))
        out = {"policy/update_norm": math.sqrt(delta) / max(self._start_norm, 1e-12)}
        step = state.global_step
        if self._baseline is not None and step % self.probe_steps == 0:
            now = self._greedy(model)
            out["policy/probe_changed"] = sum(a != b for a, b in zip(now, self._baseline, strict=True)) / len(now)
        self._pending[step] = out

    def metrics(self, step: int) -> dict[str, float]:
        """What was measured at `step` (the store reporter asks in on_log, which follows on_step_end)."""
        return self._pending.pop(step, {})
