"""The engine's imports run with the cyclic collector paused and freeze what they leave (app/engine/loading.py)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from app.settings import REPO_ROOT


def test_a_later_load_never_freezes_the_users_work_alive():
    """gc.freeze() after a later load's imports froze every object alive then, the open project's too: a cycle
    holding decoded frames was never collected again (78 MB kept after its project closed). Only the first load's
    imports are frozen. In a fresh interpreter: the freeze count of pytest's own process is not zero."""
    script = textwrap.dedent("""
        import gc, weakref
        from app.engine.loading import imports_without_gc_pauses
        with imports_without_gc_pauses():  # the first load, at startup: frozen
            import email.mime.text  # noqa: F401
        first = gc.get_freeze_count()
        class Node: pass
        a, b = Node(), Node(); a.other, b.other = b, a  # a project and its clip, pointing at each other
        alive = weakref.ref(a)
        with imports_without_gc_pauses():  # a later load importing another family's modules
            import xml.dom.minidom  # noqa: F401
        del a, b
        gc.collect()
        print(first > 0, alive() is None)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]  # the first froze; the cycle alive at the later one was collected
