"""GenEval on the shapes world: GenEval's metadata format, folder layout, rules and summary, with our
OpenCV detector in place of Mask2Former + CLIP.

Rules (as GenEval's evaluation/evaluate_images.py):
- include clauses are ANDed: for each, the first `count` detections of the class must exist; with
  "color", all of those must have it; with "position": [relation, i], each of them must stand in that
  relation (GenEval's relative_position, threshold 0.1) to every object matched by include[i].
- exclude clauses are ORed: `count` or more detections of the class fail the image.
- Detections are taken in confidence order in GenEval; ours have no confidence, so largest first.
Summary (as GenEval's summary_scores.py): per tag the mean over images; overall the mean of the
per-tag accuracies, tags in order of first appearance.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from app.shapes.captions import GENEVAL_TAGS, geneval_metadata, scene_for_metadata
from app.shapes.detect import Detection, detect
from app.shapes.relations import relative_position
from app.shapes.render import render


def make_geneval_metadata(n_prompts: int, seed: int = 43) -> list[dict]:
    """`n_prompts` GenEval records, the six tags taking turns (so each gets n/6, give or take one).

    GenEval de-duplicates prompts; the shapes world has only 4 single_object prompts and 12 counting
    ones, so a tag repeats prompts only after using up all of its distinct ones.
    """
    from app.shapes.video_prompts import take_turns

    rng = np.random.default_rng(seed)
    return take_turns(GENEVAL_TAGS, n_prompts, lambda tag: geneval_metadata(rng, tag))


def _by_class(detections: list[Detection]) -> dict[str, list[Detection]]:
    groups: dict[str, list[Detection]] = {}
    for d in detections:  # detect() returns largest first: GenEval's confidence order
        groups.setdefault(d.cls, []).append(d)
    return groups


def score_detections(detections: list[Detection], metadata: dict) -> tuple[bool, str]:
    """GenEval's `evaluate` on our detections: (correct, reasons joined by newlines)."""
    objects = _by_class(detections)
    correct = True
    reason: list[str] = []
    matched_groups: list[list[Detection] | None] = []
    for req in metadata.get("include", []):
        cls = req["class"]
        matched = True
        found = objects.get(cls, [])[:req["count"]]
        if len(found) < req["count"]:
            correct = matched = False
            reason.append(f"expected {cls}>={req['count']}, found {len(found)}")
        else:
            if "color" in req:
                colors = [d.color for d in found]
                if colors.count(req["color"]) < req["count"]:
                    correct = matched = False
                    reason.append(f"expected {req['color']} {cls}>={req['count']}, found "
                                  f"{colors.count(req['color'])} {req['color']}; and "
                                  + ", ".join(f"{colors.count(c)} {c}" for c in dict.fromkeys(colors)))
            if "position" in req and matched:
                expected, target = req["position"]
                if matched_groups[target] is None:
                    correct = matched = False
                    reason.append(f"no target for {cls} to be {expected}")
                else:
                    for d in found:
                        for t in matched_groups[target]:
                            rels = relative_position(d.box, t.box)
                            if expected not in rels:
                                correct = matched = False
                                reason.append(f"expected {cls} {expected} target, found {' and '.join(rels)} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        cls = req["class"]
        if len(objects.get(cls, [])) >= req["count"]:
            correct = False
            reason.append(f"expected {cls}<{req['count']}, found {len(objects[cls])}")
    return correct, "\n".join(reason)


def score_image(image: np.ndarray, metadata: dict) -> tuple[bool, str]:
    """(correct, reason) for one uint8 RGB image against one GenEval record."""
    return score_detections(detect(np.asarray(image)[..., :3]), metadata)


def ground_truth_images(metadata: dict, n: int, seed: int = 0, size: int = 64) -> list[np.ndarray]:
    """`n` faithful renders of a record: the ceiling a perfect generator would reach."""
    rng = np.random.default_rng(seed)
    return [render(scene_for_metadata(metadata, rng), size) for _ in range(n)]


def write_folder(out_dir, metadata: list[dict], images: list[list[np.ndarray]]) -> Path:
    """GenEval's sample layout: out_dir/00000/metadata.jsonl (one JSON object) and samples/0000.png."""
    out = Path(out_dir)
    for i, (meta, imgs) in enumerate(zip(metadata, images)):
        folder = out / f"{i:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        (folder / "metadata.jsonl").write_text(json.dumps(meta) + "\n")
        for j, img in enumerate(imgs):
            Image.fromarray(np.asarray(img, np.uint8)).save(folder / "samples" / f"{j:04d}.png")
    return out


def score_folder(image_dir, results_path=None) -> list[dict]:
    """Score a GenEval-layout folder; one result per image (GenEval's results.jsonl fields).
    Written as JSON lines to `results_path` when given."""
    results = []
    root = Path(image_dir)
    for sub in sorted(os.listdir(root)):
        folder = root / sub
        if not folder.is_dir() or not sub.isdigit():
            continue
        with open(folder / "metadata.jsonl") as fp:
            metadata = json.load(fp)
        for name in sorted(os.listdir(folder / "samples")):
            path = folder / "samples" / name
            if not path.is_file() or not re.match(r"\d+\.png", name):
                continue
            image = np.asarray(Image.open(path).convert("RGB"))
            correct, reason = score_image(image, metadata)
            results.append({"filename": str(path), "tag": metadata["tag"], "prompt": metadata["prompt"],
                            "correct": bool(correct), "reason": reason, "metadata": json.dumps(metadata)})
    if results_path is not None:
        Path(results_path).parent.mkdir(parents=True, exist_ok=True)
        with open(results_path, "w") as fp:
            for r in results:
                fp.write(json.dumps(r) + "\n")
    return results


def summarize(results: list[dict]) -> dict:
    """GenEval's summary: image and prompt accuracy, per-tag accuracy, overall = mean of tag scores."""
    if not results:
        raise ValueError("no results to summarise: the folder held no GenEval samples (numbered folders 00000, "
                         "00001, ... each with metadata.jsonl and samples/: what `generate --prompts` writes)")
    tags: dict[str, list[bool]] = {}
    prompts: dict[str, bool] = {}
    for r in results:
        tags.setdefault(r["tag"], []).append(bool(r["correct"]))
        prompts[r["metadata"]] = prompts.get(r["metadata"], False) or bool(r["correct"])
    per_tag = {t: {"accuracy": float(np.mean(v)), "correct": int(sum(v)), "total": len(v)} for t, v in tags.items()}
    return {
        "total_images": len(results),
        "total_prompts": len(prompts),
        "correct_images": float(np.mean([r["correct"] for r in results])),
        "correct_prompts": float(np.mean(list(prompts.values()))),
        "tags": per_tag,
        "overall": float(np.mean([v["accuracy"] for v in per_tag.values()])),
    }


def format_table(summary: dict) -> str:
    lines = [f"{'task':<16} {'accuracy':>9} {'correct':>12}"]
    for tag, v in summary["tags"].items():
        lines.append(f"{tag:<16} {v['accuracy']:>9.2%} {v['correct']:>5} / {v['total']:<5}")
    lines.append(f"{'overall':<16} {summary['overall']:>9.5f}   (mean over tasks)")
    lines.append(f"images correct {summary['correct_images']:.2%} of {summary['total_images']}; "
                 f"prompts with a correct image {summary['correct_prompts']:.2%} of {summary['total_prompts']}")
    return "\n".join(lines)


def write_report(summary: dict, out_dir) -> str:
    """geneval_summary.json and geneval_summary.png (per-tag bars) in out_dir; returns the table."""
    import matplotlib
    matplotlib.use("Agg")  # reports are written from worker threads and headless CI
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "geneval_summary.json").write_text(json.dumps(summary, indent=2))
    tags = list(summary["tags"])
    values = [summary["tags"][t]["accuracy"] for t in tags]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    bars = ax.bar(tags + ["overall"], values + [summary["overall"]], color=["#4a7bd0"] * len(tags) + ["#333333"])
    ax.bar_label(bars, fmt="%.2f")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title("GenEval (shapes world)")
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(out / "geneval_summary.png")
    plt.close(fig)
    return format_table(summary)
