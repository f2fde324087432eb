"""An example custom reward file: functions named reward_* with TRL's reward signature.

Use it with `[rewards] custom_file = "resources/rewards/example.py"`; it is added to the
preset's components (weight 1 unless `[rewards.weights]` says otherwise). Copy it as a
template: each function gets the prompts, the completions (strings) and every dataset
column (answer, difficulty, prefix, prompt_id, ...) as keyword lists, and returns one
float (or None) per completion.
"""


def reward_plain_text(prompts, completions, **kwargs):
    """Share of characters that are ASCII letters, digits, spaces, punctuation or tags.

    It varies even between completions of a random-init model, so the smoke spec uses it
    to give GRPO a learning signal where accuracy and format are always 0.
    """
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n.,+-*/=<>()")
    return [sum(ch in allowed for ch in text) / max(1, len(text)) for text in completions]
