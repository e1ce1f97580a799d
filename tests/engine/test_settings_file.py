"""Settings: defaults, round trip, and the files users break by hand or by crashing."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from app.settings import (DEFAULT_MODEL, Settings, config_dir, load_settings, resolve_device, settings_path,
                          torch_dtype)


def test_the_config_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("METACANVAS_CONFIG_DIR", str(tmp_path / "cfg"))
    assert config_dir() == tmp_path / "cfg"
    assert settings_path() == tmp_path / "cfg" / "settings.json"
    monkeypatch.delenv("METACANVAS_CONFIG_DIR")
    assert config_dir().name == "MetaCanvas Studio"


def test_no_file_gives_the_defaults(tmp_path):
    s = Settings.load(tmp_path / "settings.json")
    assert s == Settings() and s.warning is None
    assert s.model_folders == [str(DEFAULT_MODEL)] and s.active_model == str(DEFAULT_MODEL)
    assert DEFAULT_MODEL == Path(__file__).resolve().parents[2] / "models" / "metacanvas-shapes"
    assert (s.device, s.precision, s.preview, s.autosave_minutes, s.recent_projects) == ("auto", "auto", True, 5, [])
    # Memory: picked from the GPU's memory when the model loads (app/core/memory.py).
    assert (s.offload, s.vae_tiling, s.vae_slicing, s.planner_offload) == ("auto", None, None, None)


def test_save_then_load_round_trips_through_the_env_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("METACANVAS_CONFIG_DIR", str(tmp_path / "new" / "dir"))
    s = Settings(device="cpu", precision="bfloat16", preview=False, autosave_minutes=0,
                 model_folders=["/models/a", "/models/b"], active_model="/models/b")
    s.add_recent("/p/one.mcproj")
    s.add_recent("/p/two.mcproj")
    s.add_recent("/p/one.mcproj")
    path = s.save()
    assert path == tmp_path / "new" / "dir" / "settings.json"
    assert json.loads(path.read_text())["recent_projects"] == ["/p/one.mcproj", "/p/two.mcproj"]
    assert "warning" not in json.loads(path.read_text())
    loaded = load_settings()  # the user's file, found through METACANVAS_CONFIG_DIR
    assert loaded == s and loaded.warning is None
    # Atomic write: nothing but the settings file is left behind.
    assert os.listdir(path.parent) == ["settings.json"]


def test_recent_projects_are_capped():
    s = Settings()
    for i in range(15):
        s.add_recent(f"/p/{i}.mcproj")
    assert s.recent_projects == [f"/p/{i}.mcproj" for i in range(14, 4, -1)]


@pytest.mark.parametrize("content", [b"{\"device\": \"cpu\", ", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b""],
                         ids=["truncated", "binary", "not-an-object", "empty"])
def test_a_corrupt_file_gives_defaults_a_warning_and_keeps_the_file(tmp_path, content):
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    s = Settings.load(path)
    assert s == Settings()
    assert s.warning and "could not be read" in s.warning and "settings.json.corrupt" in s.warning
    assert (tmp_path / "settings.json.corrupt").read_bytes() == content
    s.save(path)  # the next save writes a good file; the user's bad one is still beside it
    assert Settings.load(path).warning is None


def test_a_bad_value_resets_only_that_field(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"device": "tpu", "precision": "bfloat16", "autosave_minutes": True,
                                "preview": False, "recent_projects": "not a list", "from_the_future": 1}))
    s = Settings.load(path)
    assert (s.device, s.precision, s.autosave_minutes, s.preview, s.recent_projects) == (
        "auto", "bfloat16", 5, False, [])
    assert "device" in s.warning and "autosave_minutes" in s.warning and "recent_projects" in s.warning
    assert "precision" not in s.warning and "from_the_future" not in s.warning


def test_resolve_device():
    expected_auto = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto") == expected_auto
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("cuda") == "cpu"  # a settings file from a GPU machine still opens
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    assert torch_dtype("bfloat16") is torch.bfloat16
    assert Settings(device="cpu", precision="float16").torch_dtype() is torch.float16
    with pytest.raises(ValueError):
        torch_dtype("int8")


def test_an_older_file_with_the_old_float32_default_moves_to_auto_but_a_chosen_float32_stays(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"device": "auto", "precision": "float32", "preview": True}))  # before memory options
    assert Settings.load(old).precision == "auto"
    chosen = Settings()
    chosen.precision = "float32"
    chosen.save(tmp_path / "new.json")  # written with the memory options: float32 is the user's choice
    assert Settings.load(tmp_path / "new.json").precision == "float32"


def test_the_engine_threads_leave_a_core_to_the_window_unless_chosen(tmp_path):
    from app.settings import studio_cpu_threads

    assert (studio_cpu_threads(0, cores=2), studio_cpu_threads(0, cores=1), studio_cpu_threads(0, cores=16)) == (1, 1, 15)
    assert studio_cpu_threads(3, cores=2) == 2 and studio_cpu_threads(3, cores=4) == 3  # never more than the cores
    assert Settings().cpu_threads == 0
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"cpu_threads": -2}))
    s = Settings.load(path)
    assert s.cpu_threads == 0 and "cpu_threads" in s.warning
    path.write_text(json.dumps({"cpu_threads": 3_000_000_000}))  # a typo: no job may start that many threads
    s = Settings.load(path)
    assert s.cpu_threads == 0 and "cpu_threads" in s.warning
    path.write_text(json.dumps({"cpu_threads": 4}))
    assert Settings.load(path).cpu_threads == 4
