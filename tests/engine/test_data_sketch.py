"""to_sketch on the generators' own long traces, a GSM8K rationale and a chatty R1-style trace."""

from __future__ import annotations

import re
import time

import pytest

from engine.data import load_examples
from engine.data.sketch import to_sketch, token_reduction

# A real GSM8K rationale (train set), calculator annotations and all.
GSM8K_RATIONALE = (
    "In the beginning, Betty has only 100 / 2 = $<<100/2=50>>50.\n"
    "Betty's grandparents gave her 15 * 2 = $<<15*2=30>>30.\n"
    "This means, Betty needs 100 - 50 - 30 - 15 = $<<100-50-30-15=5>>5 more.\n"
    "#### 5"
)

# The way an R1-distilled model writes: restating, hedging, a failed try, a double-check.
R1_TRACE = """<think>
Okay, so I need to figure out how many apples are left. Let me read the problem again.
The farmer has 12 baskets with 8 apples each. Hmm, so first I should find the total.
12 * 8 = 96. So there are 96 apples.
Wait, let me double-check that: 12 * 8 = 96. Yes, that's right.
Then he sells 30 apples. Is it 96 + 30 = 126? No wait, that's wrong, selling takes apples away.
96 - 30 = 66.
I think that's it. He also keeps 1 dozen for himself, which is 12 apples.
66 - 12 = 54.
So the answer is 54.
</think>
\\boxed{54}"""


def test_gsm8k_rationale():
    assert to_sketch(GSM8K_RATIONALE) == "100/2=50; 15*2=30; 100-50-30-15=5"


def test_r1_trace_keeps_the_math_and_drops_the_rest():
    sketch = to_sketch(R1_TRACE)
    # the 96+30 try is rejected by the trace itself; "1 dozen" is a fact no equation states
    assert sketch == "12*8=96; 96-30=66; He also keeps 1 dozen for himself, which is 12 apples; 66-12=54"
    assert token_reduction(R1_TRACE, sketch) > 0.8


def test_a_new_fact_is_kept_and_a_missing_final_answer_is_added():
    trace = "Hmm, let me think. There are 7 days in a week. So in 3 weeks: 3 * 7 = 21. The answer is 21 days."
    assert to_sketch(trace) == "3*7=21"
    trace = "Okay. The speed of light is about 300000 km/s. Therefore the answer is \\boxed{300000}."
    assert to_sketch(trace) == "The speed of light is about 300000 km/s"
    assert to_sketch("Let me think about this. I think the answer is B.") == "answer: B"


@pytest.mark.parametrize(
    "trace, sketch",
    [
        ("", ""),
        ("Okay, let me think. Hmm. I think so.", ""),  # only filler
        ("The total is 1,200 + 300 = 1,500 dollars.", "1200+300=1500"),  # thousands separators
        ("So 0.2 x 50 = $10.", "0.2*50=10"),  # "x" as times, dollar signs
        ("We get (3 + 4) × 2 = 14, i.e. 7 × 2 = 14.", "(3+4)*2=14; 7*2=14"),
        ("Step: 5 - 8 = -3 and -3 + 10 = 7.", "5-8=-3; -3+10=7"),
    ],
)
def test_sketch_table(trace, sketch):
    assert to_sketch(trace) == sketch


@pytest.mark.parametrize("task", ["arithmetic", "countdown", "word_problems"])
def test_generator_long_traces(task):
    rows = load_examples(f"builtin:{task}", n=60, seed=11)
    for row in rows:
        sketch = to_sketch(row["reasoning"])
        numbers = re.findall(r"-?\d+", sketch)
        assert row["answer"] in numbers, (row["reasoning"], sketch)
        assert numbers[-1] == row["answer"]  # the sketch ends with the result
        assert len(sketch) < len(row["reasoning"]) / 3
        assert token_reduction(row["reasoning"], sketch) > 0.6
        # every step of the generator's own sketch survives the conversion
        assert all(step in sketch.split("; ") for step in row["sketch"].split("; ")), (row["sketch"], sketch)


def test_token_reduction_with_tokenizers():
    assert token_reduction("a b c d", "a") == 0.75  # whitespace tokens
    assert token_reduction("", "") == 0.0
    assert token_reduction("abcd", "ab", tokenizer=list) == 0.5  # any callable returning tokens

    class HFLike:
        def encode(self, text, add_special_tokens=True):
            return [0] * add_special_tokens + list(text)  # special tokens must not be counted

    assert token_reduction("abcd", "ab", tokenizer=HFLike()) == 0.5


def test_pathological_input_stays_fast():
    start = time.perf_counter()
    for text in ("1 + " * 5000, "1+" * 10_000 + "=", "(" * 20_000, "= " * 10_000, "9" * 20_000 + " = 1 + 1"):
        to_sketch(text)
    assert time.perf_counter() - start < 2.0
