"""A job that ran out of memory is offered again with more offload: the same request, the plan the engine kept,
the model re-placed with the memory options the engine named, and the settings changed to match so that the
next launch does not run out again. The project is never touched until the retry's result is stored, like any
other result."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.ui.messages import WARNING
from app.ui.studio_state import Job, JobState


class MemoryRetry(QObject):
    offered = Signal(str, str, object)  # message, button text, action (a callable): the window's banner shows it

    def __init__(self, studio: Any) -> None:
        super().__init__(studio)
        self.studio = studio
        self._failures: dict[int, Any] = {}  # job id -> app.engine.out_of_memory.OutOfMemory

    def remember(self, job_id: int, failure: Any) -> None:
        """The engine's `out_of_memory`, which comes just before the job's `failed`."""
        self._failures[job_id] = failure

    def offer(self, job: Job, message: str) -> bool:
        """`job` failed with `message`: when it ran out of memory and more offload is left, offer the retry and
        return True; else False (the studio reports the failure as it reports any)."""
        failure = self._failures.pop(job.id, None)
        if failure is None or failure.retry_options is None:
            return False
        self.offered.emit(f"Job #{job.id} failed: {message}", f"Retry with {failure.retry_words}",
                          lambda: self.retry(job, failure))
        return True

    def retry(self, job: Job, failure: Any) -> int | None:
        """Re-place the model with the failure's retry options and run the same request with its kept plan; the
        result becomes a version of the same clip. Returns the new job id."""
        studio = self.studio
        if not studio.may_run_again(job):
            return None
        studio.engine.set_memory_options(failure.retry_options, failure.slot)
        kept = self._keep_in_settings(failure)
        # Object edits (move, resize, delete, add) are planned by the model from the plan's draft: the kept plan
        # is the unedited one, and planning again is what makes an added object's states.
        replans = any(e.edits_objects for e in failure.request.plan_edits)
        plan = None if replans else failure.plan
        new_id = studio.engine.submit(failure.request, plan=plan)
        studio.jobs[new_id] = replace(job, id=new_id, state=JobState.QUEUED, step=0, total=0)
        studio.jobs_changed.emit()
        reused = "its plan reused" if plan is not None else "planned again"
        studio.say(f"Retrying job #{job.id} as #{new_id} with {failure.retry_words} ({reused}).{kept}")
        return new_id

    def _keep_in_settings(self, failure: Any) -> str:
        """What the retry changed (the offload, or VAE tiling and slicing) becomes the settings (Settings ▸ Memory);
        the rest stays as it was, auto included. Returns what to add to the message."""
        settings, before, after = self.studio.settings, failure.options, failure.retry_options
        for name in ("offload", "vae_tiling", "vae_slicing"):
            if getattr(after, name) != getattr(before, name):
                setattr(settings, name, getattr(after, name))
        try:
            settings.save()
        except OSError as e:
            self.studio.say(f"The memory settings could not be saved: {e}", WARNING)
            return ""
        return f" Settings ▸ Memory: {failure.retry_words} from now on."
