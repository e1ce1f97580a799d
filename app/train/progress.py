"""A run's progress.json: written whole or not at all."""
from __future__ import annotations

import json
import os
from pathlib import Path


def atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
