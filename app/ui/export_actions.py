"""Exports from the studio: a still (PNG/JPEG), a clip (H.264 MP4), the video track (H.264 MP4).

Each export runs in the thread pool behind a non-modal progress dialog that can cancel it; an
export writes through app.media.export, which never leaves a partial file and never replaces a
file the user did not choose in the Save dialog.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, QThreadPool, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QProgressDialog

from app.media import project_file as pf
from app.media.errors import ExportCancelled, ExportError, MediaError, ProjectError, SoundError
from app.media.project import Project
from app.ui.messages import ERROR, INFO, WARNING
from app.ui.workers import run_task


class ExportActions(QObject):
    export_done = Signal(str)  # the path written

    def __init__(self, window: Any, say: Callable[[str, str], None]) -> None:
        super().__init__(window)
        self.window = window
        self.say = say
        self.pool = QThreadPool.globalInstance()
        self.exporting = False
        self.cancel_event: threading.Event | None = None

    @property
    def project(self) -> Project:
        return self.window.document.project

    def _save_dialog(self, title: str, filters: str, suffix: str, then: Callable[[str], None]) -> QFileDialog:
        dlg = QFileDialog(self.window, title, "", filters)
        dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dlg.setDefaultSuffix(suffix)
        # A name typed without an ending gets the chosen filter's (JPEG chosen, "photo" is photo.jpg, not .png).
        dlg.filterSelected.connect(lambda chosen: dlg.setDefaultSuffix(_filter_suffix(chosen) or suffix))
        dlg.fileSelected.connect(then)
        dlg.open()  # non-blocking: no nested event loop
        return dlg

    def _named_mp4(self, path: str) -> bool:
        """A clip is written as H.264 MP4: a name typed with another ending (x.gif) is refused, not given an
        MP4 under a name that promises something else."""
        if Path(path).suffix.lower() == ".mp4":
            return True
        ending = Path(path).suffix or "no ending"
        self.say(f"Clips are exported as H.264 MP4: name the file .mp4 ({Path(path).name} has {ending}).", ERROR)
        return False

    # ---------------------------------------------------------------- still
    def export_still_dialog(self) -> QFileDialog:
        return self._save_dialog("Export still", "PNG (*.png);;JPEG (*.jpg *.jpeg)", "png", self.export_still)

    def export_still(self, path: str) -> None:
        """The frame on screen (the selected clip's active version under the playhead), at full size:
        decoded again from its file in the pool, not the viewer's bounded copy."""
        source = self.window.frame_source()
        if source is None:
            self.say("Select a clip first: there is no frame to export.", ERROR)
            return
        from app.media.export import export_image
        from app.media.generation_info import read_generation_info, write_png
        from app.media.probe import load_image, read_frame
        file, kind, index = source

        def job(report: Any, cancel: Any) -> None:
            frame = load_image(file) if kind == "image" else read_frame(file, index)
            # A generated still's recipe goes with it into a PNG, so the export alone can make it again (import it:
            # "Use these settings again"), as the CLI's PNGs do.
            info = read_generation_info(file) if kind == "image" and Path(path).suffix.lower() == ".png" else None
            if info is not None:
                write_png(frame, path, info)
            else:
                export_image(frame, path, overwrite=True)
        self._run(f"Exporting {Path(path).name}", job, path)

    # ---------------------------------------------------------------- clip
    def export_clip_dialog(self) -> None:
        self._save_dialog("Export clip", "H.264 MP4 (*.mp4)", "mp4", self.export_clip)

    def export_clip(self, path: str, clip_id: str | None = None) -> None:
        """The clip's active version (its trimmed segment for the original) as an H.264 MP4, with the sound
        of the clip's source when it has one and the version keeps its timing (the original, a video edit:
        project_file.clip_audio)."""
        if not self._named_mp4(path):
            return
        from app.media.export import check_media_files, clip_frames, clip_media, export_video, fit_frame
        from app.media.probe import load_image
        studio = self.window.studio
        clip = self.project.clip(clip_id) if clip_id else studio.primary_clip()
        if clip is None:
            self.say("Select a clip to export.", ERROR)
            return
        version = clip.active
        item = self.project.media_item(version.media_id)
        file = pf.media_path(self.window.work_path(), item)
        fps = item.fps or self.project.settings.fps
        note = ""
        if item.kind == "image":
            n = max(1, int(round(clip.duration * fps)))

            def frames():  # a still held for the clip's duration
                picture = load_image(file)
                for _ in range(n):
                    yield picture
        else:
            # As the clip plays (project_file.version_frame): a video edit shorter than the clip goes on
            # with what it edited; frames of another size are fitted to the largest shown.
            work = self.window.work_path()
            snapshot = Project.from_dict(self.project.to_dict())  # read in the export's thread: edits may go on
            clip, version = snapshot.clip(clip.id), snapshot.clip(clip.id).active
            # The clip's length, but no longer than its files reach: a generated version (or an edit of
            # one) shorter than the clip is exported as long as it is, never with its last frame held.
            reach = max(length for _, length in pf.chain_spans(snapshot, clip, version))
            n = max(1, min(int(round(clip.duration * fps)), int(reach * fps + 1e-6)))
            if n < int(round(clip.duration * fps)):  # said, since the viewer and the track hold the last frame
                note = (f" It is {n / fps:.2f} s, as long as this version: the clip lasts {clip.duration:.2f} s on "
                        f"the timeline, where its last frame is held for the rest (as Export video track renders it).")
            shown = clip_media(snapshot, clip, version, fps, n)
            try:
                check_media_files(snapshot, work, shown, "export")
            except ExportError as e:
                self.say(str(e), ERROR)
                return
            # One size for the whole clip: its own footage's for an edit of it (clip_frames stretches the
            # edit back to the footage's shape), else the largest file shown.
            root = pf.chain_spans(snapshot, clip, version)[-1][0]
            biggest = root if root.id == clip.media_id and root.kind == "video" else \
                max(shown, key=lambda m: m.width * m.height)

            def frames():
                for frame in clip_frames(snapshot, work, clip, version, fps, 0, n):
                    yield fit_frame(frame, biggest.width, biggest.height)
        audio = pf.clip_audio(self.project, self.window.work_path(), clip.id)
        source, start = (str(audio[0]), audio[1]) if audio is not None else (None, 0.0)

        def export(report: Any, cancel: threading.Event) -> str:
            """The clip with its source's sound; a sound that cannot be decoded (a damaged or odd audio stream)
            does not cost the user the export: the clip is written again without it, and the message says so."""
            try:
                export_video(frames(), path, fps, progress=report, cancel=cancel, audio_source=source,
                             audio_start=start, total=n, overwrite=True)
                return ""
            except SoundError as e:
                export_video(frames(), path, fps, progress=report, cancel=cancel, total=n, overwrite=True)
                return f" It has no sound: {str(e)[0].lower()}{str(e)[1:]}"

        self._run(f"Exporting {Path(path).name}", export, path, note)

    # ---------------------------------------------------------------- track
    def export_track_dialog(self) -> None:
        self._save_dialog("Export video track", "H.264 MP4 (*.mp4)", "mp4", self.export_track)

    def export_track(self, path: str) -> None:
        """The video track (stills placed on it included, held for their duration). Clips on the image
        track are not part of the video: the message after the export says how many were left out."""
        if not self._named_mp4(path):
            return
        from app.media.export import export_timeline, left_out_of_track
        snapshot = Project.from_dict(self.project.to_dict())
        work = self.window.work_path()
        left_out, with_sound = left_out_of_track(snapshot, work)
        note = (f" {left_out} clip(s) on the image track are not in it: the video track is what plays."
                if left_out else "")
        if with_sound:  # the track is rendered silent for now (app/media/export.export_timeline): say so
            note += (f" It has no sound: the track export does not carry sound yet ({with_sound} clip(s) on it have "
                     f"some); Export clip keeps a clip's sound.")
        self._run(f"Exporting the video track to {Path(path).name}",
                  lambda report, cancel: export_timeline(snapshot, work, path, progress=report, cancel=cancel,
                                                         overwrite=True), path, note)

    def _in_media_folder(self, path: str) -> bool:
        """An export into the project's media folder is refused, said: the files there are the clips' own
        footage and versions (imports are copied there, so a user browsing it may well pick one), and
        writing over one would replace a version the project still plays, beyond undo."""
        folder = pf.media_dir(self.window.work_path()).resolve()
        if folder not in Path(path).resolve().parents:
            return False
        self.say(f"{Path(path).name} would be written into the project's media folder ({folder.name}), which holds "
                 f"its clips' own footage and versions: export it somewhere else.", ERROR)
        return True

    # ---------------------------------------------------------------- running one
    def _run(self, title: str, job: Any, path: str, note: str = "") -> None:
        """Run `job(report, cancel)` in the pool with a non-modal progress dialog that can cancel it. What the job
        returns, when it is text, is added to the message that says it is done."""
        if self.exporting:
            self.say("An export is already running; wait for it or cancel it.", WARNING)
            return
        if self._in_media_folder(path):
            return
        self.exporting = True
        cancel = threading.Event()
        self.cancel_event = cancel
        dlg = QProgressDialog(title, "Cancel", 0, 0, self.window)
        dlg.setWindowModality(Qt.WindowModality.NonModal)
        dlg.setMinimumDuration(300)
        dlg.canceled.connect(cancel.set)

        def progress(value: Any) -> None:
            done, total = value
            if total:
                dlg.setMaximum(int(total))
                dlg.setValue(min(int(done), int(total)))

        def finish(ok: bool, message: str, level: str) -> None:
            self.exporting = False
            self.cancel_event = None
            dlg.reset()
            dlg.hide()
            dlg.deleteLater()
            self.say(self.window.studio.as_imported(message), level)  # the files as the user knows them
            if ok:
                self.export_done.emit(path)

        def failed(e: BaseException) -> None:
            if isinstance(e, ExportCancelled) or cancel.is_set():
                finish(False, "Export cancelled; nothing was written.", WARNING)
            elif isinstance(e, ExportError) and str(e).startswith("Export of "):
                finish(False, str(e), ERROR)  # it says what failed already
            elif isinstance(e, (ExportError, MediaError, ProjectError)):
                finish(False, f"Export failed: {e}", ERROR)
            else:
                finish(False, f"Export failed: {type(e).__name__}: {e}", ERROR)

        run_task(self.pool, lambda report: job(lambda d, t=None: report((d, t)), cancel),
                 on_done=lambda out: finish(True, f"Exported {Path(path).name}.{note}{_said(out)}",
                                            WARNING if note or _said(out) else INFO),
                 on_error=failed, on_progress=progress, owner=self)

    def cancel(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()


def _said(result: Any) -> str:
    """What an export job adds to its done message: its text result (others return the file they wrote)."""
    return result if isinstance(result, str) else ""


def _filter_suffix(name_filter: str) -> str:
    """The first ending a file dialog's filter names ("JPEG (*.jpg *.jpeg)" -> "jpg"); "" when it names none."""
    import re

    found = re.search(r"\*\.(\w+)", name_filter)
    return found.group(1) if found else ""
