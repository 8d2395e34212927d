"""Seed 004 ("밑바닥부터 Learner 클래스 만들기"): a fastai-style Learner from scratch-built pieces.

    python examples/from_scratch_learner.py                                  # digits, well under a minute on a CPU
    python examples/from_scratch_learner.py --mnist path/to/mnist.npz --epochs 2

Follows the seed's thirteen steps in order: raw images and labels -> a label vocab (the seed's `val2idx`) ->
a Dataset -> collate + DataLoader (a process pool with `--n-workers`) -> Normalize with stats from a batch and
channels-last to channels-first -> Parameter/Module layers -> `simple_cnn` with a hook printing each layer's output
mean/std -> cross-entropy -> SGD -> DataLoaders -> Learner with the seed's metrics callback -> LR finder ->
one-cycle. Writes the LR-finder curve and the one-cycle schedule to `--out`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from learnloop import Callback, Learner
from learnloop.data import DataLoader, DataLoaders, LabelVocab, Normalize, ToCHW, collate
from learnloop.metrics import accuracy
from learnloop.nn import Hooks, Module, cross_entropy, simple_cnn
from learnloop.optim import SGD


# -- 1. raw data: channels-last images and label *names*, as they come off disk ---------------------
def load_digits_raw(seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """scikit-learn's 8x8 digits as uint8 `(N, 8, 8, 1)` images and string labels, split 80/20 at random."""
    from sklearn.datasets import load_digits  # slow to import, so only when digits are used

    d = load_digits()
    images = (d.images * 255 / 16).astype(np.uint8)[..., None]  # 0..16 -> 0..255, a channel axis last
    labels = [str(t) for t in d.target]  # names, like the seed's folder names, not indices
    order = np.random.default_rng(seed).permutation(len(images))
    valid, train = order[: len(images) // 5], order[len(images) // 5 :]
    return images[train], [labels[i] for i in train], images[valid], [labels[i] for i in valid]


def load_mnist_raw(path: str) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """MNIST from an .npz with uint8 x_train, y_train, x_test, y_test, in the same form as `load_digits_raw`."""
    with np.load(path) as d:
        x_train, y_train, x_test, y_test = (d[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    return x_train[..., None], [str(t) for t in y_train], x_test[..., None], [str(t) for t in y_test]


# -- 2. a Dataset: __init__, __len__, __getitem__ -------------------------------------------------------
class ImageDataset:
    """`(image, label index)` pairs: a float `(H, W, C)` image in [0, 1] and the label's index in `vocab`."""

    def __init__(self, images: np.ndarray, labels: list[str], vocab: LabelVocab) -> None:
        self.images, self.vocab = torch.from_numpy(images), vocab
        self.targets = [vocab.index(label) for label in labels]  # looked up once, not per read

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.images[i].float() / 255, self.targets[i]


# -- 11. the seed's metrics callback ------------------------------------------------------------------
class SeedMetrics(Callback):
    """Per phase: mean loss and accuracy over the batches, weighted by batch size, printed like the seed.

    The seed calls `before_epoch`/`after_epoch` once per phase; learnloop has separate train and validate
    events, so the same two methods hang on both.
    """

    def _reset(self) -> None:
        self.accs: list[Tensor] = []
        self.losses: list[Tensor] = []
        self.ns: list[int] = []

    def _record(self) -> None:
        n = len(self.yb)
        self.accs.append((self.preds.argmax(dim=1) == self.yb).float().sum())
        self.losses.append(self.loss.detach() * n)
        self.ns.append(n)

    def _report(self) -> None:
        n = sum(self.ns)
        if n == 0:  # a cancelled phase (the LR finder skips validation) still runs its after_ event
            return
        phase = "train" if self.model.training else "valid"
        print(f"epoch {self.epoch} {phase}: loss {sum(self.losses).item() / n:.4f}  "
              f"accuracy {sum(self.accs).item() / n:.4f}")

    before_train = before_validate = _reset
    after_batch = _record
    after_train = after_validate = _report


def print_stats(module: Module, inputs: tuple, output: Tensor) -> None:
    """The seed's hook: each layer's output mean and std (near 0 and 1 means the init is right)."""
    print(f"  {module!r:<40} mean {output.mean().item():+.3f}  std {output.std().item():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", metavar="PATH", help="train on MNIST from this .npz instead of digits")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--bs", type=int, default=32)
    parser.add_argument("--n-workers", type=int, default=0, help="DataLoader worker processes (0: load here)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/from_scratch"), help="where the plots go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    # 1-2. label vocab (the seed's val2idx) over the training labels, then the datasets
    x_train, y_train, x_valid, y_valid = load_mnist_raw(args.mnist) if args.mnist else load_digits_raw(args.seed)
    vocab = LabelVocab(y_train)
    print(f"{len(vocab)} labels: {list(vocab)}; label {y_train[0]!r} -> index {vocab.index(y_train[0])}")
    train_ds, valid_ds = ImageDataset(x_train, y_train, vocab), ImageDataset(x_valid, y_valid, vocab)
    x, y = train_ds[0]
    print(f"train_ds[0]: x {tuple(x.shape)} (H, W, C), y {y}")

    # 3. collate stacks samples into a batch; the DataLoader shuffles, chunks and loads (in workers if asked)
    xb, yb = collate([train_ds[i] for i in range(4)])
    print(f"collate of 4 samples: xb {tuple(xb.shape)}, yb {yb.tolist()}")
    stats_dl = DataLoader(train_ds, bs=256, shuffle=True, n_workers=args.n_workers, seed=args.seed)
    xb, yb = next(iter(stats_dl))

    # 4. channels-last -> channels-first, then stats from one batch. The seed's mistake ("오답노트"): a conv
    # fed (N, H, W, C) images sees W as the channel axis.
    model = simple_cnn(in_channels=xb.shape[-1], n_classes=len(vocab), widths=(16, 32, 64))
    try:
        model(xb)
    except ValueError as e:
        print(f"without ToCHW: {e}")
    to_chw = ToCHW()
    norm = Normalize.from_batch(to_chw(xb))
    print(f"stats from a batch: {norm}")

    # 9. DataLoaders: batch transforms run on every batch after collate, in this order
    dls = DataLoaders.from_dsets(train_ds, valid_ds, bs=args.bs, n_workers=args.n_workers, seed=args.seed,
                                 batch_tfms=[to_chw, norm])
    xb, yb = next(iter(dls.train))
    print(f"a training batch: xb {tuple(xb.shape)} mean {xb.mean():.3f} std {xb.std():.3f}")

    # 5-7. the model, and a hook on every layer printing its output stats for one batch
    print(f"model: {sum(p.numel() for p in model.parameters())} parameters\n{model}")
    print("layer outputs on one batch:")
    with Hooks(model, print_stats), torch.no_grad():
        model(xb)
    print(f"loss before training: {cross_entropy(model(xb), yb).item():.4f} (ln {len(vocab)} = "
          f"{np.log(len(vocab)):.4f})")

    # 8, 10, 12. the Learner: the seed's loss, optimizer and data; the seed's metrics print each phase
    learn = Learner(model, dls, loss_func=cross_entropy, lr=0.1, opt_func=SGD, metrics=[accuracy], progress=False)

    # 13. find an lr (the learner is left exactly as it was), then train with one cycle at it
    found = learn.lr_find()
    found.plot(args.out / "lr_find.png")
    shown = ", ".join(f"{rule} {lr:.3g}" for rule, lr in found.suggestions.items())
    print(f"lr_find suggestions: {shown}; using {found.suggestion:.3g} (minimum/10, the most robust rule)")
    # the metrics callback joins this fit only, so the finder's short run above stays quiet
    learn.fit_one_cycle(args.epochs, lr_max=found.suggestion, cbs=[SeedMetrics()])
    learn.recorder.plot_sched(args.out / "one_cycle.png")

    result = learn.validate()
    print(f"final valid loss {result['loss']:.4f}  accuracy {result['accuracy']:.4f}")
    print(f"plots: {args.out / 'lr_find.png'}, {args.out / 'one_cycle.png'}")


if __name__ == "__main__":
    main()
