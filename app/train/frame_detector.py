"""Give a video model folder the frame detector it drafts image-to-video clips with.

    python -m app.train.frame_detector --from models/metacanvas-shapes --into models/metacanvas-shapes-video

The detector is the pixel stem and centre heads that the image model's edit drafter learned (app/core/
frame_detector.py says why and how it is used); no weight is trained here. The video model's own files
are left as they are: frame_detector/ is written beside them and named in its model_index.json, each
file written whole or not at all. The video trainer's export does the same for a recipe that names
`frame_detector_from`.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from app.core.checkpoints import (INDEX, ModelFolderError, component_path, load_edit_drafter, read_index,
                                  save_module)
from app.core.frame_detector import FrameDetector, check_matches
from app.core.draft import DraftConfig
from app.train.progress import atomic_json

FOLDER = "frame_detector"


def frame_detector_from(image_model: str | Path) -> FrameDetector:
    """The frame detector an image model folder's edit drafter learned."""
    drafter = load_edit_drafter(image_model)
    if drafter is None or not drafter.config.pixel_width:
        raise ModelFolderError(f"{image_model} has no edit drafter with a pixel stem to take a frame detector from.")
    return FrameDetector.from_edit_drafter(drafter).eval()


def attach_frame_detector(model: str | Path, detector: FrameDetector) -> Path:
    """Write `detector` into the video model folder `model` and name it in its index."""
    model = Path(model)
    index = read_index(model)
    drafter = component_path(model, index, "layout_drafter")
    try:
        config = DraftConfig.from_dict(json.loads((drafter / "config.json").read_text())["draft"]) if drafter else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFolderError(f"The track drafter config in {drafter} cannot be read ({exc}).") from None
    if config is None or not config.track:
        raise ModelFolderError(f"{model} has no track drafter: a frame detector only moves a clip's track drafts.")
    check_matches(detector.config, config)
    tmp = model / (FOLDER + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_module(detector, tmp, {"draft": detector.config.to_dict()})
    shutil.rmtree(model / FOLDER, ignore_errors=True)
    tmp.rename(model / FOLDER)
    atomic_json(model / INDEX, {**index, FOLDER: FOLDER})
    return model / FOLDER


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", required=True, help="an image model folder with an edit drafter")
    parser.add_argument("--into", required=True, help="a video model folder with a track drafter")
    args = parser.parse_args(argv)
    print(f"wrote {attach_frame_detector(args.into, frame_detector_from(args.source))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
