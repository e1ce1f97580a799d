"""The model manager dialog (app/ui/models_dialog.py): lists model folders as `models` does, assembles a
planner and a backbone on a worker thread, checks a folder, and chooses a model for stills or clips."""
from __future__ import annotations

import shutil
from pathlib import Path

from app.core.model_catalog import BACKBONE, METACANVAS, PLANNER
from app.settings import DEFAULT_MODEL, DEFAULT_VIDEO_MODEL, Settings
from app.ui.models_dialog import ModelsDialog
from tests.core.checkpoint_folders import base_folders  # noqa: F401 - a fixture


def _row(dlg, name):
    return next(r for r, e in enumerate(dlg.entries) if e.name == name)


def _dialog(qtbot) -> ModelsDialog:
    """The dialog once its first scan (on a worker thread) is shown."""
    dlg = ModelsDialog(Settings())
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: dlg.table.rowCount() > 0, timeout=30_000)
    return dlg


def _add(qtbot, dlg, folder) -> None:
    with qtbot.waitSignal(dlg.scanned, timeout=30_000):
        dlg.add_folder(str(folder))


def test_the_dialog_lists_models_planners_and_backbones_and_says_what_is_missing(qtbot, base_folders, tmp_path):
    broken = shutil.copytree(base_folders["sana"], tmp_path / "folders" / "Sana-no-vae")
    shutil.rmtree(broken / "vae")
    dlg = _dialog(qtbot)
    names = {e.name: e for e in dlg.entries}
    assert names[DEFAULT_MODEL.name].kind == METACANVAS and names[DEFAULT_VIDEO_MODEL.name].kind == METACANVAS
    assert dlg.planner_box.count() == 0  # nothing to assemble yet

    _add(qtbot, dlg, base_folders["qwen"].parent)
    _add(qtbot, dlg, tmp_path / "folders")
    kinds = {e.name: e.kind for e in dlg.entries}
    assert kinds["Qwen2.5-VL-tiny"] == PLANNER and kinds["FLUX.1-Kontext-tiny"] == BACKBONE
    status = dlg.table.item(_row(dlg, "Sana-no-vae"), 6).text()
    assert "lacks vae/" in status
    # Only usable folders are offered for assembly.
    assert dlg.backbone_box.findText("Sana-no-vae (sana)") == -1 and dlg.backbone_box.findText("Sana-tiny (sana)") >= 0

    dlg.table.selectRow(_row(dlg, "Sana-no-vae"))
    assert "cannot be used" in dlg.check_selected() and not dlg.stills_button.isEnabled()


def test_assemble_check_and_use_the_new_model_for_stills(qtbot, base_folders, tmp_path):
    dlg = _dialog(qtbot)
    _add(qtbot, dlg, base_folders["qwen"].parent)
    dlg.planner_box.setCurrentIndex(dlg.planner_box.findText("Qwen2.5-VL-tiny (qwen2.5-vl)"))
    dlg.backbone_box.setCurrentIndex(dlg.backbone_box.findText("Sana-tiny (sana)"))
    out = tmp_path / "my-sana"
    dlg.output_edit.setText(str(out))
    with qtbot.waitSignal(dlg.assembled, timeout=60_000) as made:
        dlg.assemble_button.click()
    assert Path(made.args[0]) == out and (out / "model_index.json").is_file()
    qtbot.waitUntil(lambda: dlg.selected() is not None and dlg.selected().path == out, timeout=30_000)
    entry = dlg.selected()
    assert entry.kind == METACANVAS and entry.path == out
    assert "native" in dlg.table.item(_row(dlg, "my-sana"), 6).text()
    assert "ready to load" in dlg.check_selected()

    with qtbot.waitSignal(dlg.settings_accepted) as chosen:
        dlg.stills_button.click()
    assert chosen.args[0].active_model == str(out) and str(out) in chosen.args[0].model_folders
    assert not dlg.clips_button.isEnabled()  # a SANA model makes stills

    # A failed assembly says why and leaves nothing behind.
    dlg.output_edit.setText(str(out))  # exists now
    dlg.assemble()
    qtbot.waitUntil(lambda: "Assembly failed" in dlg.status.text(), timeout=60_000)
    assert "exists" in dlg.status.text() and dlg.assemble_button.isEnabled()


def test_the_video_model_is_chosen_for_clips(qtbot):
    dlg = _dialog(qtbot)
    dlg.table.selectRow(_row(dlg, DEFAULT_VIDEO_MODEL.name))
    assert dlg.clips_button.isEnabled() and not dlg.stills_button.isEnabled()
    with qtbot.waitSignal(dlg.settings_accepted) as chosen:
        dlg.clips_button.click()
    assert chosen.args[0].video_model == str(DEFAULT_VIDEO_MODEL)


def test_a_model_folder_typed_from_the_home_folder_is_read_as_a_shell_reads_it(qtbot, tmp_path, monkeypatch):
    """"~/models/x" typed in Settings was taken as a folder named "~" ("Model folder ~/models/x does not exist")."""
    from tests.ui.helpers import make_window

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    w = make_window(qtbot, tmp_path)
    dlg = w.settings_dialog()
    dlg.model.setCurrentText("~/models/mine")
    dlg.video_model.setCurrentText("~/models/clips")
    s = dlg.result_settings()
    assert s.active_model == str(tmp_path / "home" / "models" / "mine")
    assert s.video_model == str(tmp_path / "home" / "models" / "clips") and s.video_model in s.video_model_folders
    dlg.reject()
