"""The versions of the selected clip: the original and v1, v2... each with its picture, what made it
(task, instruction, seed, steps) and its verdict. Click one to show it (and the plan stored with it);
"Use these settings again" puts its instruction, task and settings back for the next Generate."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

MEDIA_ROLE = Qt.ItemDataRole.UserRole + 1


def describe_version(index: int, version, clip_name: str) -> str:
    """Two lines: which version of which clip, then what made it."""
    name = f"{clip_name} — original" if index == 0 else f"{clip_name} — v{index}"
    mark = {True: "  ✓ accepted", False: "  ✗ rejected", None: ""}[version.accepted]
    r = version.request or {}
    if not r:
        return name + mark
    made = [str(r.get("task", "")).replace("_", " ")]
    if r.get("instruction"):
        made.append(f"“{str(r['instruction'])[:60]}”")
    details = [f"seed {r['seed']}" if "seed" in r else "", f"{r['steps']} steps" if "steps" in r else ""]
    return f"{name}{mark}\n{': '.join(m for m in made if m)}\n{', '.join(d for d in details if d)}".rstrip()


class VersionsPanel(QWidget):
    activate = Signal(int)  # version index
    judge = Signal(str, object)  # version id, True / False / None
    reuse = Signal(int)  # version index whose settings to use again
    remove = Signal(str)  # version id to take off the clip (undoable; its file stays in the project)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget(self)
        self.list.setObjectName("versionsList")
        self.list.setIconSize(QSize(48, 48))
        self.list.itemClicked.connect(self._on_click)
        self.accept_button = QPushButton("Accept", self)
        self.reject_button = QPushButton("Reject", self)
        self.accept_button.clicked.connect(lambda: self._judge(True))
        self.reject_button.clicked.connect(lambda: self._judge(False))
        self.reuse_button = QPushButton("Use these settings again", self)
        self.reuse_button.setToolTip("Instruction, task, seed, steps, guidance and size of the selected version")
        self.reuse_button.clicked.connect(self._reuse)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip("Take the selected version off the clip (Undo brings it back)")
        self.remove_button.clicked.connect(self._remove)
        self.list.currentRowChanged.connect(lambda row: self.remove_button.setEnabled(row > 0))
        self.info = QLabel("Select a clip to see its versions", self)
        self.info.setWordWrap(True)
        self.info.setObjectName("hint")
        row = QHBoxLayout()
        row.addWidget(self.accept_button)
        row.addWidget(self.reject_button)
        row.addWidget(self.remove_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.info)
        lay.addWidget(self.list, 1)
        lay.addLayout(row)
        lay.addWidget(self.reuse_button)
        self._updating = False
        self.set_versions([], 0)

    def set_versions(self, versions: list, active: int, clip_name: str = "", icons: dict | None = None) -> None:
        """`versions`: app.media Version objects of one clip (index 0 = the original); `icons`: cached
        QIcons by media id (the rest arrive through set_icon)."""
        self._updating = True
        self.list.clear()
        for i, v in enumerate(versions):
            it = QListWidgetItem(describe_version(i, v, clip_name or "Clip"))
            it.setData(Qt.ItemDataRole.UserRole, v.id)
            it.setData(MEDIA_ROLE, v.media_id)
            if icons and v.media_id in icons:
                it.setIcon(icons[v.media_id])
            if i == active:
                f = it.font()
                f.setBold(True)
                it.setFont(f)
            self.list.addItem(it)
        if versions:
            self.list.setCurrentRow(active)
        self.info.setText(f"{len(versions)} version(s); bold is shown" if versions else "Select a clip to see its versions")
        for b in (self.accept_button, self.reject_button):
            b.setEnabled(len(versions) > 1)
        self.reuse_button.setEnabled(bool(versions))
        self.remove_button.setEnabled(self.list.currentRow() > 0)  # the original stays
        self._updating = False

    def set_icon(self, media_id: str, icon: QIcon) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(MEDIA_ROLE) == media_id:
                self.list.item(i).setIcon(icon)

    def count(self) -> int:
        return self.list.count()

    def _on_click(self, item: QListWidgetItem) -> None:
        if not self._updating:
            self.activate.emit(self.list.row(item))

    def _judge(self, verdict: bool) -> None:
        it = self.list.currentItem()
        if it is not None and self.list.row(it) > 0:
            self.judge.emit(it.data(Qt.ItemDataRole.UserRole), verdict)

    def _remove(self) -> None:
        it = self.list.currentItem()
        if it is not None and self.list.row(it) > 0:
            self.remove.emit(it.data(Qt.ItemDataRole.UserRole))

    def _reuse(self) -> None:
        if self.list.currentRow() >= 0:
            self.reuse.emit(self.list.currentRow())
