"""Editing the plan on screen by hand: the studio's side of it (no widgets; app/ui/plan_edit_tool.py is the
viewer's).

The user's changes to the plan shown over the viewer (drag, resize, delete or add a drafted object; paint or
erase the canvas's strength; move a region of it) are core `PlanEdit`s. They live in the project
(`Project.plan_edits`, one entry per target: a clip, or "" for a new generation), so undo/redo, save and
reopen, and the recovery copy cover them. Each entry names the plan it edits (its base: a version's stored
plan, or the live plan of one instruction, task, seed and size), and is shown and generated only while that
plan is the one on screen: edits never land on a plan they were not made on.

What the viewer draws is the base plan with the edits applied here, without the model (`Plan.edited(...,
preview=True)`: objects' cells are moved; an added object is drafted). Generate sends the edits in the
request with the seed and settings of the plan that was edited, so the result differs from it only by the
edits; the engine's model plans the edited layout afresh, and the new version stores that plan beside the
request. For a clip, an edit of the canvas applies to the keyframe at the playhead.

"As planned vs as edited" is one click: the version made from the same request without the edits is found
among the clip's versions (made first when there is none and the task needs no input media) and the
viewer's A/B compares the two.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.request import GenerationRequest, PlanEdit, Task
from app.ui.messages import ERROR, INFO, WARNING
from app.ui.studio_state import Job, nearest_clip_length, shortened

LIVE, STORED = "live", "version"
_SETTINGS = ("seed", "steps", "guidance", "width", "height", "frames")  # what a stored plan's request fixes


class PlanEditing(QObject):
    shown_plan_changed = Signal(object, str)  # what the viewer draws (the plan with the edits), its caption
    compare_changed = Signal()  # the version the viewer's A/B compares the active one with changed

    def __init__(self, studio: Any) -> None:
        super().__init__(studio)
        self.studio = studio
        self.base: str | None = None  # the name of the plan on screen (None: no plan)
        self._base_settings: dict = {}  # the settings that plan was made with (seed, size, ...)
        self.shown_plan: Any = None
        self._compare: tuple[str, str, str] | None = None  # (clip, version shown as A, version shown as B)
        self._awaiting_planned: tuple[str, str] | None = None  # (clip, edited version) whose as-planned is queued
        self._preview: tuple[Any, list, Any] | None = None  # (base plan, edits, the plan with them): see _edited
        self._arrived_at: str | None = None  # the target whose entry's settings were last taken up
        self._landed: str | None = None  # the clip a result just landed on, until the plan it shows is in
        studio.plan_changed.connect(self._on_base_plan)
        studio.document.changed.connect(self._on_project_changed)
        studio.document.reset.connect(self._on_reset)
        studio.target_changed.connect(self._on_target)
        studio.result_stored.connect(self._on_result_stored)

    # ================================================================ the plan on screen and its edits
    @property
    def document(self) -> Any:
        return self.studio.document

    def edits(self) -> list[PlanEdit]:
        """The edits of the plan on screen (those of the target's entry, if it names that plan)."""
        entry = self.document.project.plan_edits.get(self.studio.target_key())
        if self.base is None or entry is None or not _same_plan(entry.get("base"), self.base):
            return []
        try:
            return _as_edits(entry.get("edits", []))
        except (TypeError, ValueError):  # a hand-edited project file: its edits are not the studio's
            return []

    def _on_base_plan(self, plan: Any, caption: str) -> None:
        self.base, self._base_settings = self._name_of(plan, caption)
        self._show(plan, caption)
        if self._landed is not None and plan is not None:
            self._say_edits_left_behind()

    def _name_of(self, plan: Any, caption: str) -> tuple[str | None, dict]:
        """The base's name and settings: a version's stored plan is named by the version; a live plan by
        what drafts it (source version, task, instruction, seed, size, frames)."""
        if plan is None:
            return None, {}
        s = self.studio
        clip = s.primary_clip()
        if caption.startswith("Plan stored with") and clip is not None:
            request = clip.active.request or {}
            return f"{STORED}:{clip.active.id}", {k: request[k] for k in _SETTINGS if k in request}
        p = s.params
        # The length the plan was made for: a video edit's is its clip's (a 13-frame clip is edited over 13 frames
        # whatever Frames says), which Generate's request must keep; a new clip's is Frames snapped.
        frames = max(1, int(s.plan_frames)) if s.task.makes_video else 1
        settings = {"seed": p.seed, "width": p.width, "height": p.height, "frames": frames}
        source = clip.active.id if clip is not None else ""
        if clip is not None and s.task.needs_video:
            source += f"@{s.first_frame_read(clip)}"  # the frames it reads: trimmed at its start, the plan is another
        return f"{LIVE}:{source}:{s.task.value}:{p.seed}:{p.width}x{p.height}x{frames}:{s.instruction}", settings

    def _show(self, plan: Any, caption: str) -> None:
        edits = self.edits()
        shown = plan
        if plan is not None and edits:
            try:
                shown = self._edited(plan, edits)
                caption = f"{caption} · edited ({len(edits)} change{'s' if len(edits) > 1 else ''})"
            except ValueError as e:  # a hand-edited project file: show the plan as the model made it
                self.studio.say(f"The plan edits no longer fit this plan ({e}); it is shown as planned.", WARNING)
        self.shown_plan = shown
        self.shown_plan_changed.emit(shown, caption)

    def _edited(self, plan: Any, edits: list) -> Any:
        """`plan.edited(edits, preview=True)`, on the GUI thread at every gesture, without redoing the work of
        the gestures before: a real MLLM's states are thousands wide, and re-applying a growing list of brush
        strokes from scratch each time took 0.2-0.6 s. When `edits` extend the last list by canvas edits only
        (they apply after every object edit, in order), they are applied to the last result."""
        last = self._preview
        if last is not None and last[0] is plan and edits[:len(last[1])] == last[1]:
            new = edits[len(last[1]):]
            if not new:
                return last[2]
            if not any(e.edits_objects for e in new):
                shown = last[2].edited(new, preview=True)
                self._preview = (plan, list(edits), shown)
                return shown
        shown = plan.edited(edits, preview=True)
        self._preview = (plan, list(edits), shown)
        return shown

    def _on_project_changed(self, change: dict) -> None:
        if self._awaiting_planned is not None:
            self._compare_when_planned()
        if self._compare is not None:
            clip = self.studio.primary_clip()
            if clip is None or clip.id != self._compare[0] or clip.active.id != self._compare[1]:
                self._compare = None  # another version on screen: A/B is "with the previous" again
                self.compare_changed.emit()
        if change.get("kind") == "set_plan_edits" or "set_plan_edits" in _kinds(change):
            self._show(self.studio.current_plan, self.studio.plan_caption)
            if change.get("kind") == "set_plan_edits" and change.get("target") != self.studio.target_key():
                # An undo or redo of another target's plan edits: nothing on screen changes, so it is said.
                target = str(change.get("target", ""))
                clip = self.document.project.clip(target.split("+")[0]) if target and all(
                    self.studio.has_clip(c) for c in target.split("+")) else None
                name = "the new generation" if not target else \
                    f"'{self.studio.clip_name(clip)}'" if clip is not None and "+" not in target else "other clips"
                self.studio.say(f"The plan edits of {name} changed (not the plan on screen): select it to see them.",
                                INFO)

    def _on_reset(self) -> None:
        self._compare = self._awaiting_planned = None
        self.compare_changed.emit()
        self._arrived_at = None
        self._on_target()  # the project opened is arrived at (the studio's own reset may have come first)

    def _on_result_stored(self, clip_id: str) -> None:
        self._landed = clip_id  # judged once the plan of what is shown now is in (_say_edits_left_behind)
        clip = self.studio.primary_clip()
        if clip is not None and clip.id == clip_id and self.base == f"{STORED}:{clip.active.id}":
            self._say_edits_left_behind()  # that plan was shown before the result was announced

    def _say_edits_left_behind(self) -> None:
        """A result that became its clip's shown version while plan edits of the clip waited on another plan (made
        as the job ran, on the plan of the version it edits): they vanished from view unsaid; said, with where."""
        clip_id, self._landed = self._landed, None
        entry = self.document.project.plan_edits.get(clip_id) or {}
        n = len(entry.get("edits") or [])
        base = str(entry.get("base", ""))
        if not n or self.studio.target_key() != clip_id or _same_plan(base, self.base):
            return
        clip = self.studio.primary_clip()
        try:
            made_with = _as_edits(clip.active.request.get("plan_edits") or []) if clip is not None else []
            if made_with[len(made_with) - n:] == _as_edits(entry["edits"]):
                return  # the result was made with them: nothing was left behind
        except (TypeError, ValueError):  # a hand-edited project file
            return
        source = base.split(":", 2)[1].split("@")[0] if base.startswith(LIVE) else base.split(":", 1)[-1]
        index = next((i for i, v in enumerate(clip.versions) if v.id == source), None) if clip is not None else None
        where = "" if index is None else f" ({'the original' if index == 0 else f'v{index}'})"
        self.studio.say(f"The {n} plan edit{'s' if n > 1 else ''} of this clip wait{'' if n > 1 else 's'} on the plan "
                        f"of the version {'they were' if n > 1 else 'it was'} made on{where}: select that version to "
                        f"see and use {'them' if n > 1 else 'it'}.", INFO)

    def _on_target(self) -> None:
        """On arriving at a target (a selection, a project opened) whose pending edits were made on a live plan
        of other settings: those settings again. A live plan is named by its seed and size, which the project
        does not keep (the seed is the studio's), so a reopened project's edits were hidden, and the first new
        edit then replaced them."""
        target = self.studio.target_key()
        if target == self._arrived_at:
            return  # the same target's words or task changed: a seed changed on purpose stays
        self._arrived_at = target
        entry = self.document.project.plan_edits.get(target) or {}
        settings = entry.get("settings") if str(entry.get("base", "")).startswith(LIVE) else None
        if not isinstance(settings, dict) or not entry.get("edits"):
            return
        said = []
        task = _live_task(entry["base"])
        if task is not None and task is not self.studio.task and task in self.studio.tasks():
            # The task picked for a target is the session's (a reopened new generation starts at text to
            # image): the task the plan was drafted for comes back with it, or its clip's edits stay hidden.
            self.studio.set_task(task)
            said.append(task.value.replace("_", " "))
        params = self.studio.params
        changed = {k: v for k, v in settings.items()
                   if k in ("seed", "width", "height") and isinstance(v, int) and getattr(params, k) != v}
        frames = settings.get("frames")
        if (self.studio.task.makes_video and not self.studio.task.needs_video and isinstance(frames, int) and frames > 1
                and nearest_clip_length(params.frames, self.studio.frame_step) != frames):
            changed["frames"] = frames  # a clip's plan is named by its length too (the Frames box snaps to it)
        for name, value in changed.items():
            self.studio.set_param(name, value)
        if changed:
            self.studio.params_changed.emit()
        said += [f"{k} {v}" for k, v in changed.items()]
        if said:
            self.studio.say(f"The plan edits of the {self.studio.target_name()} were made at {', '.join(said)}: "
                            f"set again.", INFO)

    # ================================================================ changing the edits (one undo step each)
    def add(self, new: list[PlanEdit], label: str) -> bool:
        """Append `new` to the edits of the plan on screen, as one undoable step named `label`; False (and a
        message) when there is no plan or the edits do not fit it."""
        plan = self.studio.current_plan
        if plan is None or self.base is None:
            self.studio.say("There is no plan on screen to edit: type an instruction first.", WARNING)
            return False
        edits = self.edits() + list(new)
        try:
            self._edited(plan, edits)
        except ValueError as e:
            self.studio.say(f"{label}: {e}", ERROR)
            return False
        project = self.document.project
        target = self.studio.target_key()
        other = project.plan_edits.get(target) or {}
        self.document.push(project.set_plan_edits_change(target, self.base, [_as_dict(e) for e in edits],
                                                         settings=self._base_settings), label)
        if other.get("edits") and not _same_plan(other.get("base"), self.base):
            # One entry a target: the edits of the plan on screen before (another seed, size, wording or
            # version) give way to these. Said, with the way back.
            n = len(other["edits"])
            self.studio.say(f"{label}: the {n} plan edit{'s' if n > 1 else ''} made on another plan of the "
                            f"{self.studio.target_name()} (other settings or words) gave way to this one; Undo "
                            f"brings {'them' if n > 1 else 'it'} back.", WARNING)
        return True

    def clear(self) -> None:
        if self.edits():
            self.document.push(self.document.project.set_plan_edits_change(self.studio.target_key(), "", []),
                               "Clear plan edits")

    # ================================================================ Generate
    def apply_to(self, request: GenerationRequest) -> bool:
        """Put the edits of the plan on screen into `request` (Generate's), with the seed and settings of
        the plan they edit, and any edits that plan was itself made with first. False when there are none.
        ValueError when the plan on screen is not the request's (a task chosen since, a plan on its way)."""
        edits = self.edits()
        if not edits:
            return False
        base_request: dict = {}
        if self.base.startswith(STORED):
            clip = self.studio.primary_clip()
            base_request = clip.active.request or {}
            if base_request.get("task") != request.task.value or base_request.get("instruction") != request.instruction:
                raise ValueError("The plan edits were made on the plan of this version's request: generate with its "
                                 "task and instruction, or clear the edits.")
            if request.task.needs_image or request.task.needs_video:
                # That plan was made from the version's input, which a version does not record; Generate would
                # read the version's own output instead, and the edits would point at other objects.
                raise ValueError("The plan stored with an edited version was made from that version's input: select "
                                 "the version it was made from and edit its live plan, or clear the edits.")
        elif self.base != self._name_of(self.studio.current_plan, self.studio.plan_caption)[0] or \
                request.task.makes_video and request.frames != self._base_settings.get("frames", request.frames):
            # Frames changed since the plan was made (its name holds the plan's own length, not the box's).
            raise ValueError("The plan is being made again for the new settings: press Generate once it is shown.")
        for key, value in self._base_settings.items():
            setattr(request, key, value)
        request.plan_edits = _as_edits(base_request.get("plan_edits", [])) + edits
        return True

    # ================================================================ A/B: as planned vs as edited
    def compare_index(self) -> int | None:
        """The version the viewer's A/B compares the active one with: the as-planned one after
        `compare_as_planned`; None for the default (the previous version)."""
        clip = self.studio.primary_clip()
        if self._compare is None or clip is None or clip.id != self._compare[0]:
            return None
        index = next((i for i, v in enumerate(clip.versions) if v.id == self._compare[2]), None)
        return index if clip.active.id == self._compare[1] else None

    def compare_offset(self) -> int:
        """How many versions before the active one the A/B's B is (negative: after it); 1 by default."""
        clip, index = self.studio.primary_clip(), self.compare_index()
        return 1 if clip is None or index is None else clip.active_version - index

    def compare_labels(self) -> tuple[str, str]:
        if self.compare_index() is None:
            return "A: now", "B: previous"
        edited = bool(self.studio.primary_clip().active.request.get("plan_edits"))
        return ("A: as edited", "B: as planned") if edited else ("A: as planned", "B: as edited")

    def compare_as_planned(self) -> None:
        """One click: compare the active version, made from an edited plan, with the same request made from
        the plan as planned (found among the clip's versions, or made now when the task reads no media)."""
        clip = self.studio.primary_clip()
        version = clip.active if clip is not None else None
        if version is None or not version.request.get("plan_edits"):
            self.studio.say("Compare as planned: this version was made from the plan as planned. Edit its plan "
                            "over the viewer and Generate, then compare the two.", INFO)
            return
        planned = _without_edits(version.request)
        match = next((v for v in clip.versions
                      if _without_edits(v.request) == planned and not v.request.get("plan_edits")), None)
        if match is not None:
            self._compare = (clip.id, version.id, match.id)
            self.compare_changed.emit()
            return
        task = Task(version.request["task"])
        if task.needs_image or task.needs_video or self.studio.engine is None:
            self.studio.say("No version of this clip was made from the plan as planned: generate one without the "
                            "edits first, then compare.", WARNING)
            return
        request = GenerationRequest.from_dict({**version.request, "plan_edits": []})
        job_id = self.studio.engine.submit(request)
        # A clip plays at the rate of the version it is compared with, so the two sides keep step.
        fps = self.studio.document.project.media_item(version.media_id).fps if task.makes_video else 0.0
        self.studio.jobs[job_id] = Job(job_id, request, clip.id, f"As planned: {shortened(request.instruction)} "
                                                                 f"(seed {request.seed})", fps=fps,
                                       selection=tuple(self.studio.selection), project=self.studio.document.project,
                                       model=self.studio.running_folder(task))
        self.studio.jobs_changed.emit()
        self._awaiting_planned = (clip.id, version.id)
        self.studio.say(f"Queued job #{job_id}: the same request as planned, to compare with the edited one.")

    def _compare_when_planned(self) -> None:
        """The as-planned result has landed (it is the clip's active version now): A/B shows it against the
        edited one."""
        clip_id, edited_id = self._awaiting_planned
        clip = self.studio.primary_clip()
        if clip is None or clip.id != clip_id:
            return
        edited = next((v for v in clip.versions if v.id == edited_id), None)
        if edited is None:
            self._awaiting_planned = None
            return
        active = clip.active
        if active.id != edited_id and not active.request.get("plan_edits") and \
                _without_edits(active.request) == _without_edits(edited.request):
            self._awaiting_planned = None
            self._compare = (clip.id, active.id, edited_id)
            self.compare_changed.emit()


def _as_edits(items: list) -> list[PlanEdit]:
    """Stored edit dicts as PlanEdits (a JSON round trip makes the box a list; PlanEdit makes it a tuple)."""
    return [e if isinstance(e, PlanEdit) else PlanEdit(**e) for e in items]


def _as_dict(edit: PlanEdit) -> dict:
    """An edit as the project keeps it: JSON's types (a list for the box), so it is the same after save."""
    return {**asdict(edit), "box": list(edit.box)}


def _without_edits(request: dict) -> dict:
    return {k: v for k, v in (request or {}).items() if k != "plan_edits"}


def _kinds(change: dict) -> set[str]:
    if change.get("kind") != "batch":
        return {change.get("kind", "")}
    return set().union(*(_kinds(c) for c in change.get("changes", [])))


def _same_plan(stored: Any, shown: str | None) -> bool:
    """Whether an entry's base names the plan on screen. A live plan of a clip's frames is named with the first
    frame it reads ("@12") and its own length since 2026-12-07; an entry saved before names neither (it was read
    from the clip's in point and at the clip's length then too), and is the same plan if all else is the same."""
    if shown is None or not isinstance(stored, str):
        return False
    if stored == shown:
        return True
    old, new = stored.split(":", 5), shown.split(":", 5)
    if len(old) < 6 or len(new) < 6 or old[0] != LIVE or new[0] != LIVE or "@" in old[1] or "@" not in new[1]:
        return False
    size = lambda name: name.rsplit("x", 1)[0]  # noqa: E731 - WxH of "WxHxF"
    return (old[1], old[2], old[3], size(old[4]), old[5]) == (new[1].split("@")[0], new[2], new[3], size(new[4]),
                                                             new[5])


def _live_task(base: str) -> Task | None:
    """The task a live plan's name (`_name_of`: live:source:task:seed:size:words) says it was drafted for."""
    parts = base.split(":", 3)
    try:
        return Task(parts[2]) if len(parts) > 3 and parts[0] == LIVE else None
    except ValueError:  # a hand-edited project file
        return None
