"""Suite-wide settings: Qt offscreen, a private config folder, few threads (CI has 2 cores)."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_config_dir(tmp_path_factory, monkeypatch):
    """Settings and recovery copies go to a temporary folder, never the user's real config."""
    cfg = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("METACANVAS_CONFIG_DIR", str(cfg))
    monkeypatch.setenv("METACANVAS_DATA_DIR", str(cfg / "data"))
