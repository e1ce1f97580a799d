import os

# Before any QApplication exists: the engine tests run headless (CI has no display).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
