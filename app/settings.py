"""The studio's settings: one dataclass, stored as JSON in the user's config folder.

A settings file is something users edit by hand and that can be cut short by a crash, so loading
never fails: anything unreadable falls back to the default for that field (or to all defaults), the
bad file is kept beside it as `settings.json.corrupt`, and `Settings.warning` says what happened so
the UI can show it once. Saving is atomic (write a temporary file, fsync, rename), so a crash during
a save leaves the previous file, never a half-written one.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

APP_NAME = "MetaCanvas Studio"
CONFIG_DIR_ENV = "METACANVAS_CONFIG_DIR"  # tests and portable installs point this elsewhere
SETTINGS_FILE = "settings.json"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO_ROOT / "models" / "metacanvas-shapes"
DEFAULT_VIDEO_MODEL = REPO_ROOT / "models" / "metacanvas-shapes-video"
DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")  # auto: picked from the GPU's memory (app/core/memory.py)
OFFLOADS = ("auto", "none", "model", "sequential")  # app.core.memory.OFFLOADS, and auto
MAX_RECENT = 10


def config_dir() -> Path:
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


@dataclass
class Settings:
    model_folders: list[str] = field(default_factory=lambda: [str(DEFAULT_MODEL)])  # listed in the model menu
    active_model: str = str(DEFAULT_MODEL)  # the one loaded at start-up
    # The model that makes and edits clips: loaded in the background the first time a video task is asked for.
    video_model_folders: list[str] = field(default_factory=lambda: [str(DEFAULT_VIDEO_MODEL)])
    video_model: str = str(DEFAULT_VIDEO_MODEL)
    device: str = "auto"  # "auto" | "cuda" | "mps" | "cpu"
    precision: str = "auto"  # "auto" | "float32" | "bfloat16" | "float16"
    # Memory (app/core/memory.py). "auto" and null: picked from the GPU's memory when the model loads.
    offload: str = "auto"  # "auto" | "none" | "model" | "sequential"
    vae_tiling: bool | None = None
    vae_slicing: bool | None = None
    planner_offload: bool | None = None  # the planner's MLLM back to the CPU after each planning
    preview: bool = True  # show the denoising preview while generating
    # CPU threads for the model's work (0: every core but one, see studio_cpu_threads).
    cpu_threads: int = 0
    autosave_minutes: int = 5  # 0 turns autosave off
    recent_projects: list[str] = field(default_factory=list)  # newest first
    # Not saved: what went wrong while loading, for the UI to show once.
    warning: str | None = field(default=None, compare=False, repr=False)

    # ------------------------------------------------------------------ persistence

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Settings":
        path = Path(path) if path is not None else settings_path()
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, found {type(data).__name__}")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            backup = _keep_corrupt_copy(path)
            kept = f" The unreadable file was kept as {backup.name}." if backup else ""
            settings = cls()
            settings.warning = f"Settings file {path} could not be read ({exc}); using the defaults.{kept}"
            log.warning(settings.warning)
            return settings
        settings, problems = cls.from_dict(data)
        if problems:
            settings.warning = f"Some settings in {path} were invalid and were reset: " + "; ".join(problems) + "."
            log.warning(settings.warning)
        return settings

    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path is not None else settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("warning")
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> tuple["Settings", list[str]]:
        """Settings from a dict, field by field: a bad value resets that field alone.

        Unknown keys are ignored (a newer version may have written them)."""
        settings = cls()
        problems: list[str] = []
        for f in fields(cls):
            if f.name == "warning" or f.name not in data:
                continue
            value = data[f.name]
            try:
                setattr(settings, f.name, _CHECKS[f.name](value))
            except (TypeError, ValueError) as exc:
                problems.append(f"{f.name} ({exc})")
        if "offload" not in data and data.get("precision") == "float32":
            # Written before the memory options existed, when float32 was the default every file saved: not a
            # choice, so it becomes the new default (auto: bf16 on a GPU, float32 on the CPU as before).
            settings.precision = "auto"
        return settings, problems

    # ------------------------------------------------------------------ helpers

    def add_recent(self, project: str | Path) -> None:
        """Move `project` to the front of the recent list (no duplicates, at most MAX_RECENT)."""
        p = str(project)
        self.recent_projects = [p] + [r for r in self.recent_projects if r != p][: MAX_RECENT - 1]

    def torch_device(self) -> str:
        return resolve_device(self.device)

    def torch_dtype(self):
        return torch_dtype(self.precision)

    def memory_options(self):
        """The memory options these settings ask for (app.core.memory.MemoryOptions; auto fields left None)."""
        from app.core.memory import MemoryOptions

        return MemoryOptions(dtype=None if self.precision == "auto" else self.precision,
                             offload=None if self.offload == "auto" else self.offload, vae_tiling=self.vae_tiling,
                             vae_slicing=self.vae_slicing, planner_offload=self.planner_offload)

    def placement(self) -> tuple:
        """What decides where and how a model is loaded: a change to any of it reloads the models."""
        return (self.device, self.precision, self.offload, self.vae_tiling, self.vae_slicing, self.planner_offload)


def load_settings(path: str | Path | None = None) -> Settings:
    """The user's settings (defaults if there is no file); never raises for a bad file."""
    return Settings.load(path)


# ---------------------------------------------------------------------- field checks

def _choice(options: tuple[str, ...]):
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return value
    return check


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, found {type(value).__name__}")
    return value


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of paths")
    return list(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, found {value!r}")
    return value


def _bool_or_auto(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"expected true, false or null (auto), found {value!r}")
    return value


def _minutes(value: Any) -> int:
    # bool is an int in Python; `true` minutes is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number of minutes >= 0, found {value!r}")
    return value


# More threads than this is a typo, not a machine: each one is an OS thread the first job starts.
MAX_CPU_THREADS = 256


def _threads(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CPU_THREADS:
        raise ValueError(f"expected a whole number of threads from 0 (auto) to {MAX_CPU_THREADS}, found {value!r}")
    return value


_CHECKS = {
    "model_folders": _str_list,
    "active_model": _str,
    "video_model_folders": _str_list,
    "video_model": _str,
    "device": _choice(DEVICES),
    "precision": _choice(PRECISIONS),
    "offload": _choice(OFFLOADS),
    "vae_tiling": _bool_or_auto,
    "vae_slicing": _bool_or_auto,
    "planner_offload": _bool_or_auto,
    "preview": _bool,
    "cpu_threads": _threads,
    "autosave_minutes": _minutes,
    "recent_projects": lambda v: _str_list(v)[:MAX_RECENT],
}


def studio_cpu_threads(setting: int = 0, cores: int | None = None) -> int:
    """The CPU threads the studio's engine computes with: `setting` when the user chose one, else every
    core but one, so the window, playback and the decoders keep a core while a job runs. Measured on 2 cores
    (docs/BENCHMARKS.md, the studio's responsiveness): with one thread instead of two a 17-frame clip took
    0.43 s against 0.39-0.41 s and a still about a fifth longer, and the window's longest freeze while a clip
    is made as another plays was 20-28 ms (up to 34 ms with both cores computing)."""
    cores = cores if cores is not None else os.cpu_count() or 1
    if setting > 0:
        # Never more than the machine's cores: more threads than cores only wait on each other (256 on 2 cores
        # made a 0.3 s still take 6 s).
        return min(setting, MAX_CPU_THREADS, cores)
    return max(1, cores - 1)


# ---------------------------------------------------------------------- files

def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _keep_corrupt_copy(path: Path) -> Path | None:
    """Keep the user's unreadable file: the next save would otherwise overwrite it with defaults."""
    backup = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, backup)
        return backup
    except OSError:
        return None


# ---------------------------------------------------------------------- devices

def resolve_device(setting: str, warn: bool = True) -> str:
    """"auto" -> "cuda" if available, else "mps", else "cpu". An explicit device that this machine
    lacks falls back to "cpu" with a logged warning (`warn`; the command line says it in its own words):
    a settings file copied from another machine should still open the studio."""
    import torch

    if setting not in DEVICES:
        raise ValueError(f"unknown device {setting!r}: use one of {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if setting == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (setting == "cuda" and not cuda) or (setting == "mps" and not mps):
        if warn:
            log.warning("device %s is not available here; using the CPU", setting)
        return "cpu"
    return setting


def torch_dtype(precision: str):
    """The torch dtype of a precision setting; None for "auto" (the loader's choice)."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return None if precision == "auto" else getattr(torch, precision)
