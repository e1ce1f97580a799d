"""Writing files so that a crash, a full disk or a cancel never leaves a half-written file where the
user looks, and never replaces a file the user did not ask us to replace.

The recipe: write to a temporary file in the destination's own folder (so the final rename stays on
one file system and is atomic), flush and fsync it, then move it into place and fsync the folder so
the rename itself survives a power cut. Temporary names start with a dot and end in `.part` so the
user's file browser hides them and a later save can tell them apart from real files.
"""
from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

TEMP_SUFFIX = ".part"


def temp_path_for(dest: Path, suffix: str = "") -> Path:
    """A fresh hidden temporary path beside `dest`. `suffix` lets writers that infer the format from
    the extension (PIL, FFmpeg) see the right one."""
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}{TEMP_SUFFIX}")


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
        fsync_dir(dest.parent)
    except BaseException:
        remove_quietly(tmp)
        raise


def write_bytes_atomic(dest: Path, data: bytes, overwrite: bool = True) -> None:
    dest = Path(dest)
    tmp = temp_path_for(dest)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        remove_quietly(tmp)
        raise
    commit_temp(tmp, dest, overwrite)


def copy_file_atomic(src: Path, dest: Path, overwrite: bool = False) -> None:
    """Copy `src` to `dest` (never moving or touching `src`), all or nothing."""
    dest = Path(dest)
    tmp = temp_path_for(dest)
    try:
        shutil.copyfile(src, tmp)
        fsync_file(tmp)
    except BaseException:
        remove_quietly(tmp)
        raise
    commit_temp(tmp, dest, overwrite)


def remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def clean_stale_temps(dest: Path, older_than_s: float = 120.0) -> None:
    """Remove temporary files a killed writer left beside `dest`. Only old ones: a young one may
    belong to another process saving right now."""
    dest = Path(dest)
    now = time.time()
    try:
        entries = list(dest.parent.glob(f".{dest.name}.*{TEMP_SUFFIX}"))
    except OSError:
        return
    for p in entries:
        try:
            if now - p.stat().st_mtime > older_than_s:
                p.unlink()
        except OSError:
            pass
