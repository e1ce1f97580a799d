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


@pytest.fixture(scope="session")
def tiny_pipe():
    """A random MetaCanvas model with the embedded default's architecture at a tiny size: a real
    Qwen2.5-VL planner (word-level tokenizer) and a real SANA transformer, pixel space, 64 x 64.
    The connectors' zero-initialised outputs are nudged so the canvas branch really acts."""
    import torch

    from app.train.build import build_model
    from app.train.recipe import Recipe

    recipe = Recipe.load(os.path.join(os.path.dirname(__file__), "..", "app", "train", "recipes", "tiny-test.json"))
    torch.manual_seed(0)
    pipe = build_model(recipe)
    with torch.no_grad():
        for name, p in pipe.adapter.named_parameters():
            if "canvas_connector" in name and p.abs().sum() == 0:
                p.normal_(0, 0.02)
    return pipe.eval()


@pytest.fixture(scope="session")
def tiny_video_model(tmp_path_factory):
    """An untrained video model folder with the embedded video model's format and classes (a Wan
    transformer of one layer on the embedded planner, 48 x 48, 17 frames): loads in about a second."""
    from app.train.video import save_untrained_video_model

    return save_untrained_video_model(tmp_path_factory.mktemp("models") / "tiny-video")


@pytest.fixture(autouse=True)
def save_changes_answers(monkeypatch):
    """The "save changes?" question is modal; tests answer it. By default "Discard" (so closing a test's
    window never blocks); a test sets `answers.next` to answer otherwise and reads `answers.asked`."""
    from app.ui import project_actions

    class Answers:
        next = project_actions.SaveChoice.DISCARD
        save_path: str | None = None
        asked: list[str] = []
        drop_jobs = True  # "Stop them" when jobs still run as a project closes
        jobs_asked: list[int] = []
        stop_export = True  # "Stop it" when an export still runs as the studio quits
        export_asked: int = 0
        replace_changed = False  # "Cancel" when the project file changed on disk since it was opened
        changed_asked: list[str] = []

    answers = Answers()
    answers.asked, answers.jobs_asked, answers.changed_asked = [], [], []

    def ask(parent, name):
        answers.asked.append(name)
        return answers.next

    def ask_jobs(parent, count):
        answers.jobs_asked.append(count)
        return answers.drop_jobs

    monkeypatch.setattr(project_actions, "ask_save_changes", ask)
    def ask_export(parent):
        answers.export_asked += 1
        return answers.stop_export

    monkeypatch.setattr(project_actions, "ask_drop_jobs", ask_jobs)
    monkeypatch.setattr(project_actions, "ask_stop_export", ask_export)
    monkeypatch.setattr(project_actions, "choose_save_path", lambda parent: answers.save_path)

    def ask_changed(parent, name):
        answers.changed_asked.append(name)
        return answers.replace_changed

    monkeypatch.setattr(project_actions, "ask_replace_changed", ask_changed)
    return answers
