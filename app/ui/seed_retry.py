"""A video edit or a reference clip that came back short of its plan (the check found its clip off the drafted
tracks), or an edit that came back unchanged, is offered again with the next free seed: one click instead of
"another seed may make it" and a trip to the Seed box. The same request (the same source version or stills, words
and settings) is planned again with the new seed, so its draft is the new seed's too; the result is one more
version of the same clip (a new clip for a reference clip made as a new one), as any result is."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.request import Task
from app.ui.messages import WARNING
from app.ui.studio_state import TASK_NAMES, Job, JobState, shortened


class SeedRetry(QObject):
    # message, button text, action (a callable), whether it still holds (a callable: its clip is still there): the
    # window's banner shows it
    offered = Signal(str, str, object, object)

    def __init__(self, studio: Any) -> None:
        super().__init__(studio)
        self.studio = studio

    def offer(self, job: Job, message: str) -> bool:
        """`job`, an image or video edit or a reference clip, finished with `message` saying it fell short: offer the
        next free seed. Not for one whose plan the user changed by hand (planned again, the change would land on
        another draft)."""
        request = job.request
        if request.task not in (Task.IMAGE_EDIT, Task.VIDEO_EDIT, Task.REFERENCE_TO_VIDEO) or request.plan_edits \
                or self.studio.engine is None:
            return False
        seed = self.studio.free_seed(job.clip_id, request, request.seed + 1)
        self.offered.emit(message, f"Try seed {seed}", lambda: self.retry(job, seed),
                          lambda: job.clip_id is None or self.studio.has_clip(job.clip_id))
        return True

    def retry(self, job: Job, seed: int) -> int | None:
        """Run `job`'s request again with `seed` (the next free one if a job took it since): a new version of the
        same clip, edited from the same version. Returns the new job id, None when refused (and said)."""
        studio = self.studio
        if not studio.may_run_again(job):
            return None
        if job.clip_id is not None and not studio.has_clip(job.clip_id):
            studio.say(f"The clip job #{job.id} edited was removed; it is not edited again.", WARNING)
            return None
        request = replace(job.request, seed=studio.free_seed(job.clip_id, job.request, seed))
        new_id = studio.engine.submit(request)
        desc = f"{TASK_NAMES[request.task]}: {shortened(request.instruction)} (seed {request.seed})"
        studio.jobs[new_id] = replace(job, id=new_id, request=request, description=desc, state=JobState.QUEUED,
                                      step=0, total=0, written_to="")
        studio.jobs_changed.emit()
        studio.say(f"Queued job #{new_id}: {desc}, job #{job.id} again with another seed.")
        return new_id
