"""Project files in the studio: New, Open, Save, Save As, autosave and crash recovery.

Nothing is ever lost silently: New, Open and Quit with unsaved changes ask first (Save / Discard /
Cancel); a recovery copy is written within `AUTOSAVE_DELAY_S` of a change (off the GUI thread) and
offered at the next launch if the studio did not close cleanly; a project that fails to open leaves
the open one as it was.
"""
from __future__ import annotations

import enum
import hashlib
import os
import time
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, QThreadPool, QTimer
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from app.media import project_file as pf
from app.media.errors import ProjectError
from app.media.project import Project
from app.ui.document import ProjectDocument
from app.ui.messages import ERROR, INFO, WARNING
from app.ui.workers import run_task

AUTOSAVE_DELAY_S = 10  # a change is in a recovery copy within this long (the setting can make it longer)


class SaveChoice(enum.Enum):
    SAVE = "save"
    DISCARD = "discard"
    CANCEL = "cancel"


def ask_save_changes(parent: QWidget, name: str) -> SaveChoice:
    """The modal Save / Discard / Cancel question (tests answer it by replacing this function)."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes", f"Save the changes to '{name}'?",
                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                      | QMessageBox.StandardButton.Cancel, parent)
    box.setInformativeText("If you don't save, your changes since the last save are lost.")
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    answer = box.exec()
    return {QMessageBox.StandardButton.Save: SaveChoice.SAVE,
            QMessageBox.StandardButton.Discard: SaveChoice.DISCARD}.get(QMessageBox.StandardButton(answer),
                                                                       SaveChoice.CANCEL)


def ask_drop_jobs(parent: QWidget, count: int) -> bool:
    """Whether to stop `count` queued or running generation jobs, whose results belong to the project being
    closed (tests answer it by replacing this function)."""
    jobs = "A generation job is" if count == 1 else f"{count} generation jobs are"
    box = QMessageBox(QMessageBox.Icon.Warning, "Jobs still running", f"{jobs} still queued or running.",
                      QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, parent)
    box.button(QMessageBox.StandardButton.Discard).setText("Stop them")
    box.button(QMessageBox.StandardButton.Cancel).setText("Keep working")
    box.setInformativeText("Their results belong to this project: stopped now, they are not made. Keep working "
                           "to let them finish first.")
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    return QMessageBox.StandardButton(box.exec()) == QMessageBox.StandardButton.Discard


def ask_stop_export(parent: QWidget) -> bool:
    """Whether to stop a running export as the studio quits (tests answer it by replacing this function)."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Export still running", "An export is still running.",
                      QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, parent)
    box.button(QMessageBox.StandardButton.Discard).setText("Stop it")
    box.button(QMessageBox.StandardButton.Cancel).setText("Keep working")
    box.setInformativeText("Quitting now stops it and its file is not written. Keep working to let it finish.")
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    return QMessageBox.StandardButton(box.exec()) == QMessageBox.StandardButton.Discard


def ask_replace_changed(parent: QWidget, name: str) -> bool:
    """Whether to save over a project file that changed on disk since this window opened or saved it (tests answer
    it by replacing this function)."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Project changed on disk",
                      f"'{name}' was changed on disk since it was opened here.",
                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel, parent)
    box.button(QMessageBox.StandardButton.Save).setText("Replace it")
    box.setInformativeText("Another window or program saved it. Replacing it loses what was saved there; Cancel "
                           "and use Save As to keep both.")
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    return QMessageBox.StandardButton(box.exec()) == QMessageBox.StandardButton.Save


def _disk_stamp(path: str | Path | None) -> str | None:
    """The project file's content as a SHA-256 digest, None when there is none (or it cannot be read). Content,
    not modification time and size: another window's save of the same length within the file system's time
    resolution (or a sync tool that restores the time) would pass a (mtime, size) check unasked. Project files
    are JSON of a few kB to a few MB, so reading one at open and at each save costs milliseconds."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def choose_save_path(parent: QWidget) -> str | None:
    """Where to save an untitled project, asked inside the Save / Discard / Cancel flow (modal). The dialog adds
    the ending itself, so its "Replace?" question sees the name that is written (a name typed without it and the
    ending added afterwards replaced an existing project unasked)."""
    dlg = QFileDialog(parent, "Save project as", "", f"MetaCanvas projects (*{pf.PROJECT_SUFFIX})")
    dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dlg.setDefaultSuffix(pf.PROJECT_SUFFIX.lstrip("."))
    if not dlg.exec() or not dlg.selectedFiles():
        return None
    return dlg.selectedFiles()[0]


class ProjectActions(QObject):
    def __init__(self, window: Any, document: ProjectDocument, say: Callable[[str, str], None],
                 data_root: Path | None, recovery_root: Path | None) -> None:
        super().__init__(window)
        self.window = window
        self.document = document
        self.say = say
        self.data_root = data_root
        self.recovery_root = recovery_root
        self.pool = QThreadPool.globalInstance()
        self.pending_recoveries: list[pf.Recovery] = []
        self._warned_keep = False  # said once a session: a crashed copy that could not be moved aside
        self._saving_autosave = False
        self._resave_to: str | None = None  # saved while kept results were written: saved again once they land
        self._resave_connected = False
        self._opened_stamp: str | None = None  # the project file as this window last opened or saved it
        self.autosave_timer = QTimer(self, singleShot=True)
        self.autosave_timer.timeout.connect(self.autosave)
        document.changed.connect(lambda _change: self._schedule_autosave())

    # ---------------------------------------------------------------- paths
    def work_path(self) -> Path:
        """Where the project's media folder is: its saved path, or a per-project untitled folder."""
        if self.document.path:
            return Path(self.document.path)
        root = self.data_root / "untitled" if self.data_root else None
        return pf.untitled_project_path(self.document.project, root)

    def display_name(self) -> str:
        return Path(self.document.path).name if self.document.path else "Untitled"

    # ---------------------------------------------------------------- asking before losing work
    def confirm_discard(self) -> bool:
        """True when the open project may be replaced or closed: no job of it is queued or running (or the
        user chose to stop them), and it has no unsaved changes, or the user saved them, or chose to discard
        them."""
        studio = getattr(self.window, "studio", None)
        if studio is not None:
            studio.finish_storing()  # results already made land first: they are the user's work
        running = len(studio.active_jobs()) if studio is not None else 0
        if running and not ask_drop_jobs(self.window, running):
            return False
        if self._changes_settled():
            if running:  # stopped only once the project really goes: a Cancel above leaves them running
                studio.drop_jobs()
            return True
        return False

    def may_quit_while_exporting(self) -> bool:
        """True when no export runs, or the user chose to stop it (a quit stops it: its file is not written)."""
        exports = getattr(self.window, "exports", None)
        return not (exports is not None and exports.exporting) or ask_stop_export(self.window)

    def _store_typed(self) -> None:
        """Words typed for a clip whose pause has not come yet are the project's too (StudioModel.store_typed)."""
        studio = getattr(self.window, "studio", None)
        if studio is not None:
            studio.store_typed()

    def _changes_settled(self) -> bool:
        """No unsaved changes, or the user saved them (where asked) or chose to discard them."""
        self._store_typed()
        studio = getattr(self.window, "studio", None)
        # Results whose write into the project folder failed are unsaved work too (saved, they land in it).
        if not self.document.dirty and not (studio is not None and studio.unsaved_results()):
            return True
        choice = ask_save_changes(self.window, self.display_name())
        if choice is SaveChoice.CANCEL:
            return False
        if choice is SaveChoice.DISCARD:
            self._clear_recovery()  # a deliberate discard is not a crash: nothing to offer next time
            if studio is not None:
                studio.forget_unsaved()
            return True
        path = self.document.path or choose_save_path(self.window)
        if path and not self.save_as(path) and self.document.path:
            # Its own file cannot be written (a read-only or full folder): asked where else, once.
            path = choose_save_path(self.window)
            if path and not self.save_as(path):
                return False
        elif not path:
            return False
        if studio is not None:
            if not studio.finish_storing() or studio.unsaved_results():
                return False  # a kept result still not written (its error and Save As are showing): not closed
            if self.document.dirty:
                return self.save_as(path)  # kept results written into the saved folder just now: saved with it
        return True

    # ---------------------------------------------------------------- new / open / save
    def new_project(self) -> bool:
        if not self.confirm_discard():
            return False
        self.document.replace(Project(), None)
        self._opened_stamp = None
        self.say("New project.", INFO)
        return True

    def open_dialog(self) -> None:
        dlg = QFileDialog(self.window, "Open project", "", f"MetaCanvas projects (*{pf.PROJECT_SUFFIX})")
        dlg.setFileMode(QFileDialog.FileMode.ExistingFile)
        dlg.fileSelected.connect(self.open_project)
        dlg.open()

    def open_project(self, path: str) -> bool:
        """Read and check the file first: one that cannot be opened leaves the open project untouched. Read again
        once the open one may go: answering "Save" to the question may have just written this very file."""
        try:
            path = str(pf.project_file(path))  # a folder holding one project: that project's file
            pf.open_project(path)
            if not self.confirm_discard():
                return False
            project = pf.open_project(path)
        except ProjectError as e:
            self.say(f"Could not open the project: {e}", ERROR)
            return False
        # A project opened through a symbolic link to the real file is the real file: its media folder is beside
        # that, and a save through the link replaced the link with a copy, the real file left old.
        path = os.path.realpath(path) if Path(path).is_symlink() else path
        self.document.replace(project, str(Path(path)))
        self._opened_stamp = _disk_stamp(path)
        missing = pf.missing_media(project, path)
        if missing:
            self.say(f"{len(missing)} media file(s) are missing from the project folder: "
                     + ", ".join(m.name for m in missing[:5]), WARNING)
        self.window.settings.add_recent(path)
        self.say(f"Opened {Path(path).name}.", INFO)
        self._offer_recovery_of(Path(path))  # last: a warning shown after it would take its button away
        return True

    def save(self) -> bool:
        if not self.document.path:
            self.save_as_dialog()
            return False
        return self.save_as(self.document.path)

    def save_as_dialog(self) -> None:
        dlg = QFileDialog(self.window, "Save project as", "", f"MetaCanvas projects (*{pf.PROJECT_SUFFIX})")
        dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dlg.setDefaultSuffix(pf.PROJECT_SUFFIX.lstrip("."))
        dlg.fileSelected.connect(self.save_as)
        dlg.open()

    def save_as(self, path: str) -> bool:
        """Save synchronously: a project document is small JSON and the user expects 'saved' to mean
        saved. Media copies for a first save / Save As are file copies of what was imported."""
        self._store_typed()
        # A name the dialog confirmed is replaced if it is there (the dialog asked); one to which the project's
        # ending is added here ("plan.v2" -> "plan.v2.mcproj", which Qt's default ending leaves alone) was never
        # asked about, and an existing file of that name is kept (said; choose another name).
        confirmed = Path(path).suffix == pf.PROJECT_SUFFIX
        if not confirmed and Path(path + pf.PROJECT_SUFFIX).exists():
            self.say(f"'{Path(path).name}{pf.PROJECT_SUFFIX}' already exists and was not asked about: choose another "
                     f"name, or pick that file in the dialog to replace it. Nothing was saved.", ERROR)
            return False
        own = self.document.path is not None and Path(path).resolve() == Path(self.document.path).resolve()
        if own and self._opened_stamp is not None and _disk_stamp(path) not in (self._opened_stamp, None) \
                and not ask_replace_changed(self.window, Path(path).name):
            # Two windows (or the studio and a sync tool) on one file: the last save would silently win.
            self.say(f"Not saved: '{Path(path).name}' was changed on disk since it was opened here. Use Save As to "
                     f"keep both.", WARNING)
            return False
        try:
            written = pf.save_project(self.document.project, path, media_from=self.work_path(), overwrite=confirmed,
                                      undo_files=self.document.undo_files())
        except ProjectError as e:
            self.say(str(e), ERROR)
            return False
        self._clear_recovery()
        self.document.mark_saved(str(written))
        self._opened_stamp = _disk_stamp(written)
        studio = getattr(self.window, "studio", None)
        if studio is not None and studio.unsaved_results():
            # Into the folder just saved; once they have all landed, the project is saved again with them.
            self._resave_to = str(written)
            if not self._resave_connected:
                studio.result_stored.connect(self._save_kept_results)
                self._resave_connected = True
            studio.retry_unsaved()
        self.window.settings.add_recent(str(written))
        self.say(f"Saved {written.name}.", INFO)
        return True

    def _save_kept_results(self, _clip_id: str) -> None:
        """A result kept from a failed write landed after a save: once none is left being written or kept, the
        project is saved again, so the file the user just saved holds them (it was left marked changed)."""
        studio = self.window.studio
        if not self._resave_to or studio.writing_results() or studio.unsaved_results():
            return
        path, self._resave_to = self._resave_to, None
        if self.document.path == path and self.document.dirty:
            self.save_as(path)

    # ---------------------------------------------------------------- autosave and recovery
    def _schedule_autosave(self) -> None:
        minutes = self.window.settings.autosave_minutes
        if minutes > 0 and not self.autosave_timer.isActive():  # (autosave() skips a clean project)
            # Not restarted by later changes: a long editing burst is still saved every few seconds.
            self.autosave_timer.start(int(min(AUTOSAVE_DELAY_S, minutes * 60) * 1000))

    def autosave(self) -> None:
        """Write a recovery copy off the GUI thread; the snapshot is taken here, so it is consistent."""
        self._store_typed()
        if not self.document.dirty or self._saving_autosave:
            return
        snapshot = Project.from_dict(self.document.project.to_dict())
        path = self.document.path
        if not self._keep_pending_recovery(path, snapshot):
            return  # written over, a crashed session's copy would be lost: no autosave of this project then
        self._saving_autosave = True
        media_of = None if path else self.work_path()

        def done(target: Any) -> None:
            self._saving_autosave = False
            self.window.statusBar().showMessage(f"Autosaved a recovery copy ({Path(target).name}).", 4000)

        def failed(e: BaseException) -> None:
            self._saving_autosave = False
            self.say(f"Autosave failed: {e}", WARNING)
        run_task(self.pool, pf.write_recovery, snapshot, path, self.recovery_root, media_of,
                 on_done=done, on_error=failed, owner=self)

    def _pending_recovery_at(self, target: Path) -> pf.Recovery | None:
        """The crashed session's recovery copy, not yet taken, at `target` (a project's autosave path)."""
        return next((r for r in self.pending_recoveries if r.path == target), None)

    def _keep_pending_recovery(self, path: str | None, project: Project) -> bool:
        """This session's autosave of a project goes where a crashed session's copy of it waits to be taken:
        that copy is moved aside first, not overwritten. False when it could not be (a file lock): the caller
        then neither writes nor removes that path."""
        pending = self._pending_recovery_at(pf.autosave_path(path, project, self.recovery_root))
        if pending is None:
            return True
        try:
            pending.path = pf.set_aside_recovery(pending)
            return True
        except OSError as e:
            if not self._warned_keep:
                self._warned_keep = True
                self.say(f"The recovery copy of '{pending.name}' could not be kept apart ({e}): this project is "
                         f"not autosaved until it is recovered or the studio restarts.", WARNING)
            return False

    def _clear_recovery(self) -> None:
        """This session's own recovery copy of the open project goes (saved, cleanly closed or discarded); a
        crashed session's copy of it that the user has not taken is kept (moved aside)."""
        if not self._keep_pending_recovery(self.document.path, self.document.project):
            return
        try:
            pf.clear_recovery(self.document.path, self.document.project, self.recovery_root)
        except (OSError, ProjectError):
            pass  # a stale recovery copy is offered once more at worst; never worth failing a save

    def closing(self) -> bool:
        """Quit: ask about unsaved changes; a clean quit leaves no recovery copy to offer."""
        if not self.confirm_discard():
            return False
        self.autosave_timer.stop()
        if not self.document.dirty:
            self._clear_recovery()
        return True

    def check_recoveries(self) -> None:
        self.pending_recoveries = pf.find_recoveries(self.recovery_root)
        if self.pending_recoveries:
            r = self.pending_recoveries[0]
            when = time.strftime("%H:%M %d %b", time.localtime(r.saved_at))
            self.window.banner.show_action(f"The studio did not close cleanly: a recovery copy of '{r.name}' from "
                                           f"{when} has changes that were not saved.", "Recover",
                                           lambda: self.recover(r))

    def _offer_recovery_of(self, path: Path) -> None:
        """The project just opened has a crashed session's changes that were not saved: offer them (again) here,
        where the user is looking at the project without them."""
        try:
            here = path.resolve()
        except OSError:
            return
        r = next((r for r in self.pending_recoveries if r.project_path is not None and r.project_path == here), None)
        if r is not None:
            when = time.strftime("%H:%M %d %b", time.localtime(r.saved_at))
            self.window.banner.show_action(f"'{r.name}' has changes from {when} that were not saved (the studio did "
                                           f"not close cleanly); what is open is the project as last saved.",
                                           "Recover", lambda: self.recover(r), of_project=True)

    def recover(self, recovery: pf.Recovery) -> bool:
        try:
            project = pf.load_recovery(recovery)
        except ProjectError as e:
            self.say(str(e), ERROR)
            return False
        if not self.confirm_discard():
            return False
        # An untitled project's media folder is named by its id, which the copy keeps: its media are found.
        path = str(recovery.project_path) if recovery.project_path is not None else None
        self.document.replace(project, path)
        self._opened_stamp = _disk_stamp(path)  # the recovered work is meant to replace the file as it is now
        if recovery in self.pending_recoveries:  # taken: this session's autosaves and saves now stand for it
            self.pending_recoveries.remove(recovery)
        if recovery.path != pf.autosave_path(path, project, self.recovery_root):
            # Another studio's copy (each writes its own, tagged with its process) or one set aside: offered until
            # recovered; now it is, its work goes into this session's own recovery copy at once (the document is
            # unsaved), and the copy taken goes, so neither this session's save nor its clean close leaves it
            # behind to be offered again, older than what was saved.
            try:
                pf.write_recovery(project, path, self.recovery_root, None if path else self.work_path())
                recovery.path.unlink()
            except (OSError, ProjectError):
                pass  # offered again next launch at worst
        # Recovered changes are unsaved: mark the document dirty so Save is offered and autosave continues.
        self.document.undo_stack.resetClean()
        self.say(f"Recovered '{recovery.name}'. Save it to keep it.", INFO)
        return True
