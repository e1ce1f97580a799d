"""Settings dialog bound to app.settings.Settings (model folders, device, precision, preview, autosave).

Opened with `open()` (window-modal, non-blocking) so no nested event loop ever runs; the window
applies the new settings when `settings_accepted` fires.
"""
from __future__ import annotations

import copy

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from app.settings import DEVICES, PRECISIONS, Settings


class SettingsDialog(QDialog):
    settings_accepted = Signal(object)  # the new Settings

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = copy.deepcopy(settings)
        self.model = QComboBox(self)
        self.model.setEditable(True)
        self.model.setToolTip("A model folder (model_index.json + component subfolders, safetensors only)")
        for f in self.settings.model_folders:
            self.model.addItem(f)
        self.model.setCurrentText(self.settings.active_model)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.model, 1)
        row.addWidget(browse)
        self.device = QComboBox(self)
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(self.settings.device)
        self.precision = QComboBox(self)
        self.precision.addItems(list(PRECISIONS))
        self.precision.setCurrentText(self.settings.precision)
        self.preview = QCheckBox("Show the result forming while generating", self)
        self.preview.setChecked(self.settings.preview)
        self.autosave = QSpinBox(self)
        self.autosave.setRange(0, 120)
        self.autosave.setSuffix(" min")
        self.autosave.setSpecialValueText("off")
        self.autosave.setValue(self.settings.autosave_minutes)
        form = QFormLayout()
        form.addRow("Model folder", row)
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        form.addRow("Preview", self.preview)
        form.addRow("Autosave every", self.autosave)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(buttons)

    def _browse(self) -> None:
        dlg = QFileDialog(self, "Choose a model folder")
        dlg.setFileMode(QFileDialog.FileMode.Directory)
        dlg.fileSelected.connect(self.model.setCurrentText)
        dlg.open()

    def result_settings(self) -> Settings:
        s = copy.deepcopy(self.settings)
        folder = self.model.currentText().strip()
        if folder:
            s.active_model = folder
            if folder not in s.model_folders:
                s.model_folders.append(folder)
        s.device = self.device.currentText()
        s.precision = self.precision.currentText()
        s.preview = self.preview.isChecked()
        s.autosave_minutes = self.autosave.value()
        return s

    def accept(self) -> None:
        self.settings_accepted.emit(self.result_settings())
        super().accept()
