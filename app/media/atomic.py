"""Writing files so that a crash, a full disk or a cancel never leaves a half-written file where the
user looks, and never replaces a file the user did not ask us to replace.

The recipe: write to a temporary file in the destination's own folder (so the final rename stays on
one file system and is atomic), flush and fsync it, then move it into place and fsync the folder so
the rename itself survives a power cut.

Temporary names are recognisably ours: `.NAME.mcs-PID-TOKEN[.ext].part` (hidden, the destination's
name, the writer's process id, 8 random hex digits, `.part`). A writer that is killed leaves one
behind; `clean_stale_temps_in` removes those whose writer is gone (the process id is not running,
or the file predates this process), and nothing else: a user's own `.part` download, or a temp of
another instance still saving, is never touched. The project layer calls it on every open and save.

The overwrite rule, the same in every writer of app/media: an existing destination is replaced only
when the caller passes `overwrite=True` (what `render --overwrite` and a confirmed "Replace?" dialog
do); otherwise the write is refused and the existing file is left exactly as it was. Saving a
project over its own file is the one standing permission (that is what Save means).
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import stat
import time
from pathlib import Path

TEMP_SUFFIX = ".part"
TEMP_MARK = ".mcs-"  # between the destination's name and "PID-TOKEN"
# This process started before this module was imported, so every temp it wrote is at least this new.
PROCESS_START = time.time()
STALE_AFTER_S = 5.0  # a temp whose writer is gone is stale once untouched this long (a writer on another
# machine sharing the folder has a process id we cannot see; it touches its temp far more often)
ABANDONED_AFTER_S = 24 * 3600.0  # a temp untouched this long is stale even if its process id is in use again

log = logging.getLogger(__name__)

_TEMP_RE = re.compile(r"^\.(?P<name>.*)\.mcs-(?P<pid>\d{1,10})-(?P<token>[0-9a-f]{8})(?:\.[A-Za-z0-9]{1,8})?\.part$")
# Before names carried the mark: .NAME.PID.TOKEN[.mp4].part
_LEGACY_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d{1,10})\.(?P<token>[0-9a-f]{8})(?:\.[A-Za-z0-9]{1,8})?\.part$")
_NAME_BYTES = 150  # the destination's name inside a temp name is cut to this, to stay under NAME_MAX


def temp_path_for(dest: Path, suffix: str = "") -> Path:
    """A fresh hidden temporary path beside `dest`. `suffix` lets writers that infer the format from
    the extension (PIL, FFmpeg) see the right one."""
    dest = Path(dest)
    name = dest.name
    while len(name.encode("utf-8", "surrogateescape")) > _NAME_BYTES:
        name = name[:-1]
    return dest.with_name(f".{name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{suffix}{TEMP_SUFFIX}")


def parse_temp_name(name: str, legacy: bool = False) -> tuple[str, int] | None:
    """(destination name, writer pid) if `name` is one of our temporary files, else None.
    `legacy` also accepts the older unmarked form (.NAME.PID.TOKEN.part)."""
    m = _TEMP_RE.match(name) or (_LEGACY_RE.match(name) if legacy else None)
    return (m.group("name"), int(m.group("pid"))) if m else None


def pid_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether process `pid` runs, on every system (psutil; os.kill(pid, 0) is POSIX only, and on Windows every
    writer looked alive). With `started_by` (a time.time() of something the writer did, such as its file's last
    write), a process that started after it is another one that has taken the pid since (pids are reused), not
    the writer. Without psutil (an interpreter run with -S: this module needs only the standard library, for
    the save tests' children) POSIX is asked directly and elsewhere every writer counts as running."""
    if pid <= 0:
        return False
    try:
        import psutil
    except ImportError:
        return _pid_alive_posix(pid)
    try:
        if not psutil.pid_exists(pid):
            return False
        if started_by is not None:
            # 2 s for the clocks psutil reads a start time from (boot time plus ticks on Linux) against time.time().
            return psutil.Process(pid).create_time() <= started_by + 2.0
    except (psutil.NoSuchProcess, OverflowError, ValueError):
        return False  # gone, or not a process id this system can have
    except (psutil.Error, OSError):
        return True  # it exists but cannot be read (another user's): not ours to call gone
    return True


def _pid_alive_posix(pid: int) -> bool:
    if os.name != "posix":
        return True  # no safe check without psutil: the age rule decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):
        return False  # not a process id this system can have
    except OSError:
        return True  # PermissionError: it exists, owned by someone else
    return True


def is_stale_temp(path: Path, pid: int, now: float | None = None) -> bool:
    """Whether our temporary file `path`, written by process `pid`, is left over from a writer that
    is gone (so removing it cannot disturb a save in progress)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False  # links, folders...: not something we wrote
    now = time.time() if now is None else now
    age = now - st.st_mtime
    if pid == os.getpid():
        return st.st_mtime < PROCESS_START - 1  # an earlier process with our number; ours are newer
    if age > ABANDONED_AFTER_S:
        return True
    if pid_alive(pid):
        return False  # maybe another instance saving right now
    return age > STALE_AFTER_S and (st.st_mtime < PROCESS_START or age > 600)


def clean_stale_temps_in(folder: str | os.PathLike, legacy: bool | None = None,
                         only_for: str | None = None) -> list[Path]:
    """Remove the stale temporary files (see is_stale_temp) directly in `folder`; returns what was
    removed. Files that are not ours are never touched. `legacy`: also the older unmarked names,
    True for all, or a callable(destination name) -> bool to choose; `only_for`: only the temps of
    this destination name. Never raises: cleaning up is a courtesy, not part of the save."""
    removed = []
    now = time.time()
    try:
        with os.scandir(folder) as it:
            entries = [e.name for e in it if e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX)]
    except OSError:
        return removed
    for name in entries:
        parsed = parse_temp_name(name)
        if parsed is None and legacy:
            parsed = parse_temp_name(name, legacy=True)
            if parsed is not None and callable(legacy) and not legacy(parsed[0]):
                parsed = None
        if parsed is None or (only_for is not None and parsed[0] != only_for):
            continue
        path = Path(folder) / name
        if is_stale_temp(path, parsed[1], now):
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable. Windows cannot open folders; there NTFS journals renames."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_temp(tmp: Path, dest: Path, overwrite: bool) -> None:
    """Move the finished temporary file `tmp` to `dest` atomically.

    Without `overwrite`, a hard link is used: it fails if `dest` appeared meanwhile (say, another
    program saved there after we checked), so we never clobber a user's file by a race. File systems
    without hard links (FAT, some network shares) fall back to check-then-rename.
    """
    tmp, dest = Path(tmp), Path(dest)
    try:
        if overwrite:
            os.replace(tmp, dest)
        else:
            try:
                os.link(tmp, dest)
            except FileExistsError:
                raise
            except OSError:
                if dest.exists():
                    raise FileExistsError(str(dest))
                os.replace(tmp, dest)
            else:
                tmp.unlink()
    except BaseException:
        remove_quietly(tmp)
        raise
    try:
        fsync_dir(dest.parent)
    except OSError as e:
        # The rename is done: the new file is in place for every reader. Only its surviving a power cut right
        # now is unsure; raising here said "the previous file is unchanged", which was no longer true.
        log.warning("%s is written, but its folder could not be synced to disk: %s", dest, e)


def _write_then_commit(dest: Path, write, overwrite: bool) -> None:
    """`write(file)` into a fresh temp beside `dest`, flush it to disk, then commit it (all or nothing)."""
    tmp = temp_path_for(dest)
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        remove_quietly(tmp)
        raise
    commit_temp(tmp, dest, overwrite)


def write_bytes_atomic(dest: Path, data: bytes, overwrite: bool = True) -> None:
    _write_then_commit(Path(dest), lambda f: f.write(data), overwrite)


def copy_file_atomic(src: Path, dest: Path, overwrite: bool = False) -> None:
    """Copy `src` to `dest` (never moving or touching `src`), all or nothing. `src` must be a
    regular file (files.NotRegularFile otherwise): a pipe would block, a device never end."""
    from .files import open_regular

    with os.fdopen(open_regular(src), "rb") as fin:
        _write_then_commit(Path(dest), lambda f: shutil.copyfileobj(fin, f, 1024 * 1024), overwrite)


def remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def clean_stale_temps(dest: Path) -> list[Path]:
    """Remove the stale temporary files a killed writer of `dest` left beside it (see
    clean_stale_temps_in), including the older unmarked ones."""
    dest = Path(dest)
    return clean_stale_temps_in(dest.parent, legacy=lambda name: name == dest.name, only_for=dest.name)
