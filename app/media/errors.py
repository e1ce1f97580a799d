"""The errors app/media raises. Each message is written for the user: it names the file and says
what is wrong and, where there is one, what to do. The UI shows `str(error)` as is."""
from __future__ import annotations


class MediaError(Exception):
    """A media file cannot be read: missing, empty, corrupt, not media, unsupported or too large."""


class ProjectError(Exception):
    """A project file cannot be opened or saved, or a change does not fit the project."""


class ExportError(Exception):
    """An export failed; nothing was left at the destination."""


class ExportCancelled(ExportError):
    """The user cancelled an export; nothing was left at the destination."""


class SoundError(ExportError):
    """The sound an export was to carry could not be read; nothing was left at the destination (the pictures
    can be written again without it)."""
