"""Project files: the bundle layout, imports that copy (never move), clear errors on broken files,
autosave/recovery, and saves that survive being killed at any instant."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from app.media import project_file as pf
from app.media.errors import MediaError, ProjectError
from app.media.probe import load_image
from app.media.project import Project

REPO = Path(__file__).resolve().parents[2]


def _saved_project(tmp_path, png_file) -> tuple[Project, Path]:
    path = tmp_path / "Trip.mcproj"
    p = Project("Trip")
    change = pf.import_media(p, path, png_file)
    p.apply(change)
    p.add_clip(change["item"]["id"], instruction="make it blue")
    pf.save_project(p, path)
    return p, path


def test_bundle_layout_and_round_trip(tmp_path, png_file):
    before = png_file.read_bytes()
    p, path = _saved_project(tmp_path, png_file)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["Trip.mcproj", "Trip_media", "picture.png"]
    item = next(iter(p.media.values()))
    copy = pf.media_path(path, item)
    assert copy.parent == tmp_path / "Trip_media" and copy.read_bytes() == before
    assert png_file.read_bytes() == before  # the user's file: copied, not moved or changed
    assert (item.kind, item.width, item.height, item.name) == ("image", 50, 30, "picture.png")
    doc = json.loads(path.read_text())
    assert doc["format"] == "metacanvas-project" and doc["schema"] == pf.SCHEMA_VERSION
    assert pf.open_project(path).to_dict() == p.to_dict()
    assert pf.missing_media(p, path) == []
    pf.save_project(p, path)
    assert (tmp_path / "Trip.mcproj.bak").is_file()


def test_importing_the_same_file_twice_makes_two_copies(tmp_path, png_file):
    p, path = _saved_project(tmp_path, png_file)
    p.apply(pf.import_media(p, path, png_file))
    assert len({m.path for m in p.media.values()}) == 2
    assert len(list((tmp_path / "Trip_media").iterdir())) == 2


def test_import_refuses_what_is_not_media(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture at all, just words\n")
    with pytest.raises(MediaError, match="text file"):
        pf.import_media(Project(), tmp_path / "P.mcproj", bad)
    assert not (tmp_path / "P_media").exists() or not any((tmp_path / "P_media").iterdir())


def test_result_is_stored_as_a_new_file(tmp_path, png_file):
    p, path = _saved_project(tmp_path, png_file)
    clip = p.tracks["image"][0]
    original = pf.media_path(path, p.media[clip.media_id]).read_bytes()
    result = np.full((30, 50, 3), 77, np.uint8)
    p.apply(pf.store_result(p, path, clip.id, result, request={"seed": 1}))
    new = p.media[p.clip(clip.id).active.media_id]
    assert new.id != clip.media_id and np.array_equal(load_image(pf.media_path(path, new)), result)
    assert pf.media_path(path, p.media[clip.media_id]).read_bytes() == original
    # A clip made from an image (image-to-video) is not a version of the still: it starts its own clip
    # on the video track, with the request on its first version; the still keeps its versions.
    p.apply(pf.store_result(p, path, clip.id, np.zeros((4, 31, 33, 3), np.uint8), fps=8,
                            request={"instruction": "the ball rolls"}))
    assert len(p.clip(clip.id).versions) == 2
    made = p.tracks["video"][-1]
    video = p.media[made.active.media_id]
    assert (video.kind, video.width, video.height, video.frames) == ("video", 34, 32, 4)
    assert made.instruction == "the ball rolls" and made.versions[0].request["instruction"] == "the ball rolls"


def test_a_result_copied_to_a_new_folder_without_its_plan_is_kept(tmp_path, monkeypatch):
    """Save As while a result was written: it is copied into the new project's folder. A plan that cannot be
    copied leaves the result without a plan (as write_result does), not the result thrown away."""
    import shutil

    class Plan:
        def save(self, path):
            Path(path).write_bytes(b"plan")

    written = pf.write_result(tmp_path / "a.mcproj", np.full((8, 8, 3), 50, np.uint8), plan=Plan())
    assert written["plan"]
    real = shutil.copyfileobj

    def no_plans(src, dst, *a, **k):
        if ".plan.safetensors" in str(dst.name):  # the temporary file the plan is copied into
            raise OSError(28, "No space left on device")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(shutil, "copyfileobj", no_plans)
    out = pf.copy_result(tmp_path / "a.mcproj", tmp_path / "b.mcproj", written)
    assert out["plan"] is None
    assert np.array_equal(load_image(pf.media_dir(tmp_path / "b.mcproj") / out["name"]), np.full((8, 8, 3), 50))
    assert sorted(p.name for p in pf.media_dir(tmp_path / "b.mcproj").iterdir()) == [out["name"]]  # no half plan


def test_a_result_whose_plan_cannot_be_written_is_kept_without_it(tmp_path):
    """The plan is written after the result; safetensors says a failed write (a full disk) in its own error type,
    not OSError. The result must land without its plan, no half-written plan file left beside it."""
    from safetensors import SafetensorError

    class Plan:
        def save(self, path):
            Path(path).write_bytes(b"half a pl")
            raise SafetensorError("Error while serializing: IoError(No space left on device)")

    frames = np.full((5, 16, 16, 3), 50, np.uint8)
    written = pf.write_result(tmp_path / "a.mcproj", frames, 8.0, plan=Plan())
    assert written["plan"] is None and written["frames"] == 5
    assert sorted(p.name for p in pf.media_dir(tmp_path / "a.mcproj").iterdir()) == [written["name"]]


def test_save_as_copies_media(tmp_path, png_file):
    p, path = _saved_project(tmp_path, png_file)
    new = tmp_path / "elsewhere" / "Copy.mcproj"
    pf.save_project(p, new, media_from=path)
    reopened = pf.open_project(new)
    assert pf.missing_media(reopened, new) == []


def test_save_as_where_a_file_has_the_media_folders_name_says_so(tmp_path, png_file):
    """It said "'B.mcproj' appeared while saving ... Save again to replace it", of a file that never existed, for
    ever: the media folder could not be made over the file named like it."""
    p, path = _saved_project(tmp_path, png_file)
    (tmp_path / "B_media").write_bytes(b"the user's own file")
    for _ in range(2):
        with pytest.raises(ProjectError, match="'B_media', is taken by a file"):
            pf.save_project(p, tmp_path / "B.mcproj", media_from=path)
    assert (tmp_path / "B_media").read_bytes() == b"the user's own file" and not (tmp_path / "B.mcproj").exists()


def test_a_file_whose_name_is_not_utf8_is_imported_and_the_project_saves(tmp_path, png_file):
    """A Latin-1 name ('caf\xe9.png' in bytes) imported fine, then every save and autosave failed: the project held
    the name's lone surrogates, which JSON in UTF-8 cannot write."""
    odd = os.path.join(os.fsencode(tmp_path), b"caf\xe9.png")
    with open(odd, "wb") as f:
        f.write(png_file.read_bytes())
    p = Project("p")
    path = tmp_path / "p.mcproj"
    change = pf.import_media(p, path, os.fsdecode(odd))
    p.apply(change)
    pf.save_project(p, path)
    (item,) = pf.open_project(path).media.values()
    assert item.name == "caf\ufffd.png" and pf.missing_media(p, path) == []


def test_a_project_in_a_folder_whose_name_is_not_utf8_is_saved_autosaved_and_recovered(tmp_path):
    """Its recovery copy names the project's path, which UTF-8 could not write: every autosave failed, and the
    work of a crash was lost."""
    folder = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    os.mkdir(folder)
    path = os.fsdecode(folder) + "/p.mcproj"
    project = Project("in a Latin-1 folder")
    pf.save_project(project, path)
    pf.write_recovery(project, path, root=tmp_path / "recovery")
    (found,) = pf.find_recoveries(root=tmp_path / "recovery")
    assert os.fsencode(str(found.project_path)) == os.fsencode(path) and found.project_path.exists()


def test_open_errors_are_clear(tmp_path, png_file):
    with pytest.raises(ProjectError, match="not found"):
        pf.open_project(tmp_path / "nothing.mcproj")
    p, path = _saved_project(tmp_path, png_file)
    pf.save_project(p, path)  # makes a .bak
    good = path.read_bytes()
    cases = {b"": "empty.*backup", b'{"format": "metacanvas-project", "sch': "invalid JSON.*backup",
             b'{"hello": 1}': "not a MetaCanvas project", b"\x89PNG\r\n\x1a\n\xff\xfe": "not",
             json.dumps({"format": "metacanvas-project", "schema": 99, "project": {}}).encode(): "newer version"}
    for data, message in cases.items():
        path.write_bytes(data)
        with pytest.raises(ProjectError, match=message):
            pf.open_project(path)
    doc = json.loads(good)
    doc["project"]["media"] = {}
    path.write_text(json.dumps(doc))
    with pytest.raises(ProjectError, match="damaged.*refers to media"):
        pf.open_project(path)


def test_media_paths_cannot_escape_the_media_folder(tmp_path, png_file):
    p, path = _saved_project(tmp_path, png_file)
    item = next(iter(p.media.values()))
    for bad in ("../../etc/passwd", "/etc/passwd", "C:/Windows/x.png"):
        item.path = bad
        with pytest.raises(ProjectError, match="invalid path"):
            pf.media_path(path, item)


def test_failed_save_keeps_the_previous_save(tmp_path, png_file, monkeypatch):
    p, path = _saved_project(tmp_path, png_file)
    good = path.read_bytes()
    p.name = "changed"

    def disk_full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ProjectError, match="No space left.*unchanged"):
        pf.save_project(p, path, keep_backup=False)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert not [x for x in tmp_path.iterdir() if x.name.endswith(".part")]
    p.settings.fps = float("nan")  # a value JSON cannot hold: refused before touching the disk
    with pytest.raises(ProjectError, match="cannot be saved"):
        pf.save_project(p, path)
    assert path.read_bytes() == good


# ----------------------------------------------------------------------------- recovery


def test_autosave_and_recovery(tmp_path, png_file):
    root = tmp_path / "recovery"
    p, path = _saved_project(tmp_path, png_file)
    time.sleep(0.01)
    p.name = "edited since the save"
    rec_file = pf.write_recovery(p, path, root=root)
    assert rec_file == pf.autosave_path(path, root=root) and rec_file.parent == root
    found = pf.find_recoveries(root)
    assert [r.path for r in found] == [rec_file] and found[0].project_path == path.resolve()
    assert found[0].media_dir == (tmp_path / "Trip_media").resolve()
    assert pf.load_recovery(found[0]).name == "edited since the save"
    # The offer names a saved project as its file is ("a recovery copy of 'Untitled'" said nothing of which).
    p.name = "Untitled"
    pf.write_recovery(p, path, root=root)
    assert pf.find_recoveries(root)[0].name == path.name

    untitled = Project("draft")
    u_file = pf.write_recovery(untitled, None, root=root, media_path_of=pf.untitled_project_path(untitled, tmp_path / "u"))
    assert {r.path for r in pf.find_recoveries(root)} == {rec_file, u_file}

    time.sleep(0.01)
    # Saved since by someone else (a studio's own save removes its copy): the copy left behind is a crash's work,
    # still offered. A copy named as before writer tags keeps the old rule: saved since, nothing to recover.
    legacy = rec_file.with_name(rec_file.name.replace(f".w{os.getpid()}", ""))
    legacy.write_bytes(rec_file.read_bytes())
    pf.save_project(p, path)
    assert {r.path for r in pf.find_recoveries(root)} == {rec_file, u_file}
    legacy.unlink()
    (root / "junk.autosave.json").write_text("{ broken")  # a broken recovery file is skipped, not fatal
    assert {r.path for r in pf.find_recoveries(root)} == {rec_file, u_file}
    pf.clear_recovery(None, untitled, root=root)
    pf.clear_recovery(path, root=root)
    assert pf.find_recoveries(root) == [] and not rec_file.exists()


def test_each_studio_keeps_its_own_recovery_copy_of_a_project(tmp_path, png_file):
    """Two studios on one project shared one recovery file: the one closing cleanly removed it, and a crash of the
    other then lost its unsaved work. Each writes its own; another studio's that still runs is not offered as a
    crash's, and one whose studio has ended is."""
    root = tmp_path / "recovery"
    p, path = _saved_project(tmp_path, png_file)
    mine = pf.write_recovery(p, path, root=root)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    theirs = pf.autosave_path(path, root=root, writer=int(ended.stdout))
    running = pf.autosave_path(path, root=root, writer=os.getppid())
    assert len({mine, theirs, running}) == 3
    for other in (theirs, running):
        other.write_bytes(mine.read_bytes())
    pf.clear_recovery(path, root=root)  # this studio's clean close: its own copy only
    assert not mine.exists() and theirs.exists() and running.exists()
    assert [r.path for r in pf.find_recoveries(root)] == [theirs]


def test_a_crashed_studios_copy_is_offered_when_another_process_has_taken_its_pid(tmp_path, png_file):
    """Process ids are reused: a crashed studio's recovery copy was hidden as "another studio's, still running"
    for as long as any later process held its pid, so the crash's work was never offered."""
    root = tmp_path / "recovery"
    p, path = _saved_project(tmp_path, png_file)
    mine = pf.write_recovery(p, path, root=root)
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        crashed = pf.autosave_path(path, root=root, writer=later.pid)  # written a minute before `later` started
        doc = json.loads(mine.read_text(encoding="utf-8"))
        doc["saved_ts"] = time.time() - 60
        crashed.write_text(json.dumps(doc), encoding="utf-8")
        mine.unlink()
        assert [r.path for r in pf.find_recoveries(root)] == [crashed]
    finally:
        later.kill()
        later.wait()


def test_recovery_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("METACANVAS_RECOVERY_DIR", str(tmp_path / "r"))
    assert pf.recovery_dir() == tmp_path / "r"
    assert pf.autosave_path(tmp_path / "A.mcproj").parent == tmp_path / "r"
    monkeypatch.delenv("METACANVAS_RECOVERY_DIR")
    monkeypatch.setenv("METACANVAS_DATA_DIR", str(tmp_path / "data"))
    assert pf.recovery_dir() == tmp_path / "data" / "recovery"
    assert pf.untitled_project_path(Project()).is_relative_to(tmp_path / "data" / "untitled")


# ----------------------------------------------------------------------------- kill during save

# The child saves ever newer generations of a large project as fast as it can. Each generation's
# content is a pure function of its number, so the parent can tell a whole save from a torn one.
_MAKE = textwrap.dedent('''
    from app.media.project import Project, Clip, Version, MediaItem

    def make_project(gen):
        p = Project(f"gen {gen}", id="crashtest")
        p.media["m"] = MediaItem("m", "m.mp4", "video", 64, 64, 24, 24.0)
        p.tracks["video"] = [Clip(f"c{i}", "m", i * 1.0, 0.0, 1.0, [Version(f"v{i}", "m", {"seed": gen, "n": i},
                             None, "2025-01-01T00:00:00+00:00")], 0, f"generation {gen} clip {i} " + "x" * 200)
                             for i in range(1500)]
        return p
''')
_CHILD = _MAKE + textwrap.dedent('''
    import sys
    from app.media.project_file import save_project
    path, gen = sys.argv[1], int(sys.argv[2])
    while True:
        gen += 1
        save_project(make_project(gen), path)
        if gen == int(sys.argv[2]) + 1:
            print("ready", flush=True)
''')


@pytest.mark.slow
def test_kill_during_save_leaves_old_or_new_never_broken(tmp_path):
    namespace: dict = {}
    exec(_MAKE, namespace)
    make_project = namespace["make_project"]
    path = tmp_path / "Big.mcproj"
    from app.media.project_file import save_project
    save_project(make_project(0), path)
    assert path.stat().st_size > 500_000
    expected = {}  # generation -> project dict, built on demand

    rng = random.Random(1234)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    last_gen, changed = 0, 0
    for kill in range(40):
        # -S: no site-packages scan (the child needs only the standard library and the repo), so
        # each of the 40 children starts in a few tens of milliseconds.
        child = subprocess.Popen([sys.executable, "-S", "-c", _CHILD, str(path), str(last_gen)], cwd=REPO, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout.readline().strip() == b"ready", child.stderr.read().decode()
        time.sleep(rng.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()

        project = pf.open_project(path)  # never empty, never torn
        gen = int(project.name.split()[1])
        if gen not in expected:
            expected[gen] = make_project(gen).to_dict()
        assert project.to_dict() == expected.pop(gen), f"kill {kill}: the file mixes generations"
        assert gen > last_gen  # at least the save reported ready is there: nothing went backwards
        changed += gen > last_gen + 1
        last_gen = gen
        backup = pf.open_project(path.with_name(path.name + ".bak"))  # the backup is whole too
        assert int(backup.name.split()[1]) <= gen
    # The kills really landed while saves were going on: most found newer saves than the one
    # reported ready, and some caught a save mid-write (its temporary file is left behind).
    torn = len(list(tmp_path.glob(".Big.mcproj.*.part")))
    print(f"kills: 40, after further saves: {changed}, caught mid-write: {torn}, last generation: {last_gen}")
    assert changed >= 5


def test_a_save_whose_folder_sync_fails_after_the_rename_says_it_saved(tmp_path, png_file, monkeypatch):
    """The folder's fsync failing after the new file was renamed into place raised "the previous save is unchanged",
    while the new save was the one in place."""
    from app.media import atomic

    p, path = _saved_project(tmp_path, png_file)
    p.name = "the new save"

    def sync_fails(folder):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic, "fsync_dir", sync_fails)
    pf.save_project(p, path)
    assert pf.open_project(path).name == "the new save"


def test_saves_after_a_failed_one_leave_no_backup_temp_behind(tmp_path, png_file, monkeypatch):
    """A save that failed after its backup left the backup and the project as two links of one file; the next
    backup's rename between them did nothing and left a hidden temporary file beside the project."""
    from app.media import atomic

    p, path = _saved_project(tmp_path, png_file)
    real = atomic.write_bytes_atomic

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "write_bytes_atomic", disk_full)
    with pytest.raises(ProjectError):
        pf.save_project(p, path)
    monkeypatch.setattr(atomic, "write_bytes_atomic", real)
    pf.save_project(p, path)
    assert sorted(f.name for f in tmp_path.iterdir() if f.name.startswith(".")) == []
