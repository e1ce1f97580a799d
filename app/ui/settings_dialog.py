"""Settings dialog bound to app.settings.Settings (the image and video model folders, device, precision, memory,
preview, autosave).

Opened with `open()` (window-modal, non-blocking) so no nested event loop ever runs; the window
applies the new settings when `settings_accepted` fires.
"""
from __future__ import annotations

import copy
import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from app.settings import DEVICES, MAX_CPU_THREADS, OFFLOADS, PRECISIONS, Settings, studio_cpu_threads

# A memory switch left on "auto" is picked from the GPU's memory when the model loads (app/core/memory.py).
_AUTO_ON_OFF = {"auto": None, "on": True, "off": False}


class SettingsDialog(QDialog):
    settings_accepted = Signal(object)  # the new Settings

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = copy.deepcopy(settings)
        self.model, row = self._folder_row(
            self.settings.model_folders, self.settings.active_model,
            "The model for stills: text to image and image editing. A model folder (model_index.json + "
            "component subfolders, safetensors only)")
        self.video_model, video_row = self._folder_row(
            self.settings.video_model_folders, self.settings.video_model,
            "The model for clips: text to video, image to video, video editing and video from references. "
            "Loaded the first time a video task is asked for.")
        self.device = QComboBox(self)
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(self.settings.device)
        self.precision = QComboBox(self)
        self.precision.addItems(list(PRECISIONS))
        self.precision.setCurrentText(self.settings.precision)
        self.precision.setToolTip("auto: bfloat16 on a GPU (float16 on one without it), float32 on the CPU")
        self.offload = QComboBox(self)
        self.offload.addItems(list(OFFLOADS))
        self.offload.setCurrentText(self.settings.offload)
        self.offload.setToolTip("none: every part on the GPU. model: each large part (planner, transformer, VAE) on "
                                "the GPU only while it runs. sequential: the weights visit the GPU layer by layer (the "
                                "least memory, the slowest). auto: picked from the GPU's memory and the model's size")
        self.vae_tiling = self._auto_on_off(self.settings.vae_tiling, "Encode and decode in tiles: large images and "
                                                                      "clips in less memory")
        self.vae_slicing = self._auto_on_off(self.settings.vae_slicing, "Decode a batch one item at a time")
        self.planner_offload = self._auto_on_off(self.settings.planner_offload, "Move the planner to the CPU after "
                                                                                "planning: the denoiser gets its room")
        self.preview = QCheckBox("Show the result forming while generating", self)
        self.preview.setChecked(self.settings.preview)
        self.autosave = QSpinBox(self)
        self.autosave.setRange(0, 120)
        self.autosave.setSuffix(" min")
        self.autosave.setSpecialValueText("off")
        self.autosave.setValue(self.settings.autosave_minutes)
        self.cpu_threads = QSpinBox(self)
        self.cpu_threads.setRange(0, min(MAX_CPU_THREADS, os.cpu_count() or 1))  # more than the cores only waits
        self.cpu_threads.setSpecialValueText(f"auto ({studio_cpu_threads(0)})")
        self.cpu_threads.setValue(self.settings.cpu_threads)
        self.cpu_threads.setToolTip("Threads the model computes with on the CPU. auto: every core but one, so the "
                                    "window and playback stay smooth while a job runs")
        form = QFormLayout()
        form.addRow("Model folder", row)
        form.addRow("Video model folder", video_row)
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        form.addRow("Memory: offload", self.offload)
        form.addRow("Memory: VAE tiling", self.vae_tiling)
        form.addRow("Memory: VAE slicing", self.vae_slicing)
        form.addRow("Memory: planner off the GPU after planning", self.planner_offload)
        form.addRow("CPU threads", self.cpu_threads)
        form.addRow("Preview", self.preview)
        form.addRow("Autosave every", self.autosave)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(buttons)

    def _folder_row(self, folders: list[str], current: str, tip: str) -> tuple[QComboBox, QHBoxLayout]:
        box = QComboBox(self)
        box.setEditable(True)
        box.setToolTip(tip)
        for f in folders:
            box.addItem(f)
        box.setCurrentText(current)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(lambda: self._browse(box))
        row = QHBoxLayout()
        row.addWidget(box, 1)
        row.addWidget(browse)
        return box, row

    def _auto_on_off(self, value: bool | None, tip: str) -> QComboBox:
        box = QComboBox(self)
        box.addItems(list(_AUTO_ON_OFF))
        box.setCurrentText(next(k for k, v in _AUTO_ON_OFF.items() if v is value))
        box.setToolTip(tip + " (auto: picked from the GPU's memory)")
        return box

    def _browse(self, box: QComboBox) -> None:
        dlg = QFileDialog(self, "Choose a model folder")
        dlg.setFileMode(QFileDialog.FileMode.Directory)
        dlg.fileSelected.connect(box.setCurrentText)
        dlg.open()

    def result_settings(self) -> Settings:
        s = copy.deepcopy(self.settings)
        # "~/models/x" typed in a box is the user's home folder, as in a shell (Qt's own dialogs never write "~").
        folder = os.path.expanduser(self.model.currentText().strip())
        if folder:
            s.active_model = folder
            if folder not in s.model_folders:
                s.model_folders.append(folder)
        folder = os.path.expanduser(self.video_model.currentText().strip())
        if folder:
            s.video_model = folder
            if folder not in s.video_model_folders:
                s.video_model_folders.append(folder)
        s.device = self.device.currentText()
        s.precision = self.precision.currentText()
        s.offload = self.offload.currentText()
        s.vae_tiling = _AUTO_ON_OFF[self.vae_tiling.currentText()]
        s.vae_slicing = _AUTO_ON_OFF[self.vae_slicing.currentText()]
        s.planner_offload = _AUTO_ON_OFF[self.planner_offload.currentText()]
        s.preview = self.preview.isChecked()
        s.autosave_minutes = self.autosave.value()
        s.cpu_threads = self.cpu_threads.value()
        return s

    def accept(self) -> None:
        self.settings_accepted.emit(self.result_settings())
        super().accept()
