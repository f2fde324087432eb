"""The `judge` reward: a judge model trained by the judge stage (engine/stages/judge.py) rates the thinking.

What the judge reads (`judge_text`, the same function at training and at scoring time):

    f"{question}\\n{think}{eos}"

`question` is the problem as asked (the dataset's question, no chat template, no system prompt),
`think` the thinking text only (the think block's content, stripped; "" when there is none),
`eos` the tokenizer's EOS token (RewardTrainer appends it to training texts, so scoring does too).
The answer block is not shown: SketchThinker-R1's judge rates the thinking (sketch vs verbose).

A saved judge is a folder: a LoRA adapter with the score head (or a whole sequence-classification
model) and `judge.json` (its base, max_length, held-out accuracy). `score_texts` is the one scoring
path, for the stage's held-out pairwise accuracy and for the reward GRPO pays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

META_FILE = "judge.json"
SCORE_BATCH = 16  # texts per judge forward pass


def judge_text(question: str, think: str, eos_token: str | None = "") -> str:
    """The exact text the judge reads: `f"{question}\\n{think}{eos_token}"` (see the module docstring)."""
    return f"{question.strip()}\n{think.strip()}{eos_token or ''}"


def score_texts(model, tokenizer, texts: list[str], device: str, max_length: int | None = None,
                batch_size: int = SCORE_BATCH) -> list[float]:
    """The judge's score of each text (the score head's one logit), batched, without gradients."""
    import torch

    model.eval()
    scores: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                            truncation=max_length is not None, max_length=max_length).to(device)
            logits = model(**enc).logits  # (B, 1): the score at the last non-pad token
            scores += logits[:, 0].float().tolist()  # .tolist() is a device-host sync point
    return scores


def seq_cls_model(folder: Path, placement, trust_remote_code: bool):
    from transformers import AutoModelForSequenceClassification

    from engine.models import ModelError

    try:  # a causal-LM checkpoint: the score head is new (random) and lm_head is unused; both are expected
        return AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=placement.dtype,
                                                                  trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelError(f"could not load {folder} as a sequence classifier for the judge: "
                         f"{type(exc).__name__}: {exc}") from exc


def load_judge(path: str | Path, placement) -> tuple[Any, Any, dict]:
    """(model, tokenizer, meta) of a saved judge: a LoRA adapter (and score head) on its base, or a model."""
    from engine.models import load_tokenizer, resolve_source

    path = Path(path)
    meta = json.loads((path / META_FILE).read_text())
    trust = bool(meta.get("trust_remote_code", False))
    tokenizer = load_tokenizer(path, trust)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        base = seq_cls_model(resolve_source(meta["source"]), placement, trust)
        base.config.pad_token_id = tokenizer.pad_token_id
        model = PeftModel.from_pretrained(base, str(path))
    else:
        model = seq_cls_model(path, placement, trust)
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    model.to(placement.device).eval()
    return model, tokenizer, meta


class JudgeReward:
    """`judge` reward: the judge's score of the thinking, normalised per prompt group, paid only when correct.

    For the completions of one prompt (`prompt_id` column) whose answer is correct
    (`is_correct(parse_response(completion, prefix).answer, answer)`), with s_i the judge's score
    of `judge_text(question, think_i, eos)`:

        r_i = (s_i - min_j s_j) / (max_j s_j - min_j s_j)     (0.5 when all s_j are equal, or one is correct)

    min and max run over the group's correct completions; a wrong answer gets 0 and is not
    scored at all (saving the judge's forward pass); a row without a reference answer gets None.
    So style never beats correctness: a wrong answer earns 0 however it reads, never more than a right one.

    Source: SketchThinker-R1 (SketchJudge): a reward model that rates the thinking text as
    sketch-like, used as a small style term (weight 0.1) beside accuracy and format, paid only
    with a correct answer. REWARDS.md ("judge").

    Picklable: the judge is loaded on the first call (once) and not pickled.
    """

    def __init__(self, path: str | Path, placement, batch_size: int = SCORE_BATCH):
        self.__name__ = "judge"
        self.path, self.placement, self.batch_size = Path(path), placement, batch_size
        self._loaded: tuple[Any, Any, dict] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_loaded": None}

    def _judge(self) -> tuple[Any, Any, dict]:
        if self._loaded is None:
            self._loaded = load_judge(self.path, self.placement)
        return self._loaded

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        from engine.rewards.components import column, correctness, group_indices, parse_batch

        n = len(completions)
        if kwargs.get("question") is None:
            raise ValueError("the judge reward reads the question and needs the dataset column 'question'")
        parsed = parse_batch(completions, kwargs)
        right = correctness(parsed, kwargs)
        questions = column(kwargs, "question", n)
        out: list[float | None] = [None if r is None else 0.0 for r in right]
        paid = [i for i in range(n) if right[i]]
        if not paid:
            return out
        model, tokenizer, meta = self._judge()
        texts = [judge_text(str(questions[i]), parsed[i].think or "", tokenizer.eos_token) for i in paid]
        scored = score_texts(model, tokenizer, texts, self.placement.device, meta.get("max_length"),
                             self.batch_size)
        scores = dict(zip(paid, scored, strict=True))
        for group in group_indices(prompts, kwargs):
            members = [i for i in group if i in scores]
            if not members:
                continue
            lo, hi = min(scores[i] for i in members), max(scores[i] for i in members)
            for i in members:
                out[i] = 0.5 if hi == lo else (scores[i] - lo) / (hi - lo)
        return out


def judge_reward(path: str | Path, placement) -> JudgeReward:
    """The `judge` reward component for GRPO from a judge saved by the judge stage (see JudgeReward)."""
    return JudgeReward(path, placement)
