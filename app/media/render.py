"""`python main.py render PROJECT.mcproj -o OUT.mp4`: render a saved project's video track."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from .export import Progress, export_timeline
from .project_file import open_project, project_file


def render_project(project_path: str | os.PathLike, out_path: str | os.PathLike, progress: Progress | None = None,
                   cancel: threading.Event | None = None, overwrite: bool = False) -> Path:
    """Open the project and render its video track to `out_path`. Raises ProjectError (the project
    cannot be opened) or ExportError (rendering failed; nothing is left at `out_path`)."""
    project_path = project_file(project_path)
    project = open_project(project_path)
    return export_timeline(project, project_path, out_path, progress=progress, cancel=cancel, overwrite=overwrite)
