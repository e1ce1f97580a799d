"""Where a training run starts: the one way to say it (`Trainer(start=...)`, `python main.py train --start
... --planner ...`).

A run starts in one of three ways:

| start | the DiT and connectors | the planner unless `planner` says otherwise | command line |
|---|---|---|---|
| `RunStart.new()` | fresh (random) | a fresh one, taught in stage 1 | `--start new` (the default for an empty run folder) |
| `RunStart.from_model(FOLDER)` | the exported model's (its EMA weights, a fresh optimizer) | the model's own, as taught | `--start FOLDER` |
| `RunStart.resume()` | the run folder's checkpoint | the run's own (`RUN/planner_taught`) | `--start resume` (the default for a begun run) |

and, for a new run or one from a model, its planner part is chosen explicitly:

| planner | what stage 1 does | command line |
|---|---|---|
| `PlannerStart.fresh()` | teaches a fresh (random) planner | `--planner teach` |
| `PlannerStart.teach_on(FOLDER)` | teaches on from FOLDER's planner (a model folder or a run's planner_taught; a canvas of another grid is resampled) | `--planner teach:FOLDER` |
| `PlannerStart.taught(FOLDER)` | nothing: FOLDER's planner is used as it is (how a text-only baseline shares its twin's planner) | `--planner FOLDER` |

A run records its start in progress.json. The same start given again on the run folder resumes the
run (so killing a run and running the same command again goes on where it stopped): a model's weights
load only at step 0, a given planner only until the run has its own. A different start on a begun run
is refused, naming the one it began with.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NEW, RESUME, MODEL = "new", "resume", "model"


@dataclass(frozen=True)
class PlannerStart:
    """Where a run's planner comes from. `folder` None: a fresh random planner (which stage 1 must teach)."""
    folder: Path | None = None
    teach: bool = True  # stage 1 teaches it (on from `folder`'s weights, or from nothing)

    def __post_init__(self):
        if self.folder is None and not self.teach:
            raise ValueError("a fresh planner has to be taught: give a planner folder, or teach it")

    @classmethod
    def fresh(cls) -> "PlannerStart":
        return cls(None, True)

    @classmethod
    def teach_on(cls, folder: str | Path) -> "PlannerStart":
        return cls(Path(folder), True)

    @classmethod
    def taught(cls, folder: str | Path) -> "PlannerStart":
        return cls(Path(folder), False)

    @classmethod
    def parse(cls, text: str) -> "PlannerStart":
        """The command line's `--planner`: `teach`, `teach:FOLDER` or `FOLDER`."""
        if text == "teach":
            return cls.fresh()
        if text.startswith("teach:"):
            if not text[len("teach:"):]:
                raise ValueError("--planner teach:FOLDER needs a folder after 'teach:'")
            return cls.teach_on(text[len("teach:"):])
        return cls.taught(text)

    def words(self) -> str:
        if self.folder is None:
            return "teach"
        return f"teach:{self.folder}" if self.teach else str(self.folder)


@dataclass(frozen=True)
class RunStart:
    kind: str = NEW  # "new", "model" or "resume"
    model: Path | None = None  # kind "model": the exported model folder the DiT and connectors go on from
    planner: PlannerStart | None = None  # None: the kind's own (new: a fresh one to teach; model: the model's)

    def __post_init__(self):
        if self.kind not in (NEW, MODEL, RESUME):
            raise ValueError(f"a run starts new, from a model folder or as a resume, not {self.kind!r}")
        if (self.kind == MODEL) != (self.model is not None):
            raise ValueError("a model folder goes with a start from a model, and only there")
        if self.kind == RESUME and self.planner is not None:
            raise ValueError("a resumed run plans with its own planner (RUN/planner_taught): give no --planner")

    @classmethod
    def new(cls, planner: PlannerStart | None = None) -> "RunStart":
        return cls(NEW, None, planner)

    @classmethod
    def from_model(cls, folder: str | Path, planner: PlannerStart | None = None) -> "RunStart":
        return cls(MODEL, Path(folder), planner)

    @classmethod
    def resume(cls) -> "RunStart":
        return cls(RESUME)

    @classmethod
    def parse(cls, start: str | None, planner: str | None) -> "RunStart | None":
        """The command line's `--start` (new, resume or a model folder) and `--planner`. Neither given:
        None, which resumes a begun run and starts an empty folder new."""
        if start is None and planner is None:
            return None
        chosen = PlannerStart.parse(planner) if planner is not None else None
        if start in (None, NEW):
            return cls.new(chosen)
        if start == RESUME:
            return cls(RESUME, None, chosen)  # refused by name if a planner was given
        return cls.from_model(start, chosen)

    @property
    def planner_start(self) -> PlannerStart | None:
        """The planner part with the kind's default filled in (None for a resume)."""
        if self.planner is not None or self.kind == RESUME:
            return self.planner
        return PlannerStart.fresh() if self.kind == NEW else PlannerStart.taught(self.model)

    def words(self) -> str:
        """The command-line words for this start."""
        if self.kind == RESUME:
            return "--start resume"
        start = "new" if self.kind == NEW else str(self.model)
        return f"--start {start} --planner {self.planner_start.words()}"

    def to_dict(self) -> dict:
        return {"start": "new" if self.kind == NEW else self.kind if self.kind == RESUME else str(self.model),
                "planner": self.planner_start.words() if self.planner_start is not None else None}

    @classmethod
    def from_dict(cls, data: dict) -> "RunStart":
        start = cls.parse(data["start"], data.get("planner"))
        return start if start is not None else cls.new()

    def same_as(self, other: "RunStart") -> bool:
        def key(s: RunStart):
            p = s.planner_start
            return (s.kind, _resolved(s.model), p and (_resolved(p.folder), p.teach))
        return key(self) == key(other)


def _resolved(path: Path | None) -> str | None:
    return str(Path(path).resolve()) if path is not None else None


def resolve(given: RunStart | None, recorded: dict | None, begun: bool, out: Path) -> RunStart:
    """The start a run applies: for an empty run folder the given one (default: new); for a begun run the
    one it began with, which a given start must repeat (or be a resume)."""
    if not begun:
        if given is not None and given.kind == RESUME:
            raise ValueError(f"--start resume: {out} has no run to resume (no progress.json)")
        return given or RunStart.new()
    if recorded is None:  # a run folder written before starts were recorded: the given one, if any, applies
        return given if given is not None and given.kind != RESUME else RunStart.new()
    began = RunStart.from_dict(recorded)
    if given is not None and given.kind != RESUME and not given.same_as(began):
        raise ValueError(f"{out} began with `{began.words()}`, not `{given.words()}`: run the same command again "
                         f"(or --start resume) to go on, or give another --out for a new run")
    return began
