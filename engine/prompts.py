"""Prompt rendering: the question in the model's chat template, ending with the prompt mode's prefix.

Prompts are rendered to text here (not left to TRL) so that a prompt can end inside the
assistant turn: `<think>\n` in think mode, `<think>\n...\n` in AutoThink's ellipsis mode,
where the model chooses to think on or to close the block at once. The prefix is also a
dataset column, so reward functions parse `prefix + completion`, the whole response.
"""

from __future__ import annotations

from typing import Any

# The worked example matters for small models: without it SmolLM2-135M almost never produces the format,
# so the format and accuracy rewards are 0 for every completion and GRPO has nothing to learn from.
SYSTEM = ("You are a careful problem solver. Reason briefly inside <think> </think>, then give only the final "
          "answer inside <answer> </answer>. Think only as much as the problem needs. Example:\n"
          "<think>\n12 + 5 = 17\n</think>\n<answer>17</answer>")
SYSTEM_ELLIPSIS = SYSTEM + " For an easy problem you may close the think block at once and answer."
PREFIXES = {"think": "<think>\n", "budget": "<think>\n", "ellipsis": "<think>\n...\n"}
DEFAULT_BUDGETS = {0: 256, 1: 32, 2: 64, 3: 96, 4: 160, 5: 256}  # tokens per difficulty level


def budget_for(difficulty: int, budget: int = 0) -> int:
    return budget or DEFAULT_BUDGETS.get(int(difficulty or 0), DEFAULT_BUDGETS[0])


def system_prompt(mode: str = "think", budget: int | str = 0) -> str:
    """The system prompt of prompt mode `mode` (the budget mode's names `budget` tokens)."""
    system = SYSTEM_ELLIPSIS if mode == "ellipsis" else SYSTEM
    if mode == "budget":
        system += f" Use at most {budget} tokens of thinking."
    return system


def render_prompt(question: str, tokenizer: Any, mode: str = "think", budget: int = 0) -> str:
    """The text fed to the model: system + question in the chat template, then the mode's prefix."""
    system = system_prompt(mode, budget)
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": question}],
            tokenize=False, add_generation_prompt=True)
    else:
        text = f"{system}\n\nQuestion: {question}\nAnswer: "
    return text + PREFIXES.get(mode, "")


def prompt_rows(examples: list[dict[str, Any]], tokenizer: Any, mode: str, budget: int = 0) -> dict[str, list]:
    """Column-wise rows for a `datasets.Dataset`: the prompt plus every column the rewards read."""
    cols: dict[str, list] = {k: [] for k in ("prompt", "question", "answer", "difficulty", "prefix",
                                             "prompt_id", "budget")}
    for ex in examples:
        b = budget_for(ex.get("difficulty", 0), budget)
        cols["prompt"].append(render_prompt(ex["question"], tokenizer, mode, b))
        cols["question"].append(ex["question"])
        cols["answer"].append(str(ex["answer"]))
        cols["difficulty"].append(int(ex.get("difficulty") or 0))
        cols["prefix"].append(PREFIXES.get(mode, ""))
        cols["prompt_id"].append(str(ex["id"]))
        cols["budget"].append(b)
    return cols
