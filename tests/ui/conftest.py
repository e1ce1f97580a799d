"""Qt offscreen, and every place the studio writes (settings, recovery copies, untitled projects)
redirected into the test's tmp folder so tests never touch the user's files."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("METACANVAS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("METACANVAS_RECOVERY_DIR", str(tmp_path / "recovery"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    yield
