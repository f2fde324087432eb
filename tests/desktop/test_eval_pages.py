"""The evaluation views: frontier (points, click, answers, export), pass@k and budget curves, per-level views,
the Monitor's result line and stage labels that do not overprint. Stored results, no generation."""

from __future__ import annotations

import math
import time

from PySide6.QtCore import Qt

from tests.desktop.conftest import add_step, register_running

STEPS = (2, 4, 6)


def _point(acc, tokens, role, **extra):
    return {"accuracy": acc, "tokens": tokens, "think_tokens": tokens - 4, "answer_tokens": 4.0,
            "think_rate": 1.0, "role": role, "ci95": [max(0, acc - 0.15), min(1, acc + 0.15)], "n_rows": 8,
            "accuracy/d1": acc + 0.1, "tokens/d1": tokens - 5, "think_rate/d1": 0.5,
            "accuracy/d2": acc - 0.1, "tokens/d2": tokens + 5, "think_rate/d2": 1.0, **extra}


def _evaluated_run(store, tmp_path) -> tuple[int, int]:
    """A finished run with three GRPO checkpoints (folders on disk) and an evaluation of all of them."""
    run_id = register_running(store, "frontier")
    add_step(store, run_id, 1)
    run_dir = tmp_path / "run"
    for step in STEPS:
        folder = run_dir / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        store.add_artifact(run_id, "checkpoint", folder, {"step": step, "stage": "grpo"}, stage="grpo")
    store.add_artifact(run_id, "adapter", run_dir / "adapter", {"step": 6, "stage": "grpo"}, stage="grpo")
    store.update_run(run_id, status="succeeded", finished=time.time())
    summary = {"base": _point(0.25, 60.0, "base"),
               **{f"grpo step {s}": _point(a, t, "checkpoint", stage="grpo", step=s, run_id=run_id)
                  for s, a, t in ((2, 0.3, 50.0), (4, 0.5, 30.0), (6, 0.45, 34.0))},
               "trained": _point(0.45, 33.0, "trained", run_id=run_id, pass_curve=[0.45, 0.6, 0.68, 0.72],
                                 budgets=[{"budget": b, "accuracy": a, "tokens": t, "think_tokens": b,
                                           "answer_tokens": 4.0, "ci95": [0, 1]}
                                          for b, a, t in ((4, 0.2, 12.0), (8, 0.35, 16.0), (16, 0.45, 24.0))]),
               "deltas": {"d_accuracy_pct": 80.0, "d_tokens_pct": 45.0}}
    summary["base"]["pass_curve"] = [0.25, 0.35, 0.4, 0.42]
    sources = [k for k in summary if k != "deltas"]
    eval_id = store.create_evaluation(sources, "builtin:arithmetic", 2, {"num_samples": 4, "temperature": 0.7},
                                      run_id=run_id)
    store.add_generations({"eval_id": eval_id, "source": s, "prompt_id": f"p{i}", "prompt": f"What is {i} + 1?",
                           "completion": f"ANSWER-OF-{s.replace(' ', '-')}\n</think>\n<answer>{i + 1}</answer>",
                           "tokens": 9, "think_tokens": 5, "answer_tokens": 4, "mode": "think", "correct": 1,
                           "reward": None, "difficulty": 1, "sample": 0} for s in sources for i in range(2))
    store.update_evaluation(eval_id, status="succeeded", summary=summary, progress=10, total=10,
                            finished=time.time())
    return run_id, eval_id


def _show_on_runs_page(window, run_id):
    window.controller.refresh()
    window.show_page("runs")
    window.runs.select_ids([run_id])
    window.runs.bottom_tabs.setCurrentIndex(1)
    return window.runs.evaluation.views


def test_frontier_points_click_answers_and_export(window, qtbot, tmp_path):
    run_id, _ = _evaluated_run(window.store, tmp_path)
    views = _show_on_runs_page(window, run_id)
    frontier = views.frontier
    assert len(frontier.points) == 5 and len(frontier.scatter.points()) == 5
    assert {p["title"] for p in frontier.points} == {"base", "checkpoint 2", "checkpoint 4", "checkpoint 6",
                                                     "trained"}
    front = {p["title"] for p in frontier.points if p["pareto"]}
    assert front == {"checkpoint 4"}  # cheapest and most accurate: nothing beats it
    assert "base" in {t.textItem.toPlainText() for t in frontier.texts}  # base is named on the chart
    qtbot.waitUntil(lambda: frontier.isVisible() and frontier.width() > 100)
    with qtbot.waitSignal(frontier.sig_point_clicked, timeout=3000) as clicked:  # a real click on the point
        qtbot.mouseClick(frontier.viewport(), Qt.MouseButton.LeftButton, 
                         pos=frontier.widget_pos("grpo step 4"))
    assert clicked.args[0]["label"] == "grpo step 4"
    assert "checkpoint 4" in views.point_label.text() and views.export_button.isEnabled()
    views.traces_button.click()
    (dialog,) = views.dialogs
    assert "ANSWER-OF-grpo-step-4" in dialog.text.toPlainText()
    assert "ANSWER-OF-base" not in dialog.text.toPlainText()
    dialog.close()
    qtbot.waitUntil(lambda: not views.dialogs)
    views.export_button.click()
    assert window.current_page() == "export"
    assert window.export.run_combo.currentData() == run_id
    assert window.export.weights.currentData() == "grpo:4"
    frontier.click("base")  # the base model is not a run's weights: nothing to export
    assert not views.export_button.isEnabled() and views.traces_button.isEnabled()


def test_pass_at_k_budget_and_level_views(window, tmp_path):
    run_id, _ = _evaluated_run(window.store, tmp_path)
    views = _show_on_runs_page(window, run_id)
    assert set(views.pass_at_k.curves) == {"base", "trained"}  # the models with several samples
    x, y = views.pass_at_k.curves["trained"].getOriginalDataset()
    assert list(x) == [0, 1, math.log2(3), 2] and y[-1] == 0.72  # k on a log axis
    ticks = views.pass_at_k.getPlotItem().getAxis("bottom")._tickLevels[0]
    assert [text for _, text in ticks] == ["1", "2", "3", "4"]  # named by k, not by decade
    assert not views.pass_at_k.note.isVisible()
    assert list(views.budgets.curves) == ["trained"]
    assert [p["budget"] for p in views.budgets.curves["trained"]] == [4, 8, 16]
    assert views.levels_table.rowCount() == 5  # every model side by side
    assert views.levels_table.columnCount() == 1 + 2  # levels 1 and 2
    assert views.levels_table.horizontalHeaderItem(1).text() == "level 1"
    assert views.levels_table.item(0, 0).text() == "base"
    assert views.levels_table.item(0, 1).text() == "35% · 55.0 · 50%"  # accuracy · tokens · think-rate
    assert len(views.level_bars.bars) == 5
    views.level_metric.setCurrentIndex(1)  # tokens
    assert views.level_bars.metric == "tokens" and len(views.level_bars.bars) == 5


def test_compare_shows_the_views_and_names_checkpoints(window, tmp_path):
    _, eval_id = _evaluated_run(window.store, tmp_path)
    window.show_page("compare")
    page = window.compare
    page.show_evaluation(eval_id)
    headers = [page.summary.horizontalHeaderItem(c).text() for c in range(1, page.summary.columnCount())]
    assert headers == ["base", "checkpoint 2", "checkpoint 4", "checkpoint 6", "trained"]
    assert len(page.views.frontier.points) == 5
    assert page.views.tabText(0) == "Summary" and page.views.count() == 5


def test_an_empty_evaluation_explains_itself(window):
    window.show_page("runs")
    views = window.runs.evaluation.views
    views.set_evaluation(None)
    assert views.frontier.note.isVisible() and views.pass_at_k.note.isVisible()
    assert "several samples" in views.pass_at_k.note.textItem.toPlainText()


def test_monitor_shows_the_result_at_the_top(window, qtbot, tmp_path):
    run_id, _ = _evaluated_run(window.store, tmp_path)
    window.controller.refresh()
    window.show_run(run_id)
    label = window.monitor.result_label
    qtbot.waitUntil(label.isVisible, timeout=3000)
    text = label.text()
    assert "base <b>25.0%</b>" in text and "trained <b>45.0%</b>" in text
    assert "dAcc <b>+80.0%</b>" in text and "dTok <b>+45.0%</b>" in text
    assert "Best of 3 checkpoints: checkpoint 4" in text


def test_stage_labels_do_not_print_over_each_other(window):
    from desktop.widgets.plots import LivePlot

    plot = LivePlot("t", legend=True)
    plot.add_boundary(10, "judge")
    plot.add_boundary(10, "grpo")  # the judge logged no steps: both start at 10
    plot.add_boundary(12, "eval")
    lines = [line for line, _ in plot._boundaries]
    assert [text for _, text in plot._boundaries] == ["judge · grpo", "eval"]
    assert lines[0].label.orthoPos != lines[1].label.orthoPos  # neighbours at different heights
    assert plot.legend.parentItem() is not plot.getPlotItem().vb  # the legend sits outside the data area
    plot.close()


ADAPTER_SCRIPT = """
import sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from engine.models import resolve_source
base = resolve_source("builtin:tiny-random")
torch.manual_seed(0)
model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(
    r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False))
for out in sys.argv[1:]:
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
"""


def test_evaluate_every_checkpoint_runs_in_a_worker_process(window, qtbot):
    """The Runs page's button: a real evaluation of two checkpoints on the tiny model, off the GUI thread."""
    import os
    import subprocess
    import sys

    from engine.launch import create_run
    from engine.spec import load_spec
    from tests.conftest import ROOT, SPECS

    store = window.store
    spec = load_spec(SPECS / "smoke.toml").replace(**{"stages": ["grpo", "eval"], "data.eval_size": 2,
                                                      "eval.max_completion_length": 4})
    run_id, run_dir = create_run(spec, store)
    folders = [run_dir / "checkpoints" / "grpo" / f"checkpoint-{s}" for s in (1, 2)] + [run_dir / "adapter"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    made = subprocess.run([sys.executable, "-c", ADAPTER_SCRIPT, *map(str, folders)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # torch stays out of the GUI process
    assert made.returncode == 0, made.stderr[-2000:]
    for step, folder in zip((1, 2), folders, strict=False):
        store.add_artifact(run_id, "checkpoint", folder, {"step": step, "stage": "grpo"}, stage="grpo")
    store.add_artifact(run_id, "adapter", folders[-1], {"step": 2, "stage": "grpo"}, stage="grpo")
    store.update_run(run_id, status="succeeded", finished=time.time())
    panel = window.runs.evaluation
    _show_on_runs_page(window, run_id)
    assert panel.evaluate_button.isEnabled()
    panel.evaluate_button.click()
    (ev,) = store.list_evaluations()
    qtbot.waitUntil(lambda: store.get_evaluation(ev["id"])["status"] in ("succeeded", "failed"), timeout=300_000)
    done = store.get_evaluation(ev["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["pid"] != os.getpid()  # a worker process evaluated, not the GUI
    qtbot.waitUntil(lambda: len(panel.views.frontier.points) == 4, timeout=5000)  # base, 2 checkpoints, trained
    assert not panel.timer.isActive()  # the poll stops with the evaluation
    assert "Evaluation #" in panel.status.text()
    assert "eval" not in {s["stage"] for s in store.stages(run_id)}  # the run's stages are left as they were


def test_the_pareto_front_is_drawn_through_its_points(window):
    from desktop.widgets.evalcharts import FrontierPlot

    plot = FrontierPlot()
    plot.set_summary({"base": _point(0.2, 60.0, "base"), "cheap": _point(0.3, 20.0, "source"),
                      "trained": _point(0.5, 40.0, "trained"), "worse": _point(0.25, 50.0, "source")})
    (line,) = [item for item in plot.getPlotItem().listDataItems() if item.name() == "Pareto front"]
    x, y = line.getData()
    assert list(x) == [20.0, 40.0] and list(y) == [0.3, 0.5]  # cheap, then trained; base and worse are beaten
    assert sorted(t.textItem.toPlainText() for t in plot.texts) == ["base", "cheap", "trained", "worse"]
    plot.close()
