"""The Export page: a run's trained model as a folder plain transformers + peft load, or as GGUF for
llama.cpp / Ollama (one merged file, or a GGUF LoRA beside the base), with a size estimate before it starts.

Export runs `python -m engine.export RUN_ID --out DIR [--checkpoint STEP] [--merged | --gguf F | --gguf-adapter]
[--zip]` in a
QProcess and reads its stdout line by line (`progress 3/5 writing the tokenizer`, then
`exported PATH` or `error MESSAGE`); Cancel terminates it (the engine cleans up its partial
folder), then kills it if it does not exit. The result is read from the output folder: its
model card (README.md) is shown, and the folder can be opened.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QProcess, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop import theme
from desktop.launch import module_argv, start_process
from desktop.runner import RunController
from desktop.widgets.forms import ComboBox, Field, form_layout, label
from desktop.widgets.page import Page

EXPORT_DIR_KEY = "export/dir"
KILL_AFTER_MS = 5000
_PROGRESS = re.compile(r"^progress (\d+)/(\d+) (.*)$")
FORMATS = {  # key: (label, the engine's flags)
    "adapter": ("LoRA adapter: small; loaded with peft on top of the base model", []),
    "merged": ("Merged model: stand-alone safetensors, the adapter merged into the base", ["--merged"]),
    "gguf-f16": ("GGUF f16: one file for llama.cpp, Ollama, LM Studio (adapter merged in)", ["--gguf", "f16"]),
    "gguf-q8_0": ("GGUF q8_0: the same, 8-bit weights, about half the size", ["--gguf", "q8_0"]),
    "gguf-adapter": ("GGUF adapter: a GGUF LoRA plus the base model as GGUF f16", ["--gguf-adapter"]),
}
_BYTES_PER_PARAM = {"float32": 4, "bfloat16": 2, "float16": 2}


def export_argv(run_id: int, out: str, checkpoint: str, fmt: str, zip_: bool, store_path: Path) -> list[str]:
    """The export command for the engine (a module-level function, so tests can stand in for it)."""
    argv = module_argv("engine.export", str(run_id), "--out", out, "--store", str(store_path))
    if checkpoint:
        argv += ["--checkpoint", checkpoint]
    return argv + FORMATS[fmt][1] + (["--zip"] if zip_ else [])


def estimate_bytes(weights: Path, fmt: str) -> int | None:
    """About how much an export of the adapter (or full model) folder `weights` writes; None if unknown.
    Read from file sizes and config.json only: no model is loaded."""
    def size(folder: Path, pattern: str) -> int:
        return sum(f.stat().st_size for f in folder.glob(pattern) if f.is_file())

    try:
        config_file = weights / "adapter_config.json"
        base = Path(json.loads(config_file.read_text())["base_model_name_or_path"]) if config_file.is_file() \
            else weights
        dtype = json.loads((base / "config.json").read_text()).get("dtype", "float32")
    except (OSError, ValueError, KeyError):
        return None
    base_bytes, adapter_bytes = size(base, "*.safetensors"), size(weights, "adapter_model.safetensors")
    params = base_bytes / _BYTES_PER_PARAM.get(str(dtype), 4)
    return int({"adapter": adapter_bytes, "merged": base_bytes, "gguf-f16": 2 * params,
                "gguf-q8_0": 34 / 32 * params,  # q8_0: 32 int8 values + one f16 scale per block
                "gguf-adapter": 2 * params + adapter_bytes}[fmt]) or None


def _human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


class ExportPage(Page):
    sig_error = Signal(str, str)
    """An export failed; arguments: message, details."""
    sig_exported = Signal(str)
    """An export finished; the argument is the path written."""

    def __init__(self, controller: RunController, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.store = controller.store
        self.proc: QProcess | None = None
        self.exported: Path | None = None
        self._buffer = ""
        self._error = ""
        self._cancelled = False
        self._build()
        controller.sig_runs_changed.connect(self._on_controller_runs_changed)
        self._on_controller_runs_changed(controller.runs)

    # ---- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        title = QLabel("Export")
        title.setProperty("role", "title")
        subtitle = label("A run's trained model as a folder that transformers and peft load without Ponder, or "
                         "as GGUF with an Ollama Modelfile: the weights, the run spec and a model card.", "subtitle")
        self.run_combo = ComboBox(30)
        self.run_combo.currentIndexChanged.connect(self._on_run_combo_index_changed)
        self.weights = ComboBox(24)
        self.weights.currentIndexChanged.connect(self._on_weights_index_changed)
        self.format_radios = {key: QRadioButton(text) for key, (text, _) in FORMATS.items()}
        self.format_radios["adapter"].setChecked(True)
        group = QButtonGroup(self)
        for radio in self.format_radios.values():
            group.addButton(radio)
            radio.toggled.connect(self._on_format_radio_toggled)
        self.estimate = label("", "muted")
        self.zip_box = QCheckBox("Pack it into one .zip file")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("the folder to create")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._on_browse_button_clicked)
        out_row = QWidget()
        row = QHBoxLayout(out_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.out_edit, 1)
        row.addWidget(browse)
        formats = QWidget()
        column = QVBoxLayout(formats)
        column.setContentsMargins(0, 0, 0, 0)
        for widget in (*self.format_radios.values(), self.zip_box, self.estimate):
            column.addWidget(widget)
        self.out_field = Field(out_row, "it must not exist yet; nothing is written there until the export is "
                                        "complete")
        form = form_layout()
        form.addRow("Run", self.run_combo)
        form.addRow("Weights", self.weights)
        form.addRow("Format", formats)
        form.addRow("Save as", self.out_field)

        self.export_button = QPushButton("Export")
        theme.set_icon(self.export_button, "export", "#ffffff")
        self.export_button.setProperty("role", "primary")
        self.export_button.clicked.connect(self._on_export_button_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        self.cancel_button.hide()
        self.progress = QProgressBar()
        self.progress.hide()
        self.status = label("", "muted")
        self.open_button = QPushButton("Open folder")
        theme.set_icon(self.open_button, "open")
        self.open_button.clicked.connect(self._on_open_button_clicked)
        self.open_button.hide()
        actions = QHBoxLayout()
        actions.addWidget(self.status, 1)
        actions.addWidget(self.open_button)
        actions.addWidget(self.cancel_button)
        actions.addWidget(self.export_button)
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(True)
        self.card.setPlaceholderText("The model card of the export appears here.")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(10)
        layout.addWidget(title)
        layout.addWidget(subtitle)
        layout.addLayout(form)
        layout.addLayout(actions)
        layout.addWidget(self.progress)
        layout.addWidget(label("Model card", "section"))
        layout.addWidget(self.card, 1)
        self._update_buttons()

    # ---- choices ----------------------------------------------------------------------------------
    def _on_controller_runs_changed(self, runs: list[dict[str, Any]]) -> None:
        """Runs with something to export: a final adapter or a checkpoint."""
        current = self.run_combo.currentData()
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        exportable = {a["run_id"] for a in self.store.artifacts(None)  # one query for every run
                      if a["kind"] in ("adapter", "checkpoint") and (a["meta"].get("stage") or a["stage"]) != "judge"}
        for run in sorted(runs, key=lambda r: -r["id"]):
            if run["id"] in exportable:
                self.run_combo.addItem(f"#{run['id']} {run['name']} — {run['status']}", run["id"])
        index = self.run_combo.findData(current)
        self.run_combo.setCurrentIndex(max(index, 0))
        self.run_combo.blockSignals(False)
        self._on_run_combo_index_changed(self.run_combo.currentIndex())

    def select_run(self, run_id: int) -> None:
        index = self.run_combo.findData(run_id)
        if index >= 0:
            self.run_combo.setCurrentIndex(index)

    def select_weights(self, run_id: int, key: str) -> bool:
        """Choose the run and its weights: "" for the final adapter, "STAGE:STEP" (or "STEP") for a checkpoint
        (a point clicked on an evaluation chart). False if the run has no such weights."""
        self.select_run(run_id)
        if self.run_combo.currentData() != run_id:
            return False
        stage, _, step = key.rpartition(":")
        for candidate in (key, step if stage else key):
            index = self.weights.findData(candidate)
            if index >= 0:
                self.weights.setCurrentIndex(index)
                return True
        return False

    def _on_run_combo_index_changed(self, _index: int) -> None:
        run_id = self.run_combo.currentData()
        self.weights.clear()
        if run_id is None:
            self._update_buttons()
            return
        arts = self.store.artifacts(run_id)
        if any(a["kind"] == "adapter" for a in arts):
            self.weights.addItem("the final trained adapter", "")
        seen = set()
        for art in reversed(arts):
            stage, step = art["meta"].get("stage") or art["stage"], art["meta"].get("step")
            usable = art["kind"] == "checkpoint" and step is not None and stage != "judge"
            if usable and (stage, step) not in seen:
                seen.add((stage, step))
                self.weights.addItem(f"{stage or 'checkpoint'} checkpoint at step {step}",
                                     f"{stage}:{step}" if stage else str(step))
        run = next((r for r in self.controller.runs if r["id"] == run_id), None)
        if run is not None and not self.out_edit.isModified():
            from desktop.settings import settings

            base = Path(settings().value(EXPORT_DIR_KEY, str(Path.home() / "ponder-exports")))
            self.out_edit.setText(str(base / f"{run['name']}-{run_id}"))
        self._update_buttons()

    def format(self) -> str:
        return next(key for key, radio in self.format_radios.items() if radio.isChecked())

    def _on_format_radio_toggled(self, _checked: bool) -> None:
        self._update_estimate()

    def _on_weights_index_changed(self, _index: int) -> None:
        self._update_estimate()

    def _update_estimate(self) -> None:
        """The size of the chosen format, from the chosen weights' folder (the final adapter or a checkpoint)."""
        run_id, chosen = self.run_combo.currentData(), self.weights.currentData()
        folder = None
        for art in self.store.artifacts(run_id) if run_id is not None else []:
            stage, step = art["meta"].get("stage") or art["stage"], art["meta"].get("step")
            if (chosen == "" and art["kind"] == "adapter") or \
                    (art["kind"] == "checkpoint" and chosen in (f"{stage}:{step}", str(step))):
                folder = Path(art["path"])
        size = estimate_bytes(folder, self.format()) if folder is not None else None
        self.estimate.setText(f"About {_human(size)}." if size else "")

    def _on_browse_button_clicked(self) -> None:
        start = str(Path(self.out_edit.text()).parent) if self.out_edit.text() else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Where to put the export", start)
        if folder:
            name = Path(self.out_edit.text()).name or "export"
            self.out_edit.setText(str(Path(folder) / name))
            self.out_edit.setModified(True)

    # ---- exporting --------------------------------------------------------------------------------
    def _on_export_button_clicked(self) -> None:
        self.start()

    def start(self) -> None:
        run_id, out = self.run_combo.currentData(), self.out_edit.text().strip()
        target = Path(out).expanduser()
        if self.zip_box.isChecked():
            target = target.with_name(target.name + ".zip")
        if not out:
            self.out_field.set_error("choose where to save the export.")
            return
        if target.exists():
            self.out_field.set_error(f"{target} exists already; choose a new name.")
            return
        self.out_field.set_error(None)
        argv = export_argv(run_id, str(Path(out).expanduser()), self.weights.currentData() or "",
                           self.format(), self.zip_box.isChecked(), self.store.path)
        self.exported, self._buffer, self._error, self._cancelled = None, "", "", False
        self.card.clear()
        self.proc = QProcess(self)
        self.proc.readyReadStandardOutput.connect(self._on_proc_ready_read)
        self.proc.finished.connect(self._on_proc_finished)
        self.proc.errorOccurred.connect(self._on_proc_error_occurred)
        self.progress.setRange(0, 0)  # busy until the first progress line
        self.status.setText("Starting the export…")
        start_process(self.proc, argv)
        self._update_buttons()

    def _on_proc_ready_read(self) -> None:
        self._buffer += bytes(self.proc.readAllStandardOutput()).decode("utf-8", errors="replace")
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._handle_line(line.strip())

    def _handle_line(self, line: str) -> None:
        match = _PROGRESS.match(line)
        if match:
            done, total, what = int(match[1]), int(match[2]), match[3]
            self.progress.setRange(0, total)
            self.progress.setValue(done - 1)
            self.status.setText(f"Step {done} of {total}: {what}…")
        elif line.startswith("exported "):
            self.exported = Path(line[len("exported "):])
        elif line.startswith("error "):
            self._error = line[len("error "):]

    def _on_proc_finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        self._on_proc_ready_read()
        if self._buffer.strip():
            self._handle_line(self._buffer.strip())
            self._buffer = ""
        err = bytes(self.proc.readAllStandardError()).decode("utf-8", errors="replace")
        self.proc.deleteLater()
        self.proc = None
        if self._cancelled:
            self.status.setText("Export cancelled; nothing was written.")
        elif code == 0 and self.exported is not None:
            self._show_result(self.exported)
            self.sig_exported.emit(str(self.exported))
        else:
            message = self._error or f"the export process exited with code {code}"
            self.status.setText(f"Export failed: {message}")
            self.sig_error.emit(f"Export failed: {message}", err.strip()[-4000:])
        self._update_buttons()

    def _on_proc_error_occurred(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.proc is not None:
            self.sig_error.emit("Could not start the export process.", self.proc.errorString())
            self.proc.deleteLater()
            self.proc = None
            self._update_buttons()

    def _show_result(self, path: Path) -> None:
        from desktop.settings import settings

        settings().setValue(EXPORT_DIR_KEY, str(path.parent))
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.status.setText(f"Exported to {path}")
        card = path / "README.md"
        if card.is_file():
            self.card.setMarkdown(card.read_text(encoding="utf-8"))
        else:  # a .zip: the card is inside it
            self.card.setPlainText(f"{path.name} holds the model, its spec and its model card (README.md).")

    def _on_cancel_button_clicked(self) -> None:
        self.cancel()

    def cancel(self) -> None:
        """Terminate the export (the engine removes its partial folder); kill it if it does not exit."""
        if self.proc is None:
            return
        self._cancelled = True
        self.status.setText("Cancelling…")
        self.proc.terminate()
        QTimer.singleShot(KILL_AFTER_MS, self, partial(self._kill_if_running, self.proc))

    def _kill_if_running(self, proc: QProcess) -> None:
        if self.proc is proc:  # still the same export, still not gone
            proc.kill()

    def _on_open_button_clicked(self) -> None:
        if self.exported is not None:
            folder = self.exported if self.exported.is_dir() else self.exported.parent
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _update_buttons(self) -> None:
        busy = self.proc is not None
        self.export_button.setEnabled(not busy and self.run_combo.currentData() is not None)
        self.cancel_button.setVisible(busy)
        self.progress.setVisible(busy or self.exported is not None)
        self.open_button.setVisible(self.exported is not None and not busy)
        for widget in (self.run_combo, self.weights, *self.format_radios.values(), self.zip_box, self.out_edit):
            widget.setEnabled(not busy)
        if self.run_combo.count() == 0:
            self.status.setText("No run has a trained adapter or a checkpoint yet.")
