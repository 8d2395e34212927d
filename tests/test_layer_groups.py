"""Layer groups, freeze/unfreeze with BatchNorm still training, and per-group (discriminative) learning rates kept
by every scheduler, on real digits runs."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch.optim.lr_scheduler import StepLR

from learnloop.callbacks import Callback
from learnloop.callbacks.checkpoint import Checkpoint
from learnloop.callbacks.schedule import OneCycle, ParamScheduler, TorchScheduler, sched_lin
from learnloop.layer_groups import default_splitter, head_module
from learnloop.learner import Learner
from learnloop.nn import simple_cnn
from learnloop.nn.models import bn_cnn
from learnloop.optim import SGD, AdamW, group_values


class ResNetShaped(torch.nn.Module):
    """torchvision's resnet layout in miniature: stem, BatchNorm, blocks, pooling, and an `fc` head (defined
    first here, so the head is found by name, not by position)."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.fc = torch.nn.Linear(16, n_classes)
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.layer1 = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
                                          torch.nn.BatchNorm2d(16), torch.nn.ReLU())
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = self.layer1(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TimmShaped(torch.nn.Module):
    """timm's surface: the head reached through `get_classifier()`, whatever it is called."""

    def __init__(self):
        super().__init__()
        self.head_fc = torch.nn.Linear(16, 10)
        self.features = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU())

    def get_classifier(self):
        return self.head_fc

    def forward(self, x):
        return self.head_fc(self.features(x))


class HpLog(Callback):
    """Every training batch's per-group hyper-parameters, as the optimizer holds them when it steps."""

    def before_fit(self):
        self.lrs, self.moms = [], []

    def after_backward(self):
        self.lrs.append([g["lr"] for g in self.learn.opt.param_groups])
        self.moms.append(list(self.learn.hps.get("momentum", [])))


def learner(make_dls, model, **kwargs) -> Learner:
    kwargs.setdefault("progress", False)
    return Learner(model, make_dls(64), **kwargs)


def snapshot(model) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    return {k: v.detach().clone() for k, v in state.items()}


# -- splitting ---------------------------------------------------------------------------------
def test_default_splitter_finds_the_head_of_learnloop_torch_torchvision_and_timm_models(make_mlp):
    cnn = simple_cnn()
    assert head_module(cnn) is cnn[4] and [len(g) for g in default_splitter(cnn)] == [8, 2]
    mlp = make_mlp()
    assert head_module(mlp) is mlp[3]
    net = ResNetShaped()
    body, head = default_splitter(net)
    assert head == [net.fc.weight, net.fc.bias] and len(body) == 6  # conv1, bn1 (2), layer1 conv, bn (2)
    timm_like = TimmShaped()
    assert default_splitter(timm_like)[1] == list(timm_like.head_fc.parameters())
    wrapped = torch.nn.Sequential(mlp)  # one container around the network: split inside it
    assert head_module(wrapped) is mlp[3]
    lone = torch.nn.Linear(3, 2)
    assert default_splitter(lone) == [[lone.weight, lone.bias]]  # nothing to split: one group


def test_one_optimizer_param_group_per_layer_group_with_learnloop_and_torch_optimizers(make_dls, make_mlp):
    three = lambda m: [list(m[1].parameters()), [], list(m[3].parameters())]  # noqa: E731
    with pytest.raises(ValueError, match="empty layer group"):
        learner(make_dls, make_mlp(), splitter=three)
    twice = lambda m: [list(m.parameters()), list(m[3].parameters())]  # noqa: E731
    with pytest.raises(ValueError, match="more than one layer group"):
        learner(make_dls, make_mlp(), splitter=twice)
    for opt_func in (SGD, AdamW, torch.optim.SGD, torch.optim.AdamW):
        learn = learner(make_dls, make_mlp(), opt_func=opt_func, lr=slice(1e-3))
        assert [len(g["params"]) for g in learn.opt.param_groups] == [2, 2]
        assert learn.hps["lr"] == pytest.approx([1e-4, 1e-3])


def test_group_values_spread_slices_as_fastai():
    assert group_values(slice(1e-3), 3) == pytest.approx([1e-4, 1e-4, 1e-3])
    assert group_values(slice(1e-5, 1e-3), 3) == pytest.approx([1e-5, 1e-4, 1e-3])
    assert group_values(slice(1e-5, 1e-3), 1) == [1e-3]
    assert group_values([0.1, 0.2], 2) == [0.1, 0.2] and group_values(0.5, 2) == [0.5, 0.5]
    with pytest.raises(ValueError, match="3 values for 2 param groups"):
        group_values([1, 2, 3], 2)
    with pytest.raises(ValueError, match="slice"):
        group_values(slice(-1, 1e-3), 2)


# -- freezing ----------------------------------------------------------------------------------
def test_frozen_body_is_bit_identical_while_its_batchnorm_trains_and_the_head_learns(make_dls):
    torch.manual_seed(0)
    learn = learner(make_dls, bn_cnn(1, 10), opt_func=partial(SGD, momentum=0.9, wd=1e-2), lr=0.1)
    model = learn.model
    learn.freeze()
    assert [p.requires_grad for p in model[0].parameters()] == [False]  # the conv: frozen
    assert all(p.requires_grad for p in model[1].parameters())  # its BatchNorm: still trained (train_bn)
    before = snapshot(model)
    learn.fit(2)
    after = snapshot(model)
    convs = [k for k in before if k.endswith(".weight") and after[k].ndim == 4]
    assert len(convs) == 4 and all(torch.equal(before[k], after[k]) for k in convs)  # bit-identical
    assert all(model[i].weight.grad is None for i in (0, 3, 6, 9))  # no gradient computed for them at all
    assert not torch.equal(before["1.running_mean"], after["1.running_mean"])  # statistics move
    assert not torch.equal(before["1.weight"], after["1.weight"])  # BatchNorm's affine weights train
    assert not torch.equal(before["14.weight"], after["14.weight"])  # the head trains
    assert learn.history[-1]["valid_loss"] < learn.history[0]["valid_loss"]

    learn.unfreeze()
    learn.fit(1)
    assert not torch.equal(after["0.weight"], model[0].weight)


def test_train_bn_false_freezes_batchnorm_weights_and_running_statistics(make_dls):
    torch.manual_seed(0)
    learn = learner(make_dls, bn_cnn(1, 10), lr=0.1)
    learn.freeze(train_bn=False)
    before = snapshot(learn.model)
    learn.fit(1)
    after = snapshot(learn.model)
    body = [k for k in before if not k.startswith("14.")]
    assert all(torch.equal(before[k], after[k]) for k in body), [k for k in body if not torch.equal(before[k], after[k])]
    assert not torch.equal(before["14.weight"], after["14.weight"])
    learn.unfreeze()  # BatchNorm trains again, in training mode
    learn.fit(1)
    assert not torch.equal(after["1.running_mean"], learn.model[1].running_mean)
    assert learn.model[1].training is False  # the loop put the model in eval for validation, as any layer


def test_a_torch_model_with_an_fc_head_freezes_with_torch_sgd(make_dls):
    torch.manual_seed(0)
    learn = learner(make_dls, ResNetShaped(), opt_func=partial(torch.optim.SGD, momentum=0.9, weight_decay=1e-2),
                    lr=0.2)
    net = learn.model
    learn.freeze()
    before = snapshot(net)
    learn.fit(2)
    assert torch.equal(before["conv1.weight"], net.conv1.weight) and torch.equal(before["layer1.0.weight"],
                                                                                    net.layer1[0].weight)
    assert not torch.equal(before["bn1.running_var"], net.bn1.running_var)
    assert not torch.equal(before["fc.weight"], net.fc.weight)
    assert learn.history[-1]["valid_loss"] < learn.history[0]["valid_loss"]


def test_optimizer_state_of_each_group_survives_freeze_and_unfreeze(make_dls, make_mlp):
    learn = learner(make_dls, make_mlp(), opt_func=AdamW, lr=1e-3)
    learn.fit(1)
    body_w = learn.model[1].weight
    state = {k: v.clone() if torch.is_tensor(v) else v for k, v in learn.opt.state[body_w].items()}
    learn.freeze()
    learn.fit(1)
    assert learn.opt.state[body_w]["step"] == state["step"]  # untouched while frozen
    assert torch.equal(learn.opt.state[body_w]["exp_avg"], state["exp_avg"])
    head_steps = learn.opt.state[learn.model[3].weight]["step"]
    assert head_steps == 2 * state["step"]
    learn.unfreeze()
    learn.fit(1)
    assert learn.opt.state[body_w]["step"] == 2 * state["step"]  # the same moments, carried on


def test_freeze_to_checks_its_argument_and_warns_when_there_is_nothing_to_freeze(make_dls):
    learn = learner(make_dls, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)))
    with pytest.warns(UserWarning, match="1 layer group"):
        learn.freeze()
    with pytest.raises(ValueError, match=r"freeze_to needs an int in \[-1, 1\]"):
        learn.freeze_to(3)


def test_checkpoint_records_what_is_frozen_and_resume_is_exact(make_dls, tmp_path):
    def make():
        torch.manual_seed(0)
        return learner(make_dls, bn_cnn(1, 10), opt_func=partial(SGD, momentum=0.9), lr=slice(0.2))

    full = make()
    full.freeze()
    full.fit_one_cycle(3)

    class StopAfter(Callback):
        order = 95  # after the epoch's checkpoint

        def after_epoch(self):
            if self.epoch == 1:
                raise KeyboardInterrupt

    first = make()
    first.freeze()
    path = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        first.fit_one_cycle(3, cbs=[Checkpoint(path), StopAfter()])
    assert torch.load(path, weights_only=True)["frozen"] == {"n_frozen": 1, "train_bn": True}
    resumed = make()  # not frozen by hand: the checkpoint says what is
    resumed.fit_one_cycle(3, cbs=[Checkpoint(path)], resume=path)
    assert resumed.layer_groups.n_frozen == 1 and not resumed.model[0].weight.requires_grad
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


# -- per-group learning rates under every schedule ---------------------------------------------------
def test_one_cycle_keeps_per_group_lrs_in_ratio_at_every_batch(make_dls, make_mlp):
    log = HpLog()
    splitter = lambda m: [list(m[1].parameters())[:1], list(m[1].parameters())[1:], list(m[3].parameters())]  # noqa: E731
    learn = learner(make_dls, make_mlp(), opt_func=partial(SGD, momentum=0.9), splitter=splitter, cbs=[log])
    learn.fit_one_cycle(2, slice(1e-4, 1e-2))
    ref = OneCycle(1e-2)._lr_sched(1e-2)  # the head's schedule, as if it were alone
    n = len(log.lrs)
    assert n == 2 * len(learn.dls.train)
    for i, (lo, mid, hi) in enumerate(log.lrs):
        assert hi == pytest.approx(ref(i / n), rel=1e-12)
        assert mid / hi == pytest.approx(0.1, rel=1e-9) and lo / hi == pytest.approx(0.01, rel=1e-9)
    assert all(len(set(m)) == 1 for m in log.moms) and log.moms[n // 4][0] == pytest.approx(0.85, abs=1e-3)


def test_one_cycle_keeps_hand_set_group_lrs_apart(make_dls, make_mlp):
    """The issue's bug: groups set to [1e-4, 1e-3] ended a one-cycle at [2.22e-05, 2.22e-05]."""
    learn = learner(make_dls, make_mlp())
    learn.set_hp("lr", [1e-4, 1e-3])
    learn.fit_one_cycle(1)
    lo, hi = learn.hps["lr"]  # the last batch's, near the end of the anneal
    assert hi < 1e-3 / 100 and lo / hi == pytest.approx(0.1)


def test_param_scheduler_torch_scheduler_and_lr_finder_keep_the_ratios(make_dls, make_mlp):
    log = HpLog()
    learn = learner(make_dls, make_mlp(), lr=slice(0.1), cbs=[log])
    learn.fit(1, cbs=[ParamScheduler("lr", sched_lin(0.1, 0.01))])
    n = len(log.lrs)
    assert [hi for _, hi in log.lrs] == pytest.approx([0.1 - 0.09 * i / n for i in range(n)])
    assert all(lo / hi == pytest.approx(0.1) for lo, hi in log.lrs)

    learn.set_hp("lr", slice(0.1))
    learn.fit(2, cbs=[TorchScheduler(partial(StepLR, step_size=10, gamma=0.5), per="batch")])
    assert log.lrs[0] == pytest.approx([0.01, 0.1]) and log.lrs[-1][1] < 0.1 / 2
    assert all(lo / hi == pytest.approx(0.1) for lo, hi in log.lrs)

    learn.set_hp("lr", slice(1e-2))
    found = learn.lr_find(max_iter=20)
    assert [hi for _, hi in log.lrs] == pytest.approx(found.lrs)  # the last group's lr is the one scanned...
    assert found.lrs[0] == pytest.approx(1e-6) and all(lo / hi == pytest.approx(0.1) for lo, hi in log.lrs)
    assert learn.hps["lr"] == pytest.approx([1e-3, 1e-2])  # ...and the learner is left as it was


def test_load_body_copies_all_but_the_head_and_names_a_body_that_does_not_fit(make_dls):
    from learnloop.layer_groups import load_body

    torch.manual_seed(0)
    trained = learner(make_dls, bn_cnn(1, 10), lr=0.3)
    trained.fit(1)
    new = bn_cnn(1, 5)  # another task: 5 classes
    fresh_head = new[14].weight.detach().clone()
    copied = load_body(new, trained.model.state_dict())
    assert "1.running_mean" in copied and "14.weight" not in copied
    assert all(torch.equal(new.state_dict()[k], trained.model.state_dict()[k]) for k in copied)
    assert torch.equal(new[14].weight, fresh_head)
    net = ResNetShaped(5)
    load_body(net, ResNetShaped(10).state_dict())  # torchvision's layout: everything but fc
    with pytest.raises(ValueError, match="don't fit this model's body: 0.weight has shape"):
        load_body(bn_cnn(3, 5), trained.model.state_dict())


def test_resuming_a_checkpoint_of_another_number_of_param_groups_is_named(make_dls, make_mlp, tmp_path):
    from learnloop.errors import CheckpointError

    path = tmp_path / "one_group.ckpt"
    single = lambda m: [list(m.parameters())]  # noqa: E731  (as learners were before layer groups)
    learner(make_dls, make_mlp(), splitter=single).fit(1, cbs=[Checkpoint(path)])
    with pytest.raises(CheckpointError, match="1 param group.*has 2 .*splitter"):
        learner(make_dls, make_mlp()).fit(2, resume=path)
    resumed = learner(make_dls, make_mlp(), splitter=single)
    resumed.fit(2, resume=path)
    assert [row["epoch"] for row in resumed.history] == [0, 1]
