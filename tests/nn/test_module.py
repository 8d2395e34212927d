import copy
import re
import pickle

import pytest
import torch
import torch.nn.functional as F

from learnloop.nn import (ConvLayer, Linear, Module, Parameter, Sequential, TorchModule,
                          cross_entropy, simple_cnn, to_torch)
from learnloop.optim import SGD


class Block(Module):
    def __init__(self, shared: Linear):
        super().__init__()
        self.scale = Parameter(torch.ones(3))
        self.first = shared
        self.second = shared  # the same layer twice: its parameters must be listed once
        self.head = Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.second(self.first(x)) * self.scale)


def make_block() -> Block:
    return Block(Linear(3, 3))


# Parameter

def test_parameter_is_a_trainable_tensor_that_torch_accepts():
    p = Parameter(torch.zeros(2, 3))
    assert isinstance(p, torch.Tensor) and p.requires_grad and p.is_leaf
    assert isinstance(p, torch.nn.Parameter)
    assert type(p * 2) is torch.Tensor and type(p.detach()) is torch.Tensor
    assert "Parameter containing" in repr(p)


@pytest.mark.parametrize("bad", ["x", 3.0, [1.0, 2.0], None])
def test_parameter_of_a_non_tensor_is_a_type_error(bad):
    with pytest.raises(TypeError, match="Parameter needs a torch.Tensor"):
        Parameter(bad)


def test_parameter_survives_deepcopy_and_pickle():
    p = Parameter(torch.randn(4))
    for q in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert type(q) is Parameter and q.requires_grad
        assert torch.equal(q, p) and q.data_ptr() != p.data_ptr()


# registration

def test_parameters_own_then_children_each_once_with_torch_like_names():
    m = make_block()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "first.w", "first.b", "head.w", "head.b"]
    assert [id(p) for p in m.parameters()] == [id(p) for _, p in m.named_parameters()]
    assert [type(c) for c in m.children()] == [Linear, Linear, Linear]
    assert len(list(m.modules())) == 3  # m, the shared Linear, head
    assert [n for n, _ in m.named_modules()] == ["", "first", "head"]


def test_names_match_torch_nn_sequential():
    ours = Sequential(Linear(4, 3), Sequential(Linear(3, 2)))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Sequential(torch.nn.Linear(3, 2)))
    strip = [k.rsplit(".", 1)[0] for k in theirs.state_dict()]
    assert [k.rsplit(".", 1)[0] for k in ours.state_dict()] == strip


def test_assignment_replaces_and_del_unregisters():
    m = make_block()
    old = m.scale
    m.scale = Parameter(torch.zeros(3))
    params = list(m.parameters())
    assert params[0] is m.scale and all(p is not old for p in params)
    m.head = Linear(3, 5)
    assert m.head.nf == 5 and len(list(m.parameters())) == 5
    m.head = "gone"
    assert len(list(m.parameters())) == 3
    del m.scale
    assert [n for n, _ in m.named_parameters()] == ["first.w", "first.b"]
    m.extra = torch.nn.Parameter(torch.zeros(2))  # torch's Parameter registers too
    assert [n for n, _ in m.named_parameters()] == ["extra", "first.w", "first.b"]


@pytest.mark.parametrize("bad", [torch.zeros(3), "x", None])
def test_assigning_a_non_parameter_over_a_parameter_is_a_type_error(bad):
    m = make_block()
    with pytest.raises(TypeError, match=r"Block.scale, which is a Parameter"):
        m.scale = bad


def test_registration_needs_init_and_refuses_torch_modules():
    class NoInit(Module):
        def __init__(self):
            self.w = Parameter(torch.zeros(1))

    with pytest.raises(AttributeError, match=re.escape("call super().__init__() first in NoInit.__init__")):
        NoInit()
    with pytest.raises(TypeError, match="would not be trained"):
        make_block().bn = torch.nn.BatchNorm1d(3)


def test_forward_missing_is_a_clear_error():
    with pytest.raises(NotImplementedError, match="Module has no forward"):
        Module()(torch.zeros(1))


def test_train_and_eval_recurse():
    m = Sequential(make_block(), Linear(2, 2))
    assert all(x.training for x in m.modules())
    assert m.eval() is m and not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())


def test_zero_grad():
    m = make_block()
    m(torch.randn(2, 3)).sum().backward()
    m.zero_grad(set_to_none=False)
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_repr_shows_the_tree():
    assert repr(simple_cnn(1, widths=(4,))) == (
        "Sequential(\n"
        "  (0): ConvLayer(1, 4, ks=3, stride=2)\n"
        "  (1): ConvLayer(4, 10, ks=3, stride=2, act=False)\n"
        "  (2): AdaptivePool()\n"
        ")")


# state_dict

def test_state_dict_round_trip_through_torch_save_weights_only(tmp_path):
    a, b = make_block(), make_block()
    sd = a.state_dict()
    # torch-like: a shared layer's tensors appear under each name
    assert list(sd) == ["scale", "first.w", "first.b", "second.w", "second.b", "head.w", "head.b"]
    assert sd["first.w"].data_ptr() == sd["second.w"].data_ptr() == a.first.w.data_ptr()
    assert all(type(v) is torch.Tensor and not v.requires_grad for v in sd.values())
    torch.save(sd, tmp_path / "m.pt")
    b.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    x = torch.randn(5, 3)
    assert torch.equal(a(x), b(x))
    assert all(isinstance(p, Parameter) for p in b.parameters())


def test_load_state_dict_strict_lists_missing_and_unexpected_keys():
    m = make_block()
    sd = m.state_dict()
    sd["extra.w"] = sd.pop("head.b")
    with pytest.raises(RuntimeError, match=r"missing keys: \['head.b'\].*unexpected keys: "
                                           r"\['extra.w'\]"):
        m.load_state_dict(sd)
    keys = m.load_state_dict(sd, strict=False)
    assert keys.missing_keys == ["head.b"] and keys.unexpected_keys == ["extra.w"]


def test_load_state_dict_size_mismatch_is_an_error():
    sd = Linear(3, 2).state_dict()
    with pytest.raises(RuntimeError, match=r"size mismatch for 'w'.*\(2, 3\).*\(4, 3\)"):
        Linear(3, 4).load_state_dict(sd)


def test_deepcopy_gives_an_independent_equal_model():
    m = make_block()
    c = copy.deepcopy(m)
    assert c.first is c.second  # sharing survives
    x = torch.randn(2, 3)
    assert torch.equal(m(x), c(x))
    with torch.no_grad():
        c.head.w.add_(1)
    assert not torch.equal(m(x), c(x))


# .to()

def test_to_keeps_parameter_objects_so_an_existing_optimizer_still_works():
    m = make_block()
    m(torch.randn(2, 3)).sum().backward()
    before = list(m.parameters())
    opt = SGD(m.parameters(), lr=0.1)
    assert m.to(torch.float64) is m
    after = list(m.parameters())
    assert all(a is b for a, b in zip(before, after))
    assert all(p.dtype == torch.float64 and p.grad.dtype == torch.float64 for p in after)
    assert all(isinstance(p, Parameter) for p in after)
    w = m.head.w.clone()
    opt.step()
    assert not torch.equal(m.head.w, w)
    m.to("cpu", dtype=torch.float32)
    assert m.head.w.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_cuda_and_back():
    m = make_block()
    before = list(m.parameters())
    m.to("cuda")
    assert all(p.is_cuda for p in m.parameters()) and before == list(m.parameters())
    assert m(torch.randn(2, 3, device="cuda")).is_cuda
    assert not m.to("cpu").head.w.is_cuda


# torch adapter

def test_as_torch_shares_the_same_tensors_and_names():
    m = make_block()
    t = m.as_torch()
    assert isinstance(t, torch.nn.Module) and t.source is m
    assert [n for n, _ in t.named_parameters()] == [n for n, _ in m.named_parameters()]
    assert all(a is b for a, b in zip(t.parameters(), m.parameters()))
    assert list(t.state_dict()) == list(m.state_dict())
    assert t.first is t.second and len(list(t.modules())) == 3
    x = torch.randn(2, 3)
    assert torch.equal(t(x), m(x))
    assert t.eval() is t and not m.training and not m.head.training
    t.train()
    assert m.training and m.head.training


def test_torch_optimizer_and_scheduler_train_through_the_adapter():
    m = Linear(3, 2)
    t = to_torch(m)
    opt = torch.optim.SGD(t.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    x, y = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    w = m.w.clone()
    cross_entropy(t(x), y).backward()
    expected = w - 0.5 * m.w.grad
    opt.step()
    sched.step()
    assert torch.allclose(m.w, expected, atol=1e-7)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_to_torch():
    lin = torch.nn.Linear(2, 2)
    assert to_torch(lin) is lin
    assert isinstance(to_torch(Linear(2, 2)), TorchModule)
    with pytest.raises(TypeError, match="got str"):
        to_torch("model")


def _compile_and_step(backend: str) -> None:
    torch._dynamo.reset()
    m = simple_cnn(in_channels=1, widths=(8, 16))
    compiled = torch.compile(m.as_torch(), backend=backend)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    out = compiled(x)
    assert torch.allclose(out, m(x), atol=1e-5)
    cross_entropy(out, y).backward()
    w = m[0].w.clone()
    SGD(m.parameters(), lr=0.1).step()
    assert not torch.equal(m[0].w, w)


def test_torch_compile_traces_the_adapter():
    # aot_eager runs dynamo and AOTAutograd (what DDP/compile need from the adapter) without
    # waiting for a C++ compiler; the inductor test below does the full compile.
    _compile_and_step("aot_eager")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside torch's inductor import
def test_torch_compile_inductor():
    _compile_and_step("inductor")


def test_distributed_data_parallel_trains_the_learnloop_module():
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch built without gloo")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        m = simple_cnn(in_channels=1, widths=(8,))
        ref = copy.deepcopy(m)
        ddp = DistributedDataParallel(m.as_torch())
        x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
        cross_entropy(ddp(x), y).backward()
        F.cross_entropy(ref(x), y).backward()
        for (name, p), q in zip(m.named_parameters(), ref.parameters()):
            assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    finally:
        dist.destroy_process_group()
