"""Reading the user's files without hanging: only regular files are opened.

A named pipe (FIFO) blocks `open()` until some other program writes to it, and a device such as
/dev/zero never ends, so a plain `open(path).read()` of either froze `edit` and the studio. Every
reader in app/media goes through `open_regular`, which opens without blocking and checks with
fstat (on the opened descriptor, so nothing can be swapped in between) that the path is a regular
file before reading a byte. `read_regular` adds a size cap, checked before reading. And before a run
writes its results, `refuse_unwritable_output` says whether it could and may.

Standard library only: project files use this without loading NumPy or PIL.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def kind_of(mode: int) -> str:
    """What a non-regular file is, for messages: "a named pipe (FIFO)", "a character device"..."""
    for test, label in _KINDS:
        if test(mode):
            return label
    return "a special file"


def not_regular_message(path: Path, mode: int) -> str:
    return (f"'{path}' is not a regular file (it is {kind_of(mode)}); "
            f"choose an ordinary file saved on disk.")


_HINTS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the disk or folder is read-only",
          errno.EACCES: "the folder may be read-only, or you may not write there",
          errno.EPERM: "the folder may be read-only, or you may not write there",
          errno.ENOENT: "the folder may have been moved or removed",
          errno.EIO: "the disk or network share may have been disconnected"}
for _name, _hint in (("EDQUOT", "your disk quota is used up"), ("EFBIG", "too large for this disk's file system")):
    if hasattr(errno, _name):
        _HINTS[getattr(errno, _name)] = _hint


def describe_os_error(e: OSError) -> str:
    """Why an OSError happened, for a user: the system's words plus what they mean where that helps
    ("No space left on device (the disk is full)"); no errno numbers, no temporary file names."""
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    hint = _HINTS.get(getattr(e, "errno", None))
    return f"{text} ({hint})" if hint and hint.lower() not in text.lower() else text


class NotRegularFile(OSError):
    """The path exists but is a pipe, device, socket or folder. str() is the user message."""

    def __init__(self, path: Path, mode: int):
        super().__init__(not_regular_message(path, mode))
        self.path, self.mode = path, mode

    def __str__(self) -> str:
        return self.args[0]


class FileTooLarge(OSError):
    def __init__(self, path: Path, size: int, limit: int):
        super().__init__(f"'{Path(path).name}' is too large ({size / 2**20:.0f} MB; the limit is "
                         f"{limit / 2**20:.0f} MB).")
        self.size, self.limit = size, limit

    def __str__(self) -> str:
        return self.args[0]


def stat_regular(path: str | os.PathLike) -> os.stat_result:
    """os.stat(path) (following links), or NotRegularFile if it is not a regular file.
    FileNotFoundError / PermissionError pass through for the caller's own wording."""
    path = Path(path)
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(path, st.st_mode)
    return st


def open_regular(path: str | os.PathLike) -> int:
    """A read-only descriptor of `path`, opened without blocking (a FIFO would otherwise wait for a
    writer forever), after checking on that descriptor that it is a regular file. The caller
    closes it (or wraps it with os.fdopen)."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)
    if os.name == "posix":
        # O_NONBLOCK on a FIFO makes open() return at once; on a regular file it has no effect. Still,
        # refuse before opening where we can, so not even a device's open() routine runs.
        stat_regular(path)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, st.st_mode)
        if flags & getattr(os, "O_NONBLOCK", 0) and hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike, max_bytes: int | None = None, head: int | None = None) -> bytes:
    """The bytes of a regular file: all of them (FileTooLarge above `max_bytes`, checked from the
    size before reading) or only the first `head` bytes."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        if head is not None:
            return f.read(head)
        size = os.fstat(f.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise FileTooLarge(Path(path), size, max_bytes)
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:  # it grew while we read
            raise FileTooLarge(Path(path), len(data), max_bytes)
        return data


def refuse_unwritable_output(path: str | os.PathLike, flag: str, overwrite: bool) -> None:
    """ValueError, said before a run, for an output the run could not write or must not replace: an existing
    file unless `overwrite` (the user's files are never replaced unasked), a folder given as a file name, and
    a folder that takes no new file. The folder (or, when it is still to be made, its nearest existing
    parent) is asked by making and removing a file in it: permissions, read-only mounts and immutable
    flags all answer that, where os.access misses the last two (and everything, for root)."""
    import tempfile

    path = Path(path)
    if path.is_dir():
        example = path / ("out" + (path.suffix or ".png"))
        raise ValueError(f"{flag} {path} is a folder; give a file name such as {example}")
    if os.path.lexists(path) and not overwrite:
        raise ValueError(f"{path} already exists; choose another {flag} or add --overwrite to replace it")
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"the folder of {flag}, '{folder}', is a file, not a folder; choose another {flag}")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mcs-write-check-"):
            pass
    except OSError as e:
        raise ValueError(f"{flag} {path} cannot be written: {describe_os_error(e)} in '{folder}'. Nothing was "
                         f"made; choose another {flag}") from None


def file_key(path: str | os.PathLike) -> object:
    """What names one file, for telling an output from an input: the file's device and inode when it exists
    (on a case-insensitive disk, as macOS's and Windows' are, 'Source.MP4' and 'source.mp4' are one file, and
    so are two hard links), else its resolved path."""
    try:
        st = os.stat(path)
        if st.st_ino:  # 0 where a file system gives no inode number (some Windows ones): not an identity
            return (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        pass
    return Path(path).resolve()
