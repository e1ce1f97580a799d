"""The timeline's edits by hand, turned into project changes: what the timeline view asks for when a drag ends
(move, trim) and Edit ▸ Split at playhead. Each is one undoable step on the document's stack, built by
app/media/timeline_edits.py (which clamps it to what the clip's media allows); a request that would change
nothing pushes nothing, so the undo history holds only real edits.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject

from app.media.errors import ProjectError
from app.media.timeline_edits import GeneratedVersionsError, min_duration, move_edit, split_edit, trim_edit
from app.ui.document import ProjectDocument
from app.ui.messages import INFO, WARNING
from app.ui.timeline import TimelineView


class TimelineEditing(QObject):
    def __init__(self, document: ProjectDocument, view: TimelineView, say: Callable[[str, str], None]) -> None:
        super().__init__(view)
        self.document = document
        self.view = view
        self.say = say  # tells the user why an edit was not made
        view.move_requested.connect(self.move)
        view.trim_requested.connect(self.trim)
        document.changed.connect(self._follow_frame_rate)
        document.reset.connect(self._follow_frame_rate)
        self._follow_frame_rate()

    def move(self, clip_id: str, track: str, start: float) -> None:
        self._push(lambda project: move_edit(project, clip_id, start, track))

    def trim(self, clip_id: str, edge: str, seconds: float) -> None:
        self._push(lambda project: trim_edit(project, clip_id, edge, seconds))

    def split_at_playhead(self) -> bool:
        """Split the selected clips at the playhead, or with nothing selected, every clip under it. A selection is
        never passed over for the clips around it: selecting a clip puts the playhead at its start, and S then
        split the clip on the other track that the playhead crossed, unasked. False (and a message) when nothing
        is split."""
        self.document.settle()  # the words just typed for a clip go into both halves
        project = self.document.project
        t = self.view.playhead
        chosen = [v for v in self.view.clips if v.id in set(self.view.selected)]
        ids = [v.id for v in chosen] if chosen else [c.id for c in self.view.clips if c.start < t < c.end]
        try:
            change = split_edit(project, ids, t) if ids else None
        except ProjectError as e:  # a clip there has generated versions (app/media/timeline_edits.py)
            self.say(str(e), WARNING)
            return False
        if change is None:
            shortest = min_duration(project)
            near = [v for v in chosen if v.start <= t <= v.end]
            if near:  # on the clip, within a frame of its start or end: nothing there to split off
                self.say(f"The playhead is within a frame ({shortest:.3g} s) of a selected clip's start or end: "
                         f"move it further in to split there.")
            elif chosen:
                self.say("The playhead is not on a selected clip: move it inside one to split it there.")
            else:
                self.say("Put the playhead inside a clip to split it there.")
            return False
        self.document.push(change)
        return True

    def _push(self, build: Callable) -> None:
        try:
            change = build(self.document.project)
        except GeneratedVersionsError as e:  # refused: the clip's versions were made from its start
            self.say(str(e), WARNING)
            return
        except ProjectError as e:  # the clip went away mid-drag (an undo, a job's result): nothing to do
            self.say(str(e), INFO)
            return
        if change is not None:
            self.document.push(change)

    def _follow_frame_rate(self, *_args) -> None:
        # The view previews trims with the same shortest length the change will keep.
        self.view.frame_seconds = min_duration(self.document.project)
