import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from learnloop.nn import (AdaptivePool, ConvLayer, Flatten, Lambda, Linear, ReLU, Sequential,
                          cross_entropy, simple_cnn)
from learnloop.optim import SGD


def grads_of(out: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(),
                               tensors)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_and_grads_equal_f_linear(bias):
    torch.manual_seed(0)
    lin = Linear(5, 3, bias=bias)
    with torch.no_grad():
        if bias:
            lin.b.normal_()
    x = torch.randn(4, 2, 5, requires_grad=True)
    params = [x, lin.w] + ([lin.b] if bias else [])
    ours = lin(x)
    theirs = F.linear(x, lin.w, lin.b)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    for g1, g2 in zip(grads_of(ours, *params), grads_of(theirs, *params)):
        torch.testing.assert_close(g1, g2, atol=1e-5, rtol=0)
    assert len(list(lin.parameters())) == (2 if bias else 1)


@pytest.mark.parametrize("act,stride,ks", [(True, 2, 3), (False, 1, 3), (True, 1, 5)])
def test_conv_layer_forward_and_grads_equal_relu_conv2d(act, stride, ks):
    torch.manual_seed(0)
    conv = ConvLayer(3, 4, ks=ks, stride=stride, act=act)
    with torch.no_grad():
        conv.b.normal_()
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    ours = conv(x)
    theirs = F.conv2d(x, conv.w, conv.b, stride=stride, padding=ks // 2)
    theirs = theirs.relu() if act else theirs
    assert ours.shape == (2, 4, math.ceil(9 / stride), math.ceil(9 / stride))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    params = (x, conv.w, conv.b)
    for g1, g2 in zip(grads_of(ours, *params), grads_of(theirs, *params)):
        torch.testing.assert_close(g1, g2, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layer,expected_std", [
    (ConvLayer(256, 256, act=True), math.sqrt(2 / (256 * 9))),               # kaiming-normal
    (ConvLayer(256, 256, act=False), math.sqrt(2 / (256 * 9 + 256 * 9))),    # xavier-normal
    (Linear(1024, 512), math.sqrt(2 / (1024 + 512))),                        # xavier-normal
], ids=["conv-kaiming", "conv-xavier", "linear-xavier"])
def test_init_std_and_zero_bias(layer, expected_std):
    assert layer.w.std().item() == pytest.approx(expected_std, rel=0.1)
    assert layer.w.mean().item() == pytest.approx(0, abs=0.01 * expected_std * 10)
    assert torch.equal(layer.b, torch.zeros_like(layer.b))


def test_adaptive_pool_flatten_relu_lambda():
    x = torch.randn(2, 3, 5, 7)
    torch.testing.assert_close(AdaptivePool()(x), x.mean((2, 3)), atol=0, rtol=0)
    assert Flatten()(x).shape == (2, 105)
    assert torch.equal(ReLU()(x), F.relu(x))
    assert torch.equal(Lambda(torch.tanh)(x), x.tanh())
    assert repr(Lambda(torch.tanh)) == "Lambda(tanh)"


def test_sequential_is_indexable_sized_iterable():
    layers = [Linear(4, 3), ReLU(), Linear(3, 2)]
    s = Sequential(*layers)
    assert len(s) == 3 and list(s) == layers and s[0] is layers[0] and s[-1] is layers[2]
    assert isinstance(s[1:], Sequential) and list(s[1:]) == layers[1:]
    x = torch.randn(5, 4)
    assert torch.equal(s(x), layers[2](layers[1](layers[0](x))))
    assert [n for n, _ in s.named_parameters()] == ["0.w", "0.b", "2.w", "2.b"]


def test_sequential_refuses_plain_functions():
    with pytest.raises(TypeError, match="layer 1 is a builtin_function_or_method.*Lambda"):
        Sequential(Linear(2, 2), torch.relu)


def test_simple_cnn_shapes_and_structure():
    m = simple_cnn()
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    convs = list(m)[:-1]
    assert [(c.ni, c.nf, c.stride, c.act) for c in convs] == [
        (3, 16, 2, True), (16, 32, 2, True), (32, 64, 2, True), (64, 128, 2, True),
        (128, 10, 2, False)]
    assert isinstance(m[-1], AdaptivePool)
    assert simple_cnn(in_channels=1, n_classes=4, widths=(8,))(torch.randn(3, 1, 8, 8)).shape == (3, 4)


# bad input

def test_linear_wrong_features_names_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Linear\(4, 2\) expects input of shape \(\.\.\., 4\).*"
                                         r"got \(3, 5\)"):
        Linear(4, 2)(torch.ones(3, 5))


def test_conv_on_channels_last_images_says_so_and_names_the_fix():
    with pytest.raises(ValueError) as err:
        ConvLayer(3, 16)(torch.zeros(8, 64, 64, 3))
    msg = str(err.value)
    assert "ConvLayer(3, 16, ks=3, stride=2)" in msg and "(N, 3, H, W)" in msg
    assert "(8, 64, 64, 3)" in msg and "channels-last (NHWC)" in msg
    assert "learnloop.data.ToCHW" in msg and "x.permute(0, 3, 1, 2)" in msg


@pytest.mark.parametrize("shape", [(8, 1, 64, 64), (3, 8, 8)])
def test_conv_on_wrong_channels_names_layer_and_shapes(shape):
    with pytest.raises(ValueError, match=r"ConvLayer\(3, 16, ks=3, stride=2\) expects input of "
                                         r"shape \(N, 3, H, W\), got " + re_shape(shape)) as err:
        ConvLayer(3, 16)(torch.zeros(shape))
    assert "channels-last" not in str(err.value)


def re_shape(shape: tuple[int, ...]) -> str:
    return r"\(" + r", ".join(map(str, shape)) + r"\)"


# a real result

@pytest.fixture
def one_thread():
    # Tiny convs gain nothing from a second thread, and on a busy 2-core machine two threads
    # fighting other processes made this test 10x slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_simple_cnn_learns_digits_with_learnloop_sgd(one_thread):
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16
    y = torch.tensor(digits.target, dtype=torch.int64)
    gen = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(x), generator=gen)
    n_train = int(0.8 * len(x))
    train, valid = idx[:n_train], idx[n_train:]
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    torch.manual_seed(0)
    model = simple_cnn(in_channels=1, widths=(16, 32, 64))
    opt = SGD(model.parameters(), lr=0.1)
    for _ in range(10):
        model.train()
        order = train[torch.randperm(n_train, generator=gen)]
        for i in range(0, n_train, 32):
            xb, yb = x[order[i:i + 32]], y[order[i:i + 32]]
            loss = cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
    model.eval()
    with torch.no_grad():
        acc = (model(x[valid]).argmax(1) == y[valid]).float().mean().item()
    assert acc >= 0.93
