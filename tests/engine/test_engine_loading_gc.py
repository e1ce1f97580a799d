"""The engine's imports run with the cyclic collector paused; its first load freezes what they leave
(app/engine/loading.imports_without_gc_pauses, Engine._run_load)."""
from __future__ import annotations

import sys
import types

import app.engine.loading as loading
from app.engine.engine import Engine


def test_only_the_engines_first_load_freezes_what_is_alive(qtbot, monkeypatch):
    """gc.freeze() after a later load's imports froze every object alive then, the open project's too: a cycle
    holding decoded frames was never collected again (78 MB kept after its project closed; a still model switched to
    another family with no clip model loaded). The first load's imports are frozen (the studio's launch: collections
    walking torch's and diffusers' objects stalled the window 160 ms); a later one's are not."""
    frozen = []
    monkeypatch.setattr(loading.gc, "freeze", lambda: frozen.append(True))

    def loader(path, device):
        return object()

    def prepare(path):  # each load imports a library not imported before (another backbone family)
        name = f"_family_{len(sys.modules)}"
        sys.modules[name] = types.ModuleType(name)

    loader.prepare = prepare
    engine = Engine(loader=loader)
    try:
        for folder in ("models/first", "models/second", "models/third"):
            with qtbot.waitSignal(engine.model_ready, timeout=10_000):
                engine.load_model(folder, "cpu")
            assert frozen == [True]  # the first load froze; later ones (the slot emptied first) did not
    finally:
        engine.shutdown()
