"""A trained learner on a labelled folder of photos: loss, accuracy and per-class precision and recall, the confusion
matrix and the worst predictions, written as metrics.json, confusion.png and top_losses.png."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .data.dataset import labelled_images
from .errors import DataError, MissingFileError
from .inference import classes
from .plots import confusion_matrix, plot_confusion_matrix, show_batch, top_losses

SPLIT_DIRS = ("val", "valid", "test")  # a root holding one of these is evaluated on it, in this order


def labelled_folder(folder: str | os.PathLike) -> tuple[Path, list[str], list[str]]:
    """`(folder, files, class names)` of `folder/<label>/*`, or of `folder/val/` (`valid/`, `test/`) when it holds
    one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"{folder} is not a folder: pass a folder of <label>/ folders of images, or a root "
                               f"holding val/ (or valid/, test/).")
    folder = next((folder / d for d in SPLIT_DIRS if (folder / d).is_dir()), folder)
    files, names = labelled_images(folder)
    if not files:
        raise DataError(f"no images in a class folder of {folder}: lay it out as {folder}/<label>/*.jpg, or pass a "
                        f"root holding val/ (or valid/, test/).")
    return folder, files, names


def class_indices(names: list[str], known: list | None) -> list[int]:
    """The class index of each folder name; a DataError naming the classes the model does not know."""
    index = {str(c): i for i, c in enumerate(known)} if known is not None else {n: int(n) for n in names if n.isdigit()}
    unknown = sorted(set(names) - set(index))
    if unknown:
        knows = f"it knows {list(index)}" if known is not None else "its outputs have no names but 0, 1, ..."
        raise DataError(f"class{'es' * (len(unknown) > 1)} {', '.join(unknown)} in the folder: the model does not "
                        f"know {'them' if len(unknown) > 1 else 'it'} ({knows}). Remove or rename those folders.")
    return [index[n] for n in names]


def evaluate(learn: Any, folder: str | os.PathLike, bs: int | None = None, n_workers: int = 0) -> dict[str, Any]:
    """Loss, accuracy and per-class precision, recall and count of `learn` on a labelled photo folder, and what
    `write_report` draws: `{"folder", "n", "loss", "accuracy", "classes": {label: {...}}, "preds", "targets",
    "files"}`. The batches are those of validation (the model file's batch size), so on the run's own val/ folder the
    accuracy is the run's last `valid_accuracy` exactly."""
    folder, files, names = labelled_folder(folder)
    known = classes(learn)
    targets = class_indices(names, known)
    dl = learn.dls.test_dl(files, labels=targets, bs=bs, n_workers=n_workers)
    try:
        preds, targets = learn.get_preds(dl)
    finally:
        dl.close()
    results = learn.recorder.valid_results  # the same pass's loss and metrics, as a fit's validation computes them
    n_classes = preds.shape[-1]
    labels = [str(c) for c in known] if known is not None else [str(i) for i in range(n_classes)]
    cm = confusion_matrix(preds, targets, n_classes)
    per_class = {label: {"precision": _ratio(cm[i, i], cm[:, i].sum()), "recall": _ratio(cm[i, i], cm[i].sum()),
                         "count": int(cm[i].sum())} for i, label in enumerate(labels)}
    return {"folder": str(folder), "n": len(files), "loss": results["loss"], "accuracy": results["accuracy"],
            "classes": per_class, "confusion": cm.tolist(), "preds": preds, "targets": targets, "files": files}


def _ratio(a: torch.Tensor, b: torch.Tensor) -> float | None:
    return float(a) / float(b) if b else None  # no prediction of (or no image of) the class: undefined


def write_report(learn: Any, report: dict[str, Any], out: str | os.PathLike, k: int = 16) -> list[Path]:
    """metrics.json, confusion.png and top_losses.png (the `k` worst predictions, as the model saw them) in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plain = {key: value for key, value in report.items() if key not in ("preds", "targets", "files")}
    (out / "metrics.json").write_text(json.dumps(plain, indent=2) + "\n")
    labels = list(report["classes"])
    plot_confusion_matrix(torch.tensor(report["confusion"]), out / "confusion.png", labels, show=False)
    rows = top_losses(learn, k=min(k, report["n"]), preds=(report["preds"], report["targets"]))
    pipeline = learn.dls.pipeline
    xb = torch.stack([pipeline.load(report["files"][r["index"]]) for r in rows])
    titles = [f"{labels[r['target']]} as {labels[r['predicted']]}\nloss {r['loss']:.2f}, p {r['prob']:.2f}"
              for r in rows]
    show_batch((xb, [r["target"] for r in rows]), out / "top_losses.png", n=len(rows), show=False, titles=titles)
    return [out / "metrics.json", out / "confusion.png", out / "top_losses.png"]


def format_report(report: dict[str, Any]) -> str:
    """The lines `learnloop evaluate` prints: loss, accuracy, and a per-class table."""
    width = max(8, *(len(label) for label in report["classes"]))
    lines = [f"{report['folder']}: {report['n']} images",
             f"loss {report['loss']:.4f}  accuracy {report['accuracy']:.4f}",
             "", f"{'class':<{width}}  precision  recall  count"]
    for label, c in report["classes"].items():
        p, r = ("-" if v is None else f"{v:.3f}" for v in (c["precision"], c["recall"]))
        lines.append(f"{label:<{width}}  {p:>9}  {r:>6}  {c['count']:>5}")
    return "\n".join(lines)
