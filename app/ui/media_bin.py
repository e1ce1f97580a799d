"""The media bin: every media item of the project as a thumbnail; import by dialog or drag & drop.

Thumbnails are decoded in a thread pool (a video's first frame can take a while to seek and decode),
and drawn when they arrive; until then an item shows its name only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QHBoxLayout, QListView, QPushButton, QVBoxLayout, QWidget

MEDIA_ID_ROLE = Qt.ItemDataRole.UserRole + 1


class MediaListView(QListView):
    files_dropped = Signal(list)  # local paths

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(72, 72))
        self.setGridSize(QSize(96, 100))
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setWordWrap(True)
        # Not uniform: the first item is measured before its thumbnail arrives, and uniform sizes would
        # keep that icon-less height for every item (thumbnails clipped to a sliver).
        self.setUniformItemSizes(False)
        self.setAcceptDrops(True)
        self.setDragDropMode(QListView.DragDropMode.DropOnly)
        self.setSelectionMode(QListView.SelectionMode.ExtendedSelection)

    def dragEnterEvent(self, e: Any) -> None:  # noqa: N802
        if e.mimeData().hasUrls():
            e.acceptProposedAction()
        else:
            super().dragEnterEvent(e)

    def dragMoveEvent(self, e: Any) -> None:  # noqa: N802
        if e.mimeData().hasUrls():
            e.acceptProposedAction()
        else:
            super().dragMoveEvent(e)

    def dropEvent(self, e: Any) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if paths:
            e.acceptProposedAction()
            self.files_dropped.emit(paths)
        else:
            super().dropEvent(e)


class MediaBin(QWidget):
    import_clicked = Signal()
    add_to_timeline = Signal(list)  # media ids
    use_as_references = Signal(list)  # media ids of stills for a video from references
    files_dropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = QStandardItemModel(self)
        self.view = MediaListView(self)
        self.view.setModel(self.model)
        self.view.files_dropped.connect(self.files_dropped)
        self.view.doubleClicked.connect(lambda idx: self.add_to_timeline.emit([idx.data(MEDIA_ID_ROLE)]))
        imp = QPushButton("Import…", self)
        imp.setToolTip("Import photos and clips (or drop files here)")
        imp.clicked.connect(self.import_clicked)
        add = QPushButton("Add to timeline", self)
        add.clicked.connect(lambda: self.add_to_timeline.emit(self.selected_ids()))
        refs = QPushButton("Use as references", self)
        refs.setToolTip("Make a video from the selected stills (one or two): they are selected on the timeline "
                        "and the task becomes “Video from references”")
        refs.clicked.connect(lambda: self.use_as_references.emit(self.selected_ids()))
        self.references_button = refs
        row = QHBoxLayout()
        row.addWidget(imp)
        row.addWidget(add)
        row.addWidget(refs)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row)
        lay.addWidget(self.view, 1)

    def set_items(self, items: list[tuple[str, str, str]]) -> None:
        """(media id, display name, kind) for every media item, keeping icons already decoded."""
        icons = {self.model.item(r).data(MEDIA_ID_ROLE): self.model.item(r).icon() for r in range(self.model.rowCount())}
        self.model.clear()
        for media_id, name, kind in items:
            it = QStandardItem(name)
            it.setData(media_id, MEDIA_ID_ROLE)
            it.setToolTip(f"{name} ({kind})")
            it.setEditable(False)
            if media_id in icons and not icons[media_id].isNull():
                it.setIcon(icons[media_id])
            self.model.appendRow(it)

    def set_icon(self, media_id: str, icon: QIcon) -> None:
        for r in range(self.model.rowCount()):
            it = self.model.item(r)
            if it.data(MEDIA_ID_ROLE) == media_id:
                it.setIcon(icon)

    def has_icon(self, media_id: str) -> bool:
        for r in range(self.model.rowCount()):
            it = self.model.item(r)
            if it.data(MEDIA_ID_ROLE) == media_id:
                return not it.icon().isNull()
        return False

    def ids(self) -> list[str]:
        return [self.model.item(r).data(MEDIA_ID_ROLE) for r in range(self.model.rowCount())]

    def selected_ids(self) -> list[str]:
        return [i.data(MEDIA_ID_ROLE) for i in self.view.selectionModel().selectedIndexes()]


def sample_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
