"""The versions of the selected clip: Original, v1, v2...; click to show one, accept or reject it."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget


class VersionsPanel(QWidget):
    activate = Signal(int)  # version index
    judge = Signal(str, object)  # version id, True / False / None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget(self)
        self.list.setObjectName("versionsList")
        self.list.itemClicked.connect(self._on_click)
        self.accept_button = QPushButton("Accept", self)
        self.reject_button = QPushButton("Reject", self)
        self.accept_button.clicked.connect(lambda: self._judge(True))
        self.reject_button.clicked.connect(lambda: self._judge(False))
        self.info = QLabel("Select a clip to see its versions", self)
        self.info.setWordWrap(True)
        self.info.setObjectName("hint")
        row = QHBoxLayout()
        row.addWidget(self.accept_button)
        row.addWidget(self.reject_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.info)
        lay.addWidget(self.list, 1)
        lay.addLayout(row)
        self._updating = False

    def set_versions(self, versions: list, active: int) -> None:
        """`versions`: app.media Version objects of one clip (index 0 = the original)."""
        self._updating = True
        self.list.clear()
        for i, v in enumerate(versions):
            name = "Original" if i == 0 else f"v{i}"
            instr = v.request.get("instruction", "") if v.request else ""
            task = v.request.get("task", "") if v.request else ""
            mark = {True: "  ✓ accepted", False: "  ✗ rejected", None: ""}[v.accepted]
            text = f"{name}{mark}" + (f"\n{task.replace('_', ' ')}: {instr}" if instr or task else "")
            it = QListWidgetItem(text)
            it.setData(Qt.ItemDataRole.UserRole, v.id)
            if i == active:
                f = it.font()
                f.setBold(True)
                it.setFont(f)
            self.list.addItem(it)
        if versions:
            self.list.setCurrentRow(active)
        self.info.setText(f"{len(versions)} version(s); bold is shown" if versions else "Select a clip to see its versions")
        self.accept_button.setEnabled(len(versions) > 1)
        self.reject_button.setEnabled(len(versions) > 1)
        self._updating = False

    def count(self) -> int:
        return self.list.count()

    def _on_click(self, item: QListWidgetItem) -> None:
        if not self._updating:
            self.activate.emit(self.list.row(item))

    def _judge(self, verdict: bool) -> None:
        it = self.list.currentItem()
        if it is not None and self.list.row(it) > 0:
            self.judge.emit(it.data(Qt.ItemDataRole.UserRole), verdict)
