"""The Export page: the engine's export protocol (progress, exported, error), cancel, and the model card."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from desktop import export as export_module
from tests.conftest import ROOT
from tests.desktop.conftest import add_step, register_running

FAKE = ROOT / "tests" / "desktop" / "fake_export.py"


def _trained_run(store) -> int:
    run_id = register_running(store, "exportable")
    add_step(store, run_id, 1)
    store.add_artifact(run_id, "checkpoint", "/tmp/ckpt-1", {"step": 1, "stage": "grpo"}, stage="grpo")
    store.add_artifact(run_id, "adapter", "/tmp/adapter", {"step": 2, "stage": "grpo"}, stage="grpo")
    store.update_run(run_id, status="succeeded", finished=time.time())
    return run_id


def _fake(mode: str):
    def argv(run_id, out, checkpoint, fmt, zip_, store_path):
        return [sys.executable, str(FAKE), mode, out]
    return argv


def test_export_shows_progress_and_the_model_card(window, qtbot, monkeypatch, tmp_path):
    run_id = _trained_run(window.store)
    window.controller.refresh()
    window.runs.select_ids([run_id])
    window.runs.export_button.click()
    page = window.export
    assert window.current_page() == "export" and page.run_combo.currentData() == run_id
    weights = [page.weights.itemData(i) for i in range(page.weights.count())]
    assert weights == ["", "grpo:1"]  # the final adapter first, then the checkpoints
    monkeypatch.setattr(export_module, "export_argv", _fake("ok"))
    page.out_edit.setText(str(tmp_path / "my-export"))
    page.export_button.click()
    assert not page.export_button.isEnabled() and page.cancel_button.isVisible()
    qtbot.waitUntil(lambda: page.proc is None, timeout=20000)
    assert page.exported == tmp_path / "my-export"
    assert "Trained with Ponder" in page.card.toPlainText()
    assert page.open_button.isVisible() and page.export_button.isEnabled()
    assert not window.banner.isVisible()


def test_an_export_error_reaches_the_banner(window, qtbot, monkeypatch, tmp_path):
    _trained_run(window.store)
    window.controller.refresh()
    page = window.export
    monkeypatch.setattr(export_module, "export_argv", _fake("fail"))
    page.out_edit.setText(str(tmp_path / "full"))
    page.start()
    qtbot.waitUntil(lambda: page.proc is None, timeout=20000)
    assert window.banner.isVisible() and "no space left" in window.banner.current().message
    assert page.exported is None


def test_cancel_and_existing_targets(window, qtbot, monkeypatch, tmp_path):
    _trained_run(window.store)
    window.controller.refresh()
    page = window.export
    (tmp_path / "taken").mkdir()
    page.out_edit.setText(str(tmp_path / "taken"))
    page.start()
    assert page.proc is None and "exists already" in page.out_field.error.text()
    monkeypatch.setattr(export_module, "export_argv", _fake("slow"))
    page.out_edit.setText(str(tmp_path / "never"))
    page.start()
    qtbot.waitUntil(lambda: "Step 1 of 4" in page.status.text(), timeout=20000)
    page.cancel_button.click()
    qtbot.waitUntil(lambda: page.proc is None, timeout=20000)
    assert "cancelled" in page.status.text() and not (tmp_path / "never").exists()
    assert not window.banner.isVisible()


def test_format_choice_gives_the_engine_flags_and_a_size_estimate(window, qtbot, monkeypatch, tmp_path):
    import json

    base, adapter = tmp_path / "base", tmp_path / "adapter"
    for folder in (base, adapter):
        folder.mkdir()
    (base / "config.json").write_text(json.dumps({"dtype": "float32"}))
    (base / "model.safetensors").write_bytes(b"\0" * 4_000_000)  # 1 M parameters in fp32
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 20_000)
    run_id = register_running(window.store, "sized")
    window.store.add_artifact(run_id, "adapter", adapter, {"step": 2, "stage": "grpo"}, stage="grpo")
    window.store.update_run(run_id, status="succeeded", finished=time.time())
    window.controller.refresh()
    page = window.export
    page.select_run(run_id)
    sizes = {}
    for key, radio in page.format_radios.items():
        radio.setChecked(True)
        sizes[key] = page.estimate.text()
    assert sizes == {"adapter": "About 20.0 KB.", "merged": "About 4.0 MB.", "gguf-f16": "About 2.0 MB.",
                     "gguf-q8_0": "About 1.1 MB.", "gguf-adapter": "About 2.0 MB."}
    assert export_module.export_argv(run_id, "/x", "", "gguf-q8_0", False, Path("s.db"))[-2:] == ["--gguf", "q8_0"]
    assert export_module.export_argv(run_id, "/x", "", "gguf-adapter", True, Path("s.db"))[-2:] == \
        ["--gguf-adapter", "--zip"]
    calls = []

    def argv(run_id, out, checkpoint, fmt, zip_, store_path):
        calls.append(fmt)
        return [sys.executable, str(FAKE), "ok", out]

    monkeypatch.setattr(export_module, "export_argv", argv)
    page.out_edit.setText(str(tmp_path / "gguf-export"))
    page.start()
    qtbot.waitUntil(lambda: page.proc is None, timeout=20000)
    assert calls == ["gguf-adapter"] and page.exported == tmp_path / "gguf-export"
    assert not page.open_button.isHidden()  # "Open folder" (the page itself is not on screen here)
