"""Which exceptions are the user's to fix, and how to say so in one line."""
from __future__ import annotations


def user_message(exc: BaseException) -> str | None:
    """A clear message for errors a user can cause (bad file, bad words, bad model folder, out of
    memory); None for programming errors, which should surface with their traceback."""
    from app.media.errors import ExportError, MediaError, ProjectError

    if isinstance(exc, (MediaError, ProjectError, ExportError)):
        return str(exc)
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return str(exc)
    if isinstance(exc, OSError) and getattr(exc, "errno", None) is not None:
        # A full disk, a read-only folder, a vanished network share: the system's words, made plain.
        from app.media.files import describe_os_error

        where = f"'{exc.filename}': " if getattr(exc, "filename", None) else ""
        return f"{where}{describe_os_error(exc)}"
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return ("Out of memory. Try a smaller size, fewer frames or steps, or the CPU "
                "(Settings > Device).")
    if isinstance(exc, ValueError):  # ModelFolderError, UnknownWordError, MediaError, bad requests
        return str(exc)
    return None
