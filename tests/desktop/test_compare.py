"""The Compare page: a real comparison of two tiny models, and the side-by-side view of stored results."""

from __future__ import annotations

import json
import time

from PySide6.QtCore import Qt

from tests.desktop.conftest import add_step, register_running


def _generation(eval_id, source, prompt_id, correct, tokens, text):
    return {"eval_id": eval_id, "source": source, "prompt_id": prompt_id, "prompt": f"Question {prompt_id}?",
            "completion": text, "tokens": tokens, "think_tokens": tokens - 3, "answer_tokens": 3,
            "mode": "think",
            "correct": correct, "reward": None, "difficulty": 1, "sample": 0}


def test_stored_results_show_side_by_side(window, qtbot):
    store = window.store
    eval_id = store.create_evaluation(["base", "trained"], "builtin:arithmetic", 2, {"num_samples": 1})
    store.add_generations([
        _generation(eval_id, "base", "p1", 0, 60, "long musing BASE-THOUGHT\n</think>\n<answer>5</answer>"),
        _generation(eval_id, "trained", "p1", 1, 20, "short TRAINED-THOUGHT\n</think>\n<answer>4</answer>"),
        _generation(eval_id, "base", "p2", 1, 50, "x</think><answer>1</answer>"),
        _generation(eval_id, "trained", "p2", 1, 18, "y</think><answer>1</answer>")])
    summary = {"base": {"accuracy": 0.5, "tokens": 55.0, "think_tokens": 52.0, "think_rate": 1.0,
                        "eot": 0.0096},
               "trained": {"accuracy": 1.0, "tokens": 19.0, "think_tokens": 16.0, "think_rate": 1.0,
                           "eot": 0.0625},
               "deltas": {"d_accuracy_pct": 100.0, "d_tokens_pct": 65.5}}
    store.update_evaluation(eval_id, status="succeeded", summary=json.dumps(summary), progress=4, total=4,
                            finished=time.time())
    window.show_page("compare")
    page = window.compare
    page.show_evaluation(eval_id)
    pairs = page.pairs.model()
    assert pairs.rowCount() == 2 and pairs.columnCount() == 3
    assert pairs.index(0, 1).data().startswith("✗") and pairs.index(0, 2).data().startswith("✓")
    assert page.summary.item(0, 1).text() == "50.0%" and page.summary.item(0, 2).text() == "100.0%"
    names = [page.summary.item(r, 0).text() for r in range(page.summary.rowCount())]
    assert "Tokens saved, trained vs. base" in names  # columns say what they are, never A and B
    assert page.summary.item(names.index("Tokens saved, trained vs. base"), 2).text() == "+65.5%"
    headers = [page.summary.horizontalHeaderItem(c).text() for c in range(1, 3)]
    assert headers == ["base", "trained"]
    assert [pairs.headerData(c, Qt.Orientation.Horizontal) for c in range(1, 3)] == ["base", "trained"]
    page.pairs.setCurrentIndex(pairs.index(0, 0))
    assert "BASE-THOUGHT" in page.left_text.toPlainText()
    assert "TRAINED-THOUGHT" in page.right_text.toPlainText()
    assert not page.progress.isVisible()


def test_runs_page_prefills_a_comparison_with_the_base(window):
    store = window.store
    run_id = register_running(store, "trained-one")
    add_step(store, run_id, 1)
    store.add_artifact(run_id, "adapter", "/tmp/adapter", {"step": 1})
    store.update_run(run_id, status="succeeded", finished=time.time())
    window.controller.refresh()
    window.runs.select_ids([run_id])
    window.runs.compare_button.click()
    page = window.compare
    assert window.current_page() == "compare"
    assert page.source(page.source_a) == "builtin:tiny-random"
    assert page.source(page.source_b) == f"run:{run_id}"


def test_a_real_comparison_of_two_tiny_models(window, qtbot):
    page = window.compare
    window.show_page("compare")
    page.set_source(page.source_a, "builtin:tiny-random")
    page.set_source(page.source_b, "builtin:tiny-random")
    page.n.setValue(3)
    page.max_tokens.setValue(8)
    page.start_button.click()
    eval_id = page.eval_id
    qtbot.waitUntil(lambda: window.store.get_evaluation(eval_id)["status"] in ("succeeded", "failed"),
                    timeout=120_000)
    ev = window.store.get_evaluation(eval_id)
    assert ev["status"] == "succeeded", ev.get("error")
    qtbot.waitUntil(lambda: page.pairs.model().rowCount() == 3 and page.summary.columnCount() == 3, timeout=5000)
    assert page.start_button.isEnabled()
    assert not window.banner.isVisible()
