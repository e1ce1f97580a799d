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


@pytest.fixture(autouse=True)
def save_changes_answers(monkeypatch):
    """The "save changes?" question is modal; tests answer it. By default "Discard" (so closing a test's
    window never blocks); a test sets `answers.next` to answer otherwise and reads `answers.asked`."""
    from app.ui import project_actions

    class Answers:
        next = project_actions.SaveChoice.DISCARD
        save_path: str | None = None
        asked: list[str] = []

    answers = Answers()
    answers.asked = []

    def ask(parent, name):
        answers.asked.append(name)
        return answers.next

    monkeypatch.setattr(project_actions, "ask_save_changes", ask)
    monkeypatch.setattr(project_actions, "choose_save_path", lambda parent: answers.save_path)
    return answers
