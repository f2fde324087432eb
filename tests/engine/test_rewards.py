"""Parsing, correctness, the rule rewards and the builder (engine.rewards)."""

from __future__ import annotations

import os
import pickle
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.rewards import (
    COMPONENT_PARAMS,
    MODEL_COMPONENTS,
    PRESETS,
    REGISTRY,
    build_reward_funcs,
    formula,
)
from engine.rewards.components import accuracy, format_reward
from engine.rewards.parsing import extract_answer, is_correct, parse_response, think_token_split

ELLIPSIS = "<think>\n...\n"

# ----------------------------------------------------------------------------- parse_response

PARSE_CASES = [
    # (prefix, completion, think, answer, well_formed, mode)
    # the canonical format, generated from an empty prefix
    ("", "<think>\n17+25=42\n</think>\n<answer>42</answer>", "17+25=42", "42", True, "think"),
    # think mode: the prompt already opened the block
    ("<think>\n", "17+25=42\n</think>\n<answer>42</answer>", "17+25=42", "42", True, "think"),
    # trailing EOS text after the answer is tolerated
    ("", "<think>a</think><answer>42</answer><|im_end|>\n", "a", "42", True, "think"),
    # an empty think block is the no-think format
    ("", "<think>\n</think>\n<answer>7</answer>", "", "7", True, "no_think"),
    # AutoThink ellipsis prompt, the model closes the block at once: no-think
    (ELLIPSIS, "</think>\n<answer>7</answer>", "...", "7", True, "no_think"),
    # ellipsis prompt, the model keeps thinking: think
    (ELLIPSIS, "3+4=7\n</think>\n<answer>7</answer>", "...\n3+4=7", "7", True, "think"),
    # two think blocks: not well formed; the answer still counts
    ("", "<think>a</think><think>b</think><answer>1</answer>", "a", "1", False, "think"),
    # missing answer block: not well formed, no answer
    ("", "<think>a</think>\nthe answer is 5", "a", None, False, "think"),
    # a boxed answer inside the answer block is unwrapped
    ("", "<think>a</think><answer>so \\boxed{\\frac{1}{2}}</answer>", "a", "\\frac{1}{2}", True, "think"),
    # text after the answer block: not well formed
    ("", "<think>a</think><answer>1</answer> and more", "a", "1", False, "think"),
    # think block never closed (cut off at max length): no answer
    ("<think>\n", "still going \\boxed{3}", "still going \\boxed{3}", None, False, "think"),
    # no tags at all, a GSM8K line: answer found, no think block
    ("", "17 + 25 = 42\n#### 42", None, "42", False, "no_think"),
    # a boxed answer in the thinking does not count as the answer
    ("", "<think>maybe \\boxed{3}</think>", "maybe \\boxed{3}", None, False, "think"),
    # two answer blocks: the last one is the answer, not well formed
    ("", "<think>a</think><answer>1</answer><answer>2</answer>", "a", "2", False, "think"),
]


@pytest.mark.parametrize(("prefix", "completion", "think", "answer", "well_formed", "mode"), PARSE_CASES)
def test_parse_response(prefix, completion, think, answer, well_formed, mode):
    parsed = parse_response(completion, prefix)
    got = (parsed.think, parsed.answer, parsed.well_formed, parsed.mode)
    assert got == (think, answer, well_formed, mode)


def test_parse_response_takes_the_last_message_of_a_chat_completion():
    # TRL passes message lists for conversational data
    parsed = parse_response([{"role": "assistant", "content": "<think>a</think><answer>3</answer>"}])
    assert parsed.answer == "3" and parsed.well_formed


EXTRACT_CASES = [
    # (text, expected)
    # answer block
    ("<answer> 12 </answer>", "12"),
    # boxed with nested braces anywhere
    ("so the result is \\boxed{\\frac{3}{4}}.", "\\frac{3}{4}"),
    # the last boxed wins
    ("\\boxed{1} then \\boxed{2}", "2"),
    # GSM8K answer line
    ("Natalia sold 48 clips...\n#### 72", "72"),
    # GSM8K with thousands separator kept for math-verify
    ("#### 1,000", "1,000"),
    # an unclosed box is no answer
    ("\\boxed{12", None),
    # nothing to find
    ("no answer here", None),
    # an empty answer block is no answer
    ("<answer>  </answer>", None),
    # dollar-delimited answer is unwrapped
    ("<answer>$42$</answer>", "42"),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACT_CASES)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


# ----------------------------------------------------------------------------- is_correct

CORRECT_CASES = [
    # (pred, gold, expected)
    # fraction vs decimal
    ("1/2", "0.5", True),
    # integer vs float
    ("42", "42.0", True),
    # LaTeX fraction vs decimal
    ("\\frac{1}{2}", "0.5", True),
    # decimal vs LaTeX fraction (gold is LaTeX)
    ("0.5", "\\frac{1}{2}", True),
    # a symbol is not a number
    ("x", "42", False),
    # wrong number
    ("41", "42", False),
    # thousands separator
    ("1,000", "1000", True),
    # a unit word after the number
    ("18 dollars", "18", True),
    # LaTeX dollar sign
    ("\\$18", "18", True),
    # symbolic equality
    ("x+1", "1+x", True),
    # a gold GSM8K solution is reduced to its answer line
    ("72", "She sold 48 + 24 = 72 clips.\n#### 72", True),
    # a gold boxed answer is unwrapped
    ("\\sqrt{2}", "\\boxed{\\sqrt{2}}", True),
    # negative numbers
    ("-3", "-3.0", True),
    # no prediction
    (None, "42", False),
    # empty prediction
    ("", "42", False),
    # garbage never raises
    ("}{\\frac{", "42", False),
    # garbage gold never raises
    ("42", "\\frac{{{", False),
]


@pytest.mark.parametrize(("pred", "gold", "expected"), CORRECT_CASES)
def test_is_correct(pred, gold, expected):
    assert is_correct(pred, gold) is expected


@pytest.mark.parametrize("pred", [
    "10^{10^{10}}",     # a ten-billion-digit integer if sympy evaluated it
    "9^9^9^9",          # a tower without braces
    "10**(10**10)",     # Python-style tower
    "2^{100000}",       # a huge exponent
    "(10^9)!",          # a huge factorial
    "\\sum_{k=1}^{10^9} k",  # a sum sympy would try to evaluate
])
def test_is_correct_returns_at_once_on_answers_sympy_would_evaluate_forever(pred):
    assert is_correct(pred, "1") is False


MATHY = st.lists(st.sampled_from([*"0123456789+-*/^!(){}=.,x $%\\", "\\frac", "\\sqrt", "\\boxed{",
                                  "<think>", "</think>", "<answer>", "</answer>", "####", "\\pi"]),
                 max_size=20).map("".join)


@settings(max_examples=200, deadline=None)
@given(MATHY, MATHY)
def test_parsing_and_is_correct_never_raise(a, b):
    # any text a model or a dataset produces is parsed and compared without an exception
    parsed = parse_response(a, b)
    assert parsed.mode in ("think", "no_think")
    extract_answer(a)
    assert isinstance(is_correct(a, b), bool)


def test_is_correct_never_raises_on_odd_types():
    # non-strings from a badly mapped column are False or compared as text, never an exception
    assert is_correct(42, "42") is True
    assert is_correct(object(), "42") is False


def test_is_correct_works_off_the_main_thread():
    # math-verify's signal timeouts would raise here; is_correct must not use them
    result = {}
    thread = threading.Thread(target=lambda: result.update(ok=is_correct("\\frac{2}{4}", "0.5")))
    thread.start()
    thread.join(60)
    assert result == {"ok": True}


# ----------------------------------------------------------------------------- accuracy / format

BATCH = [
    # (prefix, completion, answer, accuracy, format)
    # correct and well formed
    ("<think>\n", "x\n</think>\n<answer>42</answer>", "42", 1.0, 1.0),
    # correct by value, well formed
    ("<think>\n", "x\n</think>\n<answer>\\frac{1}{2}</answer>", "0.5", 1.0, 1.0),
    # wrong but well formed
    ("<think>\n", "x\n</think>\n<answer>41</answer>", "42", 0.0, 1.0),
    # right number, no answer block: the answer is still read from a boxed
    ("<think>\n", "x</think> \\boxed{42}", "42", 1.0, 0.0),
    # no reference answer: accuracy does not apply
    ("<think>\n", "x</think><answer>42</answer>", "", None, 1.0),
    # ellipsis no-think, correct
    (ELLIPSIS, "</think><answer>7</answer>", "7", 1.0, 1.0),
]


def _columns(rows):
    return {
        "prompts": ["p"] * len(rows),
        "completions": [r[1] for r in rows],
        "prefix": [r[0] for r in rows],
        "answer": [r[2] for r in rows],
        "prompt_id": ["g"] * len(rows),
        "completion_ids": [[0] * 5 for _ in rows],
        "trainer_state": None,
    }


def test_accuracy_and_format_table():
    cols = _columns(BATCH)
    assert accuracy(**cols) == [r[3] for r in BATCH]
    assert format_reward(**cols) == [r[4] for r in BATCH]
    assert format_reward.__name__ == "format"  # TRL's metric name


# ----------------------------------------------------------------------------- registry and builder


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_function_pickles_and_keeps_its_name(name):
    func = REGISTRY[name](max_len=64) if "max_len" in _ctor_params(name) else REGISTRY[name]()
    clone = pickle.loads(pickle.dumps(func))
    assert clone.__name__ == func.__name__ == name
    cols = _columns(BATCH)
    assert clone(**cols) == func(**cols)


def _ctor_params(name):
    import inspect

    factory = REGISTRY[name]
    return inspect.signature(factory).parameters if inspect.isclass(factory) else {}


def test_component_params_and_formulas_cover_the_registry():
    assert set(COMPONENT_PARAMS) == set(REGISTRY)
    assert COMPONENT_PARAMS["cosine"]["min_value_wrong"] == -1.0  # REWARDS.md, not open-r1's 0
    for name in [*REGISTRY, *MODEL_COMPONENTS]:
        assert formula(name)


def test_every_preset_names_known_components():
    known = set(REGISTRY) | set(MODEL_COMPONENTS)
    for preset in PRESETS.values():
        assert set(preset.components) <= known, preset.name


def test_build_r1_zero():
    funcs, weights = build_reward_funcs("r1-zero")
    assert [f.__name__ for f in funcs] == ["accuracy", "format"]
    assert weights == [1.0, 0.5]


def test_build_overrides_weights_drops_zero_and_adds_components():
    # format off, accuracy doubled, overlong added with its max_len from the caller
    funcs, weights = build_reward_funcs("r1-zero", weights={"format": 0, "accuracy": 2.0, "overlong": 0.5},
                                        max_completion_length=100)
    assert [f.__name__ for f in funcs] == ["accuracy", "overlong"]
    assert weights == [2.0, 0.5]
    assert funcs[1].max_len == 100


def test_build_applies_params():
    funcs, _ = build_reward_funcs("cosine", params={"cosine": {"max_value_correct": 2.0}},
                                  max_completion_length=50)
    assert funcs[0].max_value_correct == 2.0 and funcs[0].max_len == 50


@pytest.mark.parametrize(("kwargs", "message"), [
    # unknown component names the field and the component, and lists the known ones
    ({"preset": "r1-zero", "weights": {"brevity": 1.0}},
     "weights.brevity: no reward component named 'brevity'. Known: accuracy"),
    # unknown preset
    ({"preset": "r2"}, "unknown reward preset 'r2'"),
    # unknown constant of a known component
    ({"preset": "cosine", "params": {"cosine": {"gamma": 1.0}}}, "has no constant gamma"),
    # constants for an unknown component
    ({"preset": "r1-zero", "params": {"brevity": {}}}, "unknown reward component(s) brevity"),
    # a model-backed component without its callable says which stage provides it
    ({"preset": "sketch"}, "'judge' needs a model; it is provided by the judge stage"),
    # every weight zero
    ({"preset": "r1-zero", "weights": {"accuracy": 0, "format": 0}}, "no component with a non-zero weight"),
    # the custom preset needs a file
    ({"preset": "custom"}, "needs a custom_file"),
    # a non-finite weight
    ({"preset": "r1-zero", "weights": {"format": float("nan")}}, "weights.format: must be a finite number"),
])
def test_build_errors(kwargs, message):
    with pytest.raises(ValueError, match=_re(message)):
        build_reward_funcs(**kwargs)


def _re(text):
    import re

    return re.escape(text)


def test_build_sketch_with_the_judge_from_the_stage():
    def judge(prompts, completions, **kwargs):
        return [0.5] * len(completions)

    funcs, weights = build_reward_funcs("sketch", extra={"judge": judge})
    assert funcs == [REGISTRY["accuracy"](), REGISTRY["format"](), judge]
    assert weights == [0.5, 0.4, 0.1]
    # a zero judge weight needs no judge
    funcs, _ = build_reward_funcs("sketch", weights={"judge": 0})
    assert [f.__name__ for f in funcs] == ["accuracy", "format"]


def test_sketch_preset_warns_above_style_weight_point_one():
    sketch = PRESETS["sketch"]
    assert sketch.warnings() == []
    assert any("0.4" in w and "reward hacking" in w for w in sketch.warnings({"judge": 0.4}))
    # no correctness component at all is worth a warning in any preset
    assert any("correct" in w for w in PRESETS["r1-zero"].warnings({"accuracy": 0}))


def test_think_token_split():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", "<think>", "</think>", "<answer>", "</answer>",
                                         "...", "17", "+", "25", "=", "42", "so"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    cases = [
        # (prefix, completion, completion_ids_len, expected)
        # think mode: 5 thinking words + </think> = 6, then 3 answer tokens
        ("<think>\n", "17 + 25 = 42 </think> <answer> 42 </answer>", 9, (6, 3)),
        # ellipsis no-think: only </think> itself counts as thinking
        (ELLIPSIS, "</think> <answer> 42 </answer>", 4, (1, 3)),
        # think block never closed: everything is thinking
        ("<think>\n", "17 + 25 = so", 5, (5, 0)),
        # no think block at all: everything is answer
        ("", "<answer> 42 </answer>", 3, (0, 3)),
        # the completion opens the block itself and closes it
        ("", "<think> so </think> <answer> 42 </answer>", 6, (3, 3)),
        # re-tokenising gives more tokens than were generated: clamped
        ("<think>\n", "17 + 25 = 42 </think>", 4, (4, 0)),
    ]
    for prefix, completion, n, expected in cases:
        assert think_token_split(completion, n, tokenizer, prefix) == expected, completion


def test_answer_column_missing_is_an_error_not_silence():
    # a dataset whose reference column was not mapped to `answer` must not train on all-None rewards
    cols = _columns(BATCH)
    del cols["answer"]
    with pytest.raises(ValueError, match="needs the dataset column 'answer'"):
        accuracy(**cols)


def test_importing_rewards_loads_neither_torch_nor_math_verify():
    # the GUI imports presets and COMPONENT_PARAMS; it must start fast and never hold torch
    import subprocess
    import sys

    code = ("import sys, engine.rewards, engine.rewards.presets; "
            "print(sorted(m for m in ('torch', 'transformers', 'math_verify', 'sympy') if m in sys.modules))")
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert out.stdout.strip() == "[]"
