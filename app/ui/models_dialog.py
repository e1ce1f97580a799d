"""The model manager: what `python main.py models` lists, and `models assemble`, in a dialog.

The table shows every folder found in models/, the settings' model folders and the folders the user adds:
MetaCanvas models, Qwen2.5-VL planners and SANA / FLUX.1-Kontext / Wan2.2 pipelines, with their family,
tasks, size, dtype and what is missing (app/core/model_catalog.py; nothing is loaded to list them). A
MetaCanvas model can be checked and chosen for stills or clips; a planner and a backbone can be assembled
into one (app/core/assembly.py) on a worker thread, with the text path (native: the backbone's own text
encoder, the canvas on top; mllm: the planner's states through the context connector) and, optionally,
trained connectors. Choices reach the window as new Settings through `settings_accepted`, as the settings
dialog's do, so the window's checks and reloads apply unchanged.
"""
from __future__ import annotations

import copy
from pathlib import Path

from PySide6.QtCore import QThreadPool, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from app.core.model_catalog import (BACKBONE, IMAGE_TASKS, METACANVAS, PLANNER, TASK_SHORT, VIDEO_TASKS,
                                    CatalogEntry, catalog_folders, human_size, scan)
from app.settings import Settings
from app.ui.workers import Task

COLUMNS = ("Name", "Kind", "Family", "Tasks", "Size", "Dtype", "Status")


def entry_status(entry: CatalogEntry) -> str:
    """One cell: what is missing or refused, else "ready" and the notes."""
    if not entry.usable:
        return entry.why_not()
    return "; ".join(["ready"] + entry.notes)


class ModelsDialog(QDialog):
    settings_accepted = Signal(object)  # new Settings (a model chosen, a folder added)
    assembled = Signal(object)  # the Path of a model folder just written
    scanned = Signal()  # the table shows a finished scan

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(980, 520)
        self.settings = copy.deepcopy(settings)
        self.extra_folders: list[str] = []
        self.entries: list[CatalogEntry] = []
        self._running: Task | None = None
        self._scans = 0  # scans started: only the newest one's result is shown
        self._selecting: Path | None = None  # a folder to select once the scan that lists it is shown

        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.add_button = QPushButton("Add folder…", self)
        self.add_button.clicked.connect(self._browse_folder)
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.clicked.connect(self.refresh)
        self.check_button = QPushButton("Check", self)
        self.check_button.clicked.connect(self.check_selected)
        self.stills_button = QPushButton("Use for stills", self)
        self.stills_button.clicked.connect(lambda: self.use_selected(video=False))
        self.clips_button = QPushButton("Use for clips", self)
        self.clips_button.clicked.connect(lambda: self.use_selected(video=True))
        row = QHBoxLayout()
        for b in (self.add_button, self.refresh_button, self.check_button, self.stills_button, self.clips_button):
            row.addWidget(b)
        row.addStretch(1)

        self.status = QLabel("", self)
        self.status.setWordWrap(True)

        box = QGroupBox("Assemble a MetaCanvas model from a planner and a backbone", self)
        form = QFormLayout(box)
        self.planner_box = QComboBox(box)
        self.backbone_box = QComboBox(box)
        self.text_box = QComboBox(box)
        self.text_box.addItem("native: the backbone's own text encoder, the canvas on top", "native")
        self.text_box.addItem("mllm: the planner's states through the context connector (train first)", "mllm")
        self.connectors_edit = QLineEdit(box)
        self.connectors_edit.setPlaceholderText("fresh connectors (or a folder of trained ones)")
        self.output_edit = QLineEdit(box)
        self.output_edit.setPlaceholderText("the new model folder")
        out_row = QHBoxLayout()
        out_row.addWidget(self.output_edit, 1)
        browse_out = QPushButton("Browse…", box)
        browse_out.clicked.connect(self._browse_output)
        out_row.addWidget(browse_out)
        self.replace_box = QCheckBox("Replace an earlier assembly there (--overwrite)", box)
        self.assemble_button = QPushButton("Assemble", box)
        self.assemble_button.clicked.connect(self.assemble)
        form.addRow("Planner (Qwen2.5-VL)", self.planner_box)
        form.addRow("Backbone (pipeline)", self.backbone_box)
        form.addRow("Text path", self.text_box)
        form.addRow("Connectors", self.connectors_edit)
        form.addRow("Output folder", out_row)
        form.addRow("", self.replace_box)
        form.addRow("", self.assemble_button)

        close = QPushButton("Close", self)
        close.clicked.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(box)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(close)
        layout.addLayout(bottom)
        self.refresh()

    # ------------------------------------------------------------------ the table
    def folders(self) -> list[str]:
        return catalog_folders(self.settings, self.extra_folders)

    def refresh(self) -> None:
        """Scan the folders on a worker thread (sizing a folder of large checkpoints reads every file's size;
        a slow disk must not freeze the window); the table fills when the scan is done."""
        self._scans += 1
        number = self._scans
        self.status.setText("Looking for model folders…")
        task = Task(scan, self.folders())
        task.relay.done.connect(lambda entries: self._show(entries) if number == self._scans else None)
        task.relay.error.connect(lambda exc: self.status.setText(f"The folders could not be read: {exc}"))
        self._scan_task = task  # its relay must outlive this call to deliver the result
        QThreadPool.globalInstance().start(task)

    def _show(self, entries: list[CatalogEntry]) -> None:
        self.entries = entries
        if self.status.text() == "Looking for model folders…":
            self.status.setText("")
        self.table.setRowCount(len(self.entries))
        for r, e in enumerate(self.entries):
            tasks = "all six" if set(e.tasks) == set(IMAGE_TASKS + VIDEO_TASKS) else " ".join(
                TASK_SHORT.get(t, t) for t in e.tasks)
            cells = (e.name, e.kind or "?", e.family or "-", tasks or "-", human_size(e.size_bytes), e.dtype or "-",
                     entry_status(e))
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(e.path) if c == 0 else text)
                self.table.setItem(r, c, item)
        self._fill_combo(self.planner_box, PLANNER)
        self._fill_combo(self.backbone_box, BACKBONE)
        self._update_buttons()
        if self._selecting is not None:
            self.select_path(self._selecting)
            self._selecting = None
        self.scanned.emit()

    def _fill_combo(self, box: QComboBox, kind: str) -> None:
        current = box.currentData()
        box.clear()
        for e in self.entries:
            if e.kind == kind and e.usable:
                box.addItem(f"{e.name} ({e.family})", str(e.path))
        index = box.findData(current)
        if index >= 0:
            box.setCurrentIndex(index)

    def select_path(self, path: str | Path) -> bool:
        for r, e in enumerate(self.entries):
            if Path(e.path).resolve() == Path(path).resolve():
                self.table.selectRow(r)
                return True
        return False

    def selected(self) -> CatalogEntry | None:
        rows = self.table.selectionModel().selectedRows()
        return self.entries[rows[0].row()] if rows else None

    def _update_buttons(self) -> None:
        e = self.selected()
        usable_model = e is not None and e.kind == METACANVAS and e.usable
        self.check_button.setEnabled(e is not None)
        self.stills_button.setEnabled(usable_model and bool(set(e.tasks) & set(IMAGE_TASKS)))
        self.clips_button.setEnabled(usable_model and bool(set(e.tasks) & set(VIDEO_TASKS)))
        self.assemble_button.setEnabled(self._running is None and self.planner_box.count() > 0
                                        and self.backbone_box.count() > 0)

    # ------------------------------------------------------------------ actions
    def add_folder(self, folder: str) -> None:
        if folder and folder not in self.extra_folders:
            self.extra_folders.append(folder)
        self.refresh()

    def check_selected(self) -> str:
        """Check the selected folder without loading its weights; the verdict goes to the status line."""
        from app.core.checkpoints import ModelFolderError, validate_model_folder

        e = self.selected()
        if e is None:
            return ""
        if not e.usable:
            text = f"{e.name} cannot be used: {e.why_not()}"
        elif e.kind == METACANVAS:
            try:
                validate_model_folder(e.path)
                text = f"{e.name} is ready to load ({', '.join(t.replace('_', ' ') for t in e.tasks)})."
            except ModelFolderError as exc:
                text = f"{e.name} cannot be loaded: {exc}"
        else:
            text = f"{e.name} is a usable {e.kind} ({e.family}): assemble it with a " + (
                "backbone." if e.kind == PLANNER else "planner.")
        self.status.setText(text)
        return text

    def use_selected(self, video: bool) -> None:
        """Make the selected MetaCanvas model the one for clips (video) or stills."""
        e = self.selected()
        if e is None or e.kind != METACANVAS or not e.usable:
            return
        folder = str(e.path)
        s = copy.deepcopy(self.settings)
        if video:
            s.video_model = folder
            if folder not in s.video_model_folders:
                s.video_model_folders.append(folder)
        else:
            s.active_model = folder
            if folder not in s.model_folders:
                s.model_folders.append(folder)
        self.settings = s
        self.status.setText(f"{e.name} is now the model for {'clips' if video else 'stills'}.")
        self.settings_accepted.emit(copy.deepcopy(s))

    def assemble(self) -> None:
        from app.core.assembly import assemble

        planner, backbone = self.planner_box.currentData(), self.backbone_box.currentData()
        out = self.output_edit.text().strip()
        if not (planner and backbone):
            self.status.setText("Choose a planner and a backbone (add the folders that hold them).")
            return
        if not out:
            self.status.setText("Choose the output folder for the new model.")
            return
        connectors = self.connectors_edit.text().strip() or None
        text_path = self.text_box.currentData()
        self.status.setText(f"Assembling {Path(out).name}…")
        overwrite = self.replace_box.isChecked()
        task = Task(lambda: assemble(planner, backbone, out, connectors_dir=connectors, text_path=text_path,
                                     overwrite=overwrite))
        task.relay.done.connect(self._assembled)
        task.relay.error.connect(self._assembly_failed)
        self._running = task
        self._update_buttons()
        QThreadPool.globalInstance().start(task)

    def _assembled(self, folder) -> None:
        self._running = None
        self._selecting = Path(folder)
        self.add_folder(str(folder))
        self.status.setText(f"Wrote {folder}. Check it, then use it for stills or clips.")
        self.assembled.emit(Path(folder))

    def _assembly_failed(self, exc) -> None:
        self._running = None
        self._update_buttons()
        self.status.setText(f"Assembly failed: {exc}")

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder, or a folder of them")
        if folder:
            self.add_folder(folder)

    def _browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose where the new model folder goes")
        if folder:
            name = f"metacanvas-{Path(self.backbone_box.currentData() or 'model').name}".lower()
            self.output_edit.setText(str(Path(folder) / name))
