"""Which exceptions are the user's to fix, and how to say so in one line."""
from __future__ import annotations


def user_message(exc: BaseException, memory=None) -> str | None:
    """A clear message for errors a user can cause (bad file, bad words, bad model folder, out of
    memory); None for programming errors, which should surface with their traceback. `memory`: the
    command line's MemoryPlacement (app/core/memory.py), so that an out of memory names the flag to try."""
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
        return _out_of_memory(memory)
    if isinstance(exc, ValueError):  # ModelFolderError, UnknownWordError, MediaError, bad requests
        return str(exc)
    return None


def _out_of_memory(memory) -> str:
    if memory is not None:
        from app.core.memory import more_frugal, offload_can_help, step_flags

        more = more_frugal(memory.options) if offload_can_help(memory.execution_device) else None
        if more is not None:
            return (f"Out of memory on {memory.execution_device}: run again with {step_flags(memory.options, more)} "
                    f"(or a smaller --width/--height, fewer --frames).")
    return "Out of memory. Try a smaller size, fewer frames or steps, or the CPU (Settings > Device)."
