"""The hand-written prediction script `benchmarks/predict.py` times `learnloop predict` against: what a user writes
without a library. PIL open, convert, resize; float and normalise per image; a torch DataLoader with 2 workers;
the same model (rebuilt from the model file's weights and recorded statistics), probabilities to a CSV.

Run: `python benchmarks/hand_predict.py MODEL_FILE FOLDER OUT.csv [--workers 2] [--bs 64] [--threads N]`.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from learnloop.nn import image_cnn


class Photos(Dataset):
    """Every .jpg under a folder: opened, converted to RGB, resized, normalised."""

    def __init__(self, root: Path, size: tuple[int, int], mean: list[float], std: list[float]) -> None:
        self.files = sorted(str(p) for p in root.rglob("*.jpg"))
        self.size = size
        self.mean, self.std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.files[i]) as im:
            im = im.convert("RGB").resize(self.size[::-1], Image.BILINEAR)
        x = torch.from_numpy(np.array(im)).permute(2, 0, 1).float().div(255)
        return (x - self.mean) / self.std


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("folder", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--threads", type=int, help="torch threads in this process (default: torch's, one per core)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    state = torch.load(args.model, weights_only=True)
    model = image_cnn(**state["arch"]["kwargs"])
    model.load_state_dict(state["model"])
    model.eval()
    spec = state["input"]
    ds = Photos(args.folder, tuple(spec["size"]), spec["mean"], spec["std"])
    dl = DataLoader(ds, batch_size=args.bs, num_workers=args.workers)
    with open(args.out, "w", newline="") as f, torch.no_grad():
        writer = csv.writer(f)
        writer.writerow(["path", "label", "prob"])
        i = 0
        for xb in dl:
            probs = model(xb).softmax(-1)
            values, indices = probs.max(-1)
            for v, k in zip(values.tolist(), indices.tolist()):
                writer.writerow([ds.files[i], state["classes"][k], f"{v:.6f}"])
                i += 1


if __name__ == "__main__":
    main()
