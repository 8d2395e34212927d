import copy

import pytest
import torch

from learnloop.nn import Linear, cross_entropy, simple_cnn
from learnloop.optim import SGD, AdamW


def batches(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 1, 8, 8, generator=gen), torch.randint(0, 10, (8,), generator=gen))
            for _ in range(n)]


def train(model, opt, data) -> list[torch.Tensor]:
    for xb, yb in data:
        cross_entropy(model(xb), yb).backward()
        opt.step()
        opt.zero_grad()
    return [p.detach().clone() for p in model.parameters()]


def model_pair():
    torch.manual_seed(0)
    model = simple_cnn(in_channels=1, widths=(4, 8))
    return model, copy.deepcopy(model)


def assert_same(ours: list[torch.Tensor], theirs: list[torch.Tensor], atol: float = 1e-6):
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_sgd_step_is_the_formula(wd):
    lin = Linear(3, 2)
    cross_entropy(lin(torch.randn(4, 3)), torch.tensor([0, 1, 1, 0])).backward()
    expected = [p - 0.1 * (p.grad + wd * p) for p in lin.parameters()]
    SGD(lin.parameters(), lr=0.1, wd=wd).step()
    assert_same(list(lin.parameters()), expected)


@pytest.mark.parametrize("wd,momentum,nesterov", [
    (0.0, 0.0, False), (0.05, 0.0, False), (0.0, 0.9, False), (0.05, 0.9, False), (0.0, 0.9, True), (5e-4, 0.9, True),
])  # fmt: skip
def test_sgd_equals_torch_sgd(wd, momentum, nesterov):
    ours, theirs = model_pair()
    data = batches(5)
    got = train(ours, SGD(ours.parameters(), lr=0.1, wd=wd, momentum=momentum, nesterov=nesterov), data)
    want = train(theirs, torch.optim.SGD(theirs.parameters(), lr=0.1, weight_decay=wd,
                                         momentum=momentum, nesterov=nesterov), data)
    assert_same(got, want)


def test_sgd_resumes_bit_identically_from_its_state_dict():
    model, _ = model_pair()
    opt = SGD(model.parameters(), lr=0.1, wd=0.01, momentum=0.9)
    data = batches(6)
    train(model, opt, data[:3])
    resumed_model = copy.deepcopy(model)
    resumed_opt = SGD(resumed_model.parameters(), lr=0.5)
    resumed_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert resumed_opt.param_groups[0]["lr"] == 0.1
    want = train(model, opt, data[3:])
    got = train(resumed_model, resumed_opt, data[3:])
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_step_lr_drives_sgd():
    lin = Linear(3, 2)
    opt = SGD(lin.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.1)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0] * 3 + [0.1] * 3 + [0.01])


def test_param_groups_and_zero_grad():
    lin = Linear(3, 2)
    opt = SGD([{"params": [lin.w]}, {"params": [lin.b], "lr": 0.0}], lr=0.1)
    cross_entropy(lin(torch.randn(4, 3)), torch.tensor([0, 1, 1, 0])).backward()
    w, b = lin.w.clone(), lin.b.clone()
    opt.step()
    assert not torch.equal(lin.w, w) and torch.equal(lin.b, b)
    opt.zero_grad()
    assert lin.w.grad is None and lin.b.grad is None


@pytest.mark.parametrize("kwargs", [dict(lr=-1.0), dict(lr=0.1, wd=-0.1),
                                    dict(lr=0.1, momentum=-0.5)])
def test_sgd_rejects_negative_settings(kwargs):
    with pytest.raises(ValueError, match="must be >= 0"):
        SGD(Linear(2, 2).parameters(), **kwargs)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adamw_equals_torch_adamw(wd):
    ours, theirs = model_pair()
    data = batches(5)
    got = train(ours, AdamW(ours.parameters(), lr=0.01, wd=wd), data)
    want = train(theirs, torch.optim.AdamW(theirs.parameters(), lr=0.01, weight_decay=wd), data)
    assert_same(got, want)
    if wd == 0.0:
        adam = copy.deepcopy(theirs)
        assert_same(got, train(adam, torch.optim.Adam(adam.parameters(), lr=0.01), []))
