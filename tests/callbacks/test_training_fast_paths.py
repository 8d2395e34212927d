"""The fast paths stay correct: device-side recording, precomputed dispatch, the lazy NaN guard, mixed
precision, channels-last, gradient accumulation and torch.compile (correctness only; speed is benchmarked)."""

from __future__ import annotations

import copy
import math
import shutil
import warnings
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from learnloop import Callback, CancelBatchException, Learner
from learnloop.callbacks import (ChannelsLast, CompileModel, GradientAccumulation, MixedPrecision,
                                 TerminateOnNaN, TorchScheduler)
from learnloop.callbacks.training import compiled_graphs
from learnloop.data import ArrayDataset, DataLoader, DataLoaders
from learnloop.data.datasets import digits
from learnloop.metrics import accuracy
from learnloop.nn import bn_cnn, simple_cnn


class PerBatch(Callback):
    """The slow way: `.item()` every batch, the loss, the accuracy and the batch size."""

    order = 60

    def before_epoch(self):
        self.rows = {True: [], False: []}

    def after_loss(self):
        acc = accuracy(self.learn.preds, self.learn.yb).item()
        self.rows[self.learn.training].append((self.learn.loss.item(), acc, len(self.learn.yb)))


def weighted_mean(rows: list[tuple[float, float, int]], col: int) -> float:
    return sum(r[col] * r[2] for r in rows) / sum(r[2] for r in rows)


def digits_learner(make_mlp, bs: int = 50, **kwargs) -> Learner:
    train, valid = digits()
    dls = DataLoaders.from_dsets(train, valid, bs=bs, seed=0)
    return Learner(make_mlp(), dls, lr=0.2, progress=False, **kwargs)


def test_recorder_device_side_figures_equal_per_batch_items(make_mlp):
    # bs 50 leaves short last batches, so the weighting by batch size matters
    learn = digits_learner(make_mlp, metrics=[accuracy])
    per_batch = PerBatch()
    learn.fit(1, cbs=[per_batch])
    row = learn.history[-1]
    assert row["train_loss"] == pytest.approx(weighted_mean(per_batch.rows[True], 0), rel=1e-6)
    assert row["valid_loss"] == pytest.approx(weighted_mean(per_batch.rows[False], 0), rel=1e-6)
    assert row["valid_accuracy"] == pytest.approx(weighted_mean(per_batch.rows[False], 1), rel=1e-6)
    assert learn.recorder.losses == pytest.approx([r[0] for r in per_batch.rows[True]], rel=1e-6)


class Counter(Callback):
    def __init__(self):
        self.n = 0

    def after_batch(self):
        self.n += 1


def test_dispatch_honours_fit_cbs_and_their_removal(make_mlp):
    learn = digits_learner(make_mlp)
    counter = Counter()
    learn.fit(1, cbs=[counter])
    n_batches = len(learn.dls.train) + len(learn.dls.valid)
    assert counter.n == n_batches
    assert counter not in learn.cbs and not hasattr(learn, "counter")
    assert all(getattr(m, "__self__", None) is not counter for ms in learn._dispatch.values() for m in ms)
    learn.fit(1)
    assert counter.n == n_batches  # gone for the next fit
    learn.add_cbs([counter])
    learn.fit(1)
    assert counter.n == 2 * n_batches
    learn.remove_cbs([counter])
    learn.fit(1)
    assert counter.n == 2 * n_batches


class NaNAt(Callback):
    """Makes the training loss NaN from training batch `at` on; records the batches that stepped."""

    order = 30  # before TerminateOnNaN (40)

    def __init__(self, at: int):
        self.at, self.stepped = at, []

    def after_loss(self):
        if self.learn.training and self.learn.iter >= self.at:
            self.learn.loss = self.learn.loss_grad = self.learn.loss * float("nan")

    def after_step(self):
        self.stepped.append(self.learn.iter)


def test_terminate_on_nan_strict_on_cpu_takes_no_step_with_a_nan_loss(make_mlp):
    learn = digits_learner(make_mlp)
    nan = NaNAt(3)
    with pytest.warns(RuntimeWarning, match="training loss is nan at epoch 0, batch 3"):
        learn.fit(2, cbs=[nan])
    assert nan.stepped == [0, 1, 2]
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())


def test_terminate_on_nan_deferred_checks_every_n_batches(make_mlp):
    learn = digits_learner(make_mlp)
    learn.remove_cbs([cb for cb in learn.cbs if type(cb) is TerminateOnNaN])
    nan = NaNAt(4)
    with pytest.warns(RuntimeWarning, match="one of batches 3..5"):
        learn.fit(2, cbs=[TerminateOnNaN(check_every=3), nan])
    assert nan.stepped == [0, 1, 2, 3, 4]  # batch 4 stepped on a NaN loss: the price of not syncing every batch
    assert len(learn.history) == 0


def test_terminate_on_nan_deferred_checks_at_the_end_of_the_phase(make_mlp):
    learn = digits_learner(make_mlp, bs=500)  # 3 training batches
    learn.remove_cbs([cb for cb in learn.cbs if type(cb) is TerminateOnNaN])
    with pytest.warns(RuntimeWarning, match="one of batches 0..2"):
        learn.fit(1, cbs=[TerminateOnNaN(check_every=50), NaNAt(2)])
    with pytest.raises(ValueError, match="check_every"):
        TerminateOnNaN(check_every=0)


class DtypeProbe(Callback):
    def before_fit(self):
        self.dtypes = set()

    def after_pred(self):
        self.dtypes.add(self.learn.preds.dtype)


def test_mixed_precision_bf16_trains_digits_on_cpu():
    torch.manual_seed(0)
    train, valid = digits()
    dls = DataLoaders.from_dsets(train, valid, bs=32, seed=0)
    learn = Learner(simple_cnn(in_channels=1, n_classes=10, widths=(16, 32, 64)), dls, metrics=[accuracy],
                    progress=False, cbs=[MixedPrecision("bf16")])
    probe = DtypeProbe()
    learn.fit_one_cycle(5, lr_max=0.5, cbs=[probe])
    assert probe.dtypes == {torch.bfloat16}  # autocast really was on
    assert not torch.is_autocast_enabled("cpu")  # and is off again
    assert learn.history[-1]["valid_accuracy"] >= 0.93
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())
    outputs, targets = learn.get_preds(cbs=[probe])
    assert probe.dtypes == {torch.bfloat16} and outputs.dtype == torch.float32  # computed in bf16, returned in fp32
    assert (outputs.argmax(1) == targets).float().mean().item() == pytest.approx(learn.history[-1]["valid_accuracy"])


class CancelAfterPred(Callback):
    def after_pred(self):
        raise CancelBatchException()


class FailAfterPred(Callback):
    def after_pred(self):
        raise RuntimeError("boom")


def test_mixed_precision_never_leaks_autocast(make_mlp):
    learn = digits_learner(make_mlp, cbs=[MixedPrecision("bf16")])
    learn.fit(1, cbs=[CancelAfterPred()])
    assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(RuntimeError, match="boom"):
        learn.fit(1, cbs=[FailAfterPred()])
    assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="bf16"):
        MixedPrecision("fp8")


def test_mixed_precision_fp16_scales_the_loss_and_skips_overflowing_steps(make_mlp):
    learn = digits_learner(make_mlp, cbs=[MixedPrecision("fp16")], opt_func=torch.optim.SGD)
    learn.fit(2)
    mp = learn.mixed_precision
    assert mp.scaler is not None and mp.scaler.get_scale() > 1
    assert learn.history[-1]["valid_loss"] < learn.history[0]["train_loss"]
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    # A scale so big the scaled fp16 gradients overflow: no step is taken, the scale backs off.
    mp.scaler = torch.amp.GradScaler("cpu", init_scale=1e30, growth_interval=10_000)
    before = copy.deepcopy(learn.model.state_dict())
    learn.dls.train = DataLoader(learn.dls.train.ds, 32)
    learn.fit(1, cbs=[Stop(after=1)])
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())
    assert mp.scaler.get_scale() < 1e30
    assert mp.state_dict()["scaler"]["scale"] == mp.scaler.get_scale()


class Stop(Callback):
    """Ends the training phase after `after` training batches, and skips validation."""

    def __init__(self, after: int):
        self.after = after

    def after_batch(self):
        from learnloop import CancelFitException

        if self.learn.training and self.learn.iter + 1 >= self.after:
            raise CancelFitException()


class GradProbe(Callback):
    """The gradients each step is taken with (order 30: after GradientAccumulation skipped the other batches' steps)."""

    order = 30

    def before_fit(self):
        self.grads = []

    def before_step(self):
        self.grads.append([p.grad.clone() for p in self.learn.model.parameters()])


def test_gradient_accumulation_equals_the_big_batch(make_mlp, digits_tensors):
    x, y = digits_tensors[0][:128], digits_tensors[1][:128]
    probes = []
    for bs, cbs in [(32, [GradientAccumulation(2)]), (64, [])]:
        probe = GradProbe()
        learn = Learner(make_mlp(0), DataLoader(ArrayDataset(x, y), bs), loss_func=F.cross_entropy, lr=0.5,
                        opt_func=torch.optim.SGD, progress=False, cbs=cbs)
        learn.fit(1, cbs=[probe])
        probes.append(probe)
    accumulated, big = probes
    assert len(accumulated.grads) == len(big.grads) == 2
    for step_a, step_b in zip(accumulated.grads, big.grads):
        for a, b in zip(step_a, step_b):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="n_acc"):
        GradientAccumulation(0)


def test_channels_last_gives_the_same_model_output(make_mlp):
    torch.manual_seed(0)
    model = bn_cnn(in_channels=1, n_classes=10, widths=(8, 16), strides=(1, 2))
    twin = copy.deepcopy(model)
    train, valid = digits()
    results = []
    for m, cbs in [(model, [ChannelsLast()]), (twin, [])]:
        learn = Learner(m, DataLoaders.from_dsets(train, valid, bs=64, seed=0), lr=0.1, progress=False,
                        cbs=cbs, loss_func=F.cross_entropy)
        learn.fit(1)
        results.append(learn.history[-1]["valid_loss"])
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert results[0] == pytest.approx(results[1], rel=1e-4)


@pytest.mark.parametrize("learnloop_module", [False, True])
def test_compile_model_trains_like_eager_and_puts_the_model_back(make_mlp, learnloop_module):
    results = []
    for cbs in ([CompileModel(backend="eager")], []):
        torch.manual_seed(0)
        model = simple_cnn(in_channels=1, widths=(8, 16)) if learnloop_module else make_mlp(0)
        train, valid = digits()
        learn = Learner(model, DataLoaders.from_dsets(train, valid, bs=64, seed=0), lr=0.1, progress=False,
                        cbs=cbs)
        learn.fit(1)
        assert learn.model is model
        results.append(learn.history[-1]["valid_loss"])
    assert results[0] == pytest.approx(results[1], rel=1e-5)


def test_compile_model_compiles_a_sequential_of_torch_layers(make_mlp, digits_tensors):
    # Module.compile skips an nn.Sequential's forward (torch's own file): CompileModel must still compile it
    model = make_mlp(0)
    assert type(model) is torch.nn.Sequential
    torch._dynamo.reset()  # forget the graphs earlier tests compiled for the same code
    before = compiled_graphs()
    learn = Learner(model, DataLoaders.from_dsets(*digits(), bs=64, seed=0), lr=0.1, progress=False,
                    cbs=[CompileModel(backend="eager")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "compiled nothing" warning
        learn.fit(1)
    assert compiled_graphs() > before
    assert learn.model is model and list(learn.model.state_dict()) == list(make_mlp(0).state_dict())


def test_compile_model_warns_when_nothing_was_compiled(make_mlp):
    class Uncompilable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = make_mlp(0)

        @torch.compiler.disable
        def forward(self, x):
            return self.net(x)

    learn = Learner(Uncompilable(), DataLoaders.from_dsets(*digits(), bs=256, seed=0), progress=False,
                    cbs=[CompileModel(backend="eager")])
    with pytest.warns(UserWarning, match="compiled no graph of Uncompilable"):
        learn.fit(1)


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("cc")), reason="inductor needs a C++ compiler (g++ or cc) on CPU")
def test_compile_model_with_inductor_trains_like_eager(make_mlp):
    results = []
    for cbs in ([CompileModel()], []):
        learn = Learner(make_mlp(0), DataLoaders.from_dsets(*digits(), bs=64, seed=0), lr=0.1, progress=False, cbs=cbs)
        learn.fit(1)
        results.append(learn.history[-1]["valid_loss"])
    assert results[0] == pytest.approx(results[1], rel=1e-3)


def test_bn_cnn_shapes():
    model = bn_cnn(in_channels=3, n_classes=7)
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 7)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model) == 4
    with pytest.raises(ValueError, match="one stride per width"):
        bn_cnn(widths=(8, 16), strides=(2,))
    model.eval()  # one sample: BatchNorm uses its running statistics
    with torch.no_grad():
        assert math.isfinite(float(model(torch.randn(1, 3, 8, 8)).sum()))


def test_pin_memory_batches_equal_the_unpinned_ones():
    x, y = torch.randn(10, 3), torch.arange(10)
    pinned = list(DataLoader(ArrayDataset(x, y), 4, pin_memory=True))
    for (xp, yp), (xb, yb) in zip(pinned, DataLoader(ArrayDataset(x, y), 4)):
        assert torch.equal(xp, xb) and torch.equal(yp, yb)
        assert xp.is_pinned() == torch.cuda.is_available()


def test_gradient_accumulation_steps_a_per_batch_torch_scheduler_once_per_optimizer_step(make_mlp, digits_tensors):
    x, y = digits_tensors[0][:128], digits_tensors[1][:128]  # 4 batches of 32: 2 optimizer steps
    learn = Learner(make_mlp(0), DataLoader(ArrayDataset(x, y), 32), loss_func=F.cross_entropy, lr=0.5,
                    opt_func=torch.optim.SGD, progress=False, cbs=[GradientAccumulation(2)])
    learn.fit(1, cbs=[TorchScheduler(partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5), per="batch")])
    assert learn.lr == pytest.approx(0.5 * 0.5**2)
    assert not hasattr(MixedPrecision, "param_groups") and not hasattr(MixedPrecision, "step")  # no optimizer pose
