"""The observable project layer the widgets bind to.

`ProjectDocument` owns the `app.media` Project and a QUndoStack. Every change to the project goes
through `push(change)`, which wraps app.media's JSON change record in a `ChangeCommand`
(redo = apply(change), undo = apply(invert(change))), so undo/redo covers every edit and the record
log can be saved with the project. Widgets never mutate the project: they listen to `changed`.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from app.media.project import Project, files_named, invert

_LABELS = {
    "add_media": "Import media", "add_clip": "Add clip", "remove_clip": "Remove clip", "move_clip": "Move clip",
    "trim_clip": "Trim clip", "set_active_version": "Show version", "set_accepted": "Judge version",
    "set_clip_instruction": "Edit instruction", "set_setting": "Change setting", "rename_project": "Rename project",
    "remove_version": "Remove version", "set_target_words": "Edit instruction",
}


TYPED_ID = 1  # ChangeCommand.id of typed words


def change_label(change: dict) -> str:
    if change.get("kind") == "batch":
        return str(change.get("label") or "Change").capitalize()
    return _LABELS.get(change.get("kind", ""), str(change.get("kind", "Change")))


class ChangeCommand(QUndoCommand):
    """One undo step = one app.media change record (a batch counts as one)."""

    def __init__(self, document: "ProjectDocument", change: dict, label: str | None = None) -> None:
        super().__init__(label or change_label(change))
        self.document = document
        self.change = change

    def redo(self) -> None:
        self.document._apply(self.change)

    def undo(self) -> None:
        self.document._apply(invert(self.change))

    def id(self) -> int:  # noqa: A003 - Qt's name
        """Words typed for a clip (StudioModel.store_typed, one change per pause) merge into one undo step with
        the next pause's, as an editor's typing does; Qt never merges into the step a save made clean."""
        return TYPED_ID if self.change.get("typed") else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, ChangeCommand) or any(other.change.get(k) != self.change.get(k)
                                                          for k in ("kind", "clip_id", "target")):
            return False
        self.change = {**self.change, "new": other.change["new"]}
        # Typed and then deleted again: no step at all (Qt drops an obsolete command), not an empty one.
        self.setObsolete(self.change["old"] == self.change["new"])
        return True


class ProjectDocument(QObject):
    changed = Signal(dict)  # the change record just applied (undo sends the inverse)
    reset = Signal()  # a different project was loaded: rebuild everything
    path_changed = Signal(str)

    def __init__(self, project: Project | None = None, path: str | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project or Project()
        self.path: str | None = path
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        # Called before any change, undo or redo (StudioModel.store_typed: words typed for a clip and not yet
        # stored go in first, so an undo takes back the typing, and a removal comes after the words it removes).
        self.before_change: list = []
        self._flushing = False
        self.applying = False  # a change is being applied and announced: nothing may be pushed from inside it

    def _on_clean_changed(self, _clean: bool) -> None:
        # A bound method (not a lambda) so Qt drops the connection when the document is deleted.
        self.path_changed.emit(self.path or "")

    # -- changes -----------------------------------------------------------------------------------
    def push(self, change: dict, label: str | None = None) -> None:
        """Apply `change` as one undoable step (QUndoStack.push calls redo, which applies it)."""
        if self.applying:  # pushed from a handler of another change (Qt would misplace the stack's index)
            raise RuntimeError("a project change was pushed while another was being applied")
        self.settle()
        self.undo_stack.push(ChangeCommand(self, change, label))

    def undo(self) -> None:
        self.settle()
        self.undo_stack.undo()

    def redo(self) -> None:
        self.settle()
        self.undo_stack.redo()

    def settle(self) -> None:
        """Run the before-change hooks now. An action that reads the project to build its change (a removal keeps
        the clip it removes, to put it back on undo) calls this first, so the change holds the words just typed."""
        if self._flushing:
            return
        self._flushing = True
        try:
            for hook in self.before_change:
                hook()
        finally:
            self._flushing = False

    def _apply(self, change: dict) -> None:
        self.applying = True
        try:
            self.project.apply(change)
            # Kept in the project so a saved project carries its edit log (OpenShot's lesson).
            self.project.history.append(change)
            del self.project.history[:-500]  # the log is for inspection, not unbounded growth
            self.changed.emit(change)
        finally:
            self.applying = False

    # -- whole-project swaps ------------------------------------------------------------------------
    def replace(self, project: Project, path: str | None) -> None:
        """A new/opened project: the old undo history does not apply to it."""
        self.project = project
        self.path = path
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self.reset.emit()
        self.path_changed.emit(path or "")

    def mark_saved(self, path: str) -> None:
        self.path = path
        self.undo_stack.setClean()
        self.path_changed.emit(path)

    def undo_files(self) -> tuple[list[dict], list[str]]:
        """The media items and plan files the undo stack's steps name: an undo or redo can bring them back, so a
        save to a new folder copies them too (project_file.save_project's `undo_files`)."""
        items: list[dict] = []
        plans: list[str] = []
        for i in range(self.undo_stack.count()):
            command = self.undo_stack.command(i)
            if isinstance(command, ChangeCommand):
                more_items, more_plans = files_named(command.change)
                items += more_items
                plans += more_plans
        return items, plans

    @property
    def dirty(self) -> bool:
        return not self.undo_stack.isClean()

    def clip_kind(self, clip_id: str) -> str:
        clip = self.project.clip(clip_id)
        return self.project.media_item(clip.active.media_id).kind

    def describe(self) -> dict[str, Any]:
        return self.project.to_dict()
