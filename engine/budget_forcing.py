"""Budget forcing (s1): generation that stops thinking after B tokens, closes the think block and answers.

The evaluation runs it once per thinking budget (`eval.budgets`), beside the unconstrained generation,
for the accuracy-vs-budget curve. Torch is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.evaluate import EvalSettings

BUDGET_ANSWER_TOKENS = 32  # what a budget-forced answer may still take after the think block is closed
FORCED_CLOSE = "\n</think>\n<answer>"


def _generate_ids(model, tokenizer, rows: list[list[int]], max_new_tokens: int, settings: EvalSettings,
                  num_return_sequences: int = 1) -> list[list[int]]:
    """New token ids after each row of ids (left-padded into one batch); stops at EOS like `generate`."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=model.device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=model.device)
    sample = settings.temperature > 0
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=sample,
                             temperature=settings.temperature if sample else None, top_p=None, top_k=None,
                             num_return_sequences=num_return_sequences, pad_token_id=pad)
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    new = []
    for row in out[:, width:].tolist():
        cut = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))  # up to and with EOS
        new.append(row[:cut])
    return new


def generate_budgeted(model, tokenizer, prompts: list[str], settings: EvalSettings, budget: int,
                      progress=None) -> list[list[tuple]]:
    """Budget forcing (s1): think for at most `budget` tokens, then close the think block and answer.

    Phase 1 generates `budget` tokens. A completion that ended (EOS) is kept; one that closed its think
    block itself goes on as usual, up to max_completion_length in all; one still thinking after exactly
    `budget` tokens gets FORCED_CLOSE appended and BUDGET_ANSWER_TOKENS more to write its answer, and a
    closing </answer> if it wrote none. Returns (text, completion token ids) like `generate`."""
    import torch

    tokenizer.padding_side = "left"
    torch.manual_seed(settings.seed)
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    forced = tokenizer(FORCED_CLOSE, add_special_tokens=False)["input_ids"]
    close_answer = tokenizer("</answer>", add_special_tokens=False)["input_ids"]
    out: list[list[tuple]] = []
    k = settings.num_samples
    for start in range(0, len(prompts), settings.batch_size):
        chunk = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[start:start + settings.batch_size]]
        first = _generate_ids(model, tokenizer, chunk, budget, settings, num_return_sequences=k)
        heads = [chunk[i // k] for i in range(len(first))]  # (len(chunk) * k,) prompt ids per completion
        done = [bool(ids) and ids[-1] in eos for ids in first]
        closed = ["</think>" in tokenizer.decode(ids, skip_special_tokens=True) for ids in first]
        completions = [list(ids) for ids in first]
        for group, extra, more in ((True, [], settings.max_completion_length - budget),
                                   (False, forced, BUDGET_ANSWER_TOKENS)):
            todo = [i for i in range(len(first)) if not done[i] and closed[i] == group]
            if not todo or more <= 0:
                continue
            for i in todo:
                completions[i] += extra
            tails = _generate_ids(model, tokenizer, [heads[i] + completions[i] for i in todo], more, settings)
            for i, tail in zip(todo, tails, strict=True):
                completions[i] += tail
                if not group and "</answer>" not in tokenizer.decode(tail, skip_special_tokens=True):
                    completions[i] += close_answer
        for i in range(len(chunk)):
            out.append([(tokenizer.decode(ids, skip_special_tokens=True), ids)
                        for ids in completions[i * k:(i + 1) * k]])
        if progress:
            progress(min(start + settings.batch_size, len(prompts)), len(prompts))
    return out
