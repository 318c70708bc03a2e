"""The array kernels in initdiag.core.ops: conv2d against a loop reference, every backward pass against
central finite differences in float64, normalization statistics, and the dropout mask."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from finite_differences import central_differences
from hypothesis import given, settings
from hypothesis import strategies as st

from initdiag.core import ops

# (kh, kw, stride, pads=(top, bottom, left, right))
CONV_CASES = [
    (1, 1, 1, (0, 0, 0, 0)),
    (1, 1, 2, (0, 0, 0, 0)),
    (3, 3, 1, (1, 1, 1, 1)),
    (3, 3, 2, (1, 1, 1, 1)),
    (3, 3, 3, (0, 2, 1, 0)),
    (5, 5, 1, (2, 2, 2, 2)),
    (5, 5, 2, (0, 0, 0, 0)),
    (2, 2, 1, (0, 1, 0, 1)),
    (2, 2, 2, (1, 0, 0, 1)),
    (3, 2, 1, (1, 1, 0, 1)),
]


def conv_reference(x, W, b, stride, pads):
    """z[n,p,q,o] = b[o] + sum_{c,i,j} xpad[n, p*s+i, q*s+j, c] * W[o,c,i,j], written out in loops."""
    N, H, Wd, C = x.shape
    n_out, _, kh, kw = W.shape
    top, bottom, left, right = pads
    xp = np.zeros((N, H + top + bottom, Wd + left + right, C))
    xp[:, top : top + H, left : left + Wd, :] = x
    Ho = (H + top + bottom - kh) // stride + 1
    Wo = (Wd + left + right - kw) // stride + 1
    z = np.zeros((N, Ho, Wo, n_out))
    for n, p, q, o in itertools.product(range(N), range(Ho), range(Wo), range(n_out)):
        total = 0.0 if b is None else float(b[o])
        for c, i, j in itertools.product(range(C), range(kh), range(kw)):
            total += float(xp[n, p * stride + i, q * stride + j, c]) * float(W[o, c, i, j])
        z[n, p, q, o] = total
    return z


def assert_grad(analytic, numeric):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------------------- conv2d


@pytest.mark.parametrize(("kh", "kw", "stride", "pads"), CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_forward_matches_loop_reference(kh, kw, stride, pads, bias):
    rng = np.random.default_rng(kh * 100 + kw * 10 + stride)
    x = rng.normal(size=(2, 7, 6, 3))  # non-square, C=3 -> O=4
    W = rng.normal(size=(4, 3, kh, kw))
    b = rng.normal(size=4) if bias else None
    expected = conv_reference(x, W, b, stride, pads)

    z = ops.conv2d_forward(x, W, b, stride, pads)
    assert z.shape == expected.shape
    assert z.dtype == np.float64 and z.flags.c_contiguous
    np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12)

    x32, W32 = x.astype(np.float32), W.astype(np.float32)
    b32 = None if b is None else b.astype(np.float32)
    z32 = ops.conv2d_forward(x32, W32, b32, stride, pads)
    assert z32.dtype == np.float32 and z32.flags.c_contiguous
    expected32 = conv_reference(x32, W32, b32, stride, pads)
    scale = np.abs(expected32).max()
    np.testing.assert_allclose(z32, expected32, rtol=1e-5, atol=1e-5 * scale)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 2),
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    c=st.integers(1, 3),
    o=st.integers(1, 3),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    stride=st.integers(1, 3),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    seed=st.integers(0, 2**16),
)
def test_conv2d_forward_any_shape(n, h, w, c, o, kh, kw, stride, pads, seed):
    if h + pads[0] + pads[1] < kh or w + pads[2] + pads[3] < kw:
        with pytest.raises(ValueError):
            ops.conv2d_forward(np.zeros((n, h, w, c)), np.zeros((o, c, kh, kw)), None, stride, pads)
        return
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, h, w, c))
    W = rng.normal(size=(o, c, kh, kw))
    b = rng.normal(size=o)
    np.testing.assert_allclose(
        ops.conv2d_forward(x, W, b, stride, pads),
        conv_reference(x, W, b, stride, pads),
        rtol=1e-12,
        atol=1e-12,
    )


def test_conv2d_rejects_channel_mismatch():
    with pytest.raises(ValueError, match="channels"):
        ops.conv2d_forward(np.zeros((1, 4, 4, 3)), np.zeros((2, 4, 3, 3)), None, 1, (0, 0, 0, 0))


@pytest.mark.parametrize(
    ("kh", "kw", "stride", "pads", "shape"),
    [
        (3, 3, 2, (1, 1, 1, 1), (2, 6, 5, 3)),
        (3, 3, 2, (0, 2, 1, 0), (2, 7, 6, 2)),  # stride leaves the last input row unused
        (2, 2, 1, (0, 1, 0, 1), (1, 5, 4, 3)),
        (1, 1, 3, (0, 0, 0, 0), (2, 5, 5, 2)),
    ],
)
def test_conv2d_backward_finite_differences(kh, kw, stride, pads, shape):
    rng = np.random.default_rng(7)
    x = rng.normal(size=shape)
    W = rng.normal(size=(4, shape[3], kh, kw))
    b = rng.normal(size=4)
    G = rng.normal(size=ops.conv2d_forward(x, W, b, stride, pads).shape)

    def loss():
        return float(np.sum(ops.conv2d_forward(x, W, b, stride, pads) * G))

    dx, dW, db = ops.conv2d_backward(x, G, W, stride, pads)
    assert dx.shape == x.shape and dW.shape == W.shape and db.shape == b.shape
    assert_grad(dx, central_differences(loss, x))
    assert_grad(dW, central_differences(loss, W))
    assert_grad(db, central_differences(loss, b))


def test_conv2d_backward_keeps_float32():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    W = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    dz = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    dx, dW, db = ops.conv2d_backward(x, dz, W, 2, (1, 1, 1, 1))
    assert dx.dtype == dW.dtype == db.dtype == np.float32
    dx64, dW64, db64 = ops.conv2d_backward(
        x.astype(np.float64), dz.astype(np.float64), W.astype(np.float64), 2, (1, 1, 1, 1)
    )
    np.testing.assert_allclose(dx, dx64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dW, dW64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(db, db64, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------ pooling


@pytest.mark.parametrize(("shape", "size"), [((2, 6, 4, 3), 2), ((2, 7, 5, 3), 2), ((1, 8, 7, 2), 3)])
def test_maxpool2d_forward_and_finite_differences(shape, size):
    rng = np.random.default_rng(3)
    # distinct values 0.01 apart, far more than the finite-difference step: every max is unique
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
    y, index = ops.maxpool2d_forward(x, size)
    Ho, Wo = shape[1] // size, shape[2] // size
    assert y.shape == (shape[0], Ho, Wo, shape[3])
    expected = np.zeros_like(y)
    for n, p, q, c in np.ndindex(y.shape):
        expected[n, p, q, c] = x[n, p * size : (p + 1) * size, q * size : (q + 1) * size, c].max()
    np.testing.assert_array_equal(y, expected)

    G = rng.normal(size=y.shape)
    dx = ops.maxpool2d_backward(G, index, x.shape, size)
    assert_grad(dx, central_differences(lambda: float(np.sum(ops.maxpool2d_forward(x, size)[0] * G)), x))
    assert not dx[:, Ho * size :].any() and not dx[:, :, Wo * size :].any()


def test_maxpool2d_ties_send_the_gradient_to_the_first_maximum_only():
    x = np.zeros((2, 4, 5, 3))  # all equal, as after relu; the last column is dropped
    x[0, 0:2, 2:4, 1] = [[1.0, 5.0], [5.0, 2.0]]  # tie between (0, 1) and (1, 0): (0, 1) comes first
    y, index = ops.maxpool2d_forward(x, 2)
    dy = np.ones_like(y)
    dx = ops.maxpool2d_backward(dy, index, x.shape, 2)
    assert dx.sum() == y.size  # one unit per window, not one per tied position
    windows = dx[:, :4, :4, :].reshape(2, 2, 2, 2, 2, 3).transpose(0, 1, 3, 5, 2, 4)
    assert (windows.reshape(2, 2, 2, 3, 4).sum(axis=-1) == 1).all()
    expected = np.zeros_like(x)
    expected[:, 0:4:2, 0:4:2, :] = 1.0  # the top-left corner of each all-zero window
    expected[0, 0, 2, 1] = 0.0
    expected[0, 0, 3, 1] = 1.0
    np.testing.assert_array_equal(dx, expected)


def test_maxpool2d_keeps_float32():
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)
    y, index = ops.maxpool2d_forward(x, 2)
    assert y.dtype == np.float32
    assert ops.maxpool2d_backward(np.ones_like(y), index, x.shape, 2).dtype == np.float32


def test_global_avgpool():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 4, 5))
    y = ops.global_avgpool_forward(x)
    assert y.shape == (2, 5)
    np.testing.assert_allclose(y, x.reshape(2, 12, 5).mean(axis=1), rtol=1e-12)
    G = rng.normal(size=y.shape)
    dx = ops.global_avgpool_backward(G, x.shape)
    assert dx.shape == x.shape and dx.flags.writeable
    assert_grad(dx, central_differences(lambda: float(np.sum(ops.global_avgpool_forward(x) * G)), x))
    x32 = x.astype(np.float32)
    assert ops.global_avgpool_forward(x32).dtype == np.float32
    assert ops.global_avgpool_backward(G.astype(np.float32), x.shape).dtype == np.float32


# ------------------------------------------------------------------------------------ normalization

NORM_SHAPES = [(6, 4), (3, 4, 3, 2)]


def param_shape(kind, shape):
    return shape[-1:] if kind == "batchnorm" else shape[1:]


def norm_fns(kind):
    if kind == "batchnorm":
        return ops.batchnorm_forward, ops.batchnorm_backward
    return ops.layernorm_forward, ops.layernorm_backward


@pytest.mark.parametrize("kind", ["batchnorm", "layernorm"])
@pytest.mark.parametrize("shape", NORM_SHAPES)
def test_norm_finite_differences(kind, shape):
    forward, backward = norm_fns(kind)
    rng = np.random.default_rng(5)
    x = rng.normal(1.5, 2.0, size=shape)
    gamma = rng.normal(1.0, 0.5, size=param_shape(kind, shape))
    beta = rng.normal(0.0, 0.5, size=param_shape(kind, shape))
    G = rng.normal(size=shape)

    def loss():
        return float(np.sum(forward(x, gamma, beta, 1e-5)[0] * G))

    _, cache = forward(x, gamma, beta, 1e-5)
    dx, dgamma, dbeta = backward(G, cache)
    assert dgamma.shape == dbeta.shape == gamma.shape
    assert_grad(dx, central_differences(loss, x))
    assert_grad(dgamma, central_differences(loss, gamma))
    assert_grad(dbeta, central_differences(loss, beta))


@pytest.mark.parametrize("kind", ["batchnorm", "layernorm"])
@pytest.mark.parametrize("shape", NORM_SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_norm_statistics_and_closed_form(kind, shape, dtype):
    forward, backward = norm_fns(kind)
    axes = tuple(range(len(shape) - 1)) if kind == "batchnorm" else tuple(range(1, len(shape)))
    rng = np.random.default_rng(6)
    x = rng.normal(3.0, 2.0, size=shape).astype(dtype)
    ones, zeros = np.ones(param_shape(kind, shape)), np.zeros(param_shape(kind, shape))
    tol = 1e-10 if dtype == np.float64 else 1e-5

    y, _ = forward(x, ones, zeros, 1e-12)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y.mean(axis=axes, dtype=np.float64), 0.0, atol=tol)
    np.testing.assert_allclose(y.var(axis=axes, dtype=np.float64), 1.0, rtol=tol * 10)

    # a large eps so the test notices where eps goes
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = x64.var(axis=axes, keepdims=True)
    gamma = rng.normal(1.0, 0.5, size=ones.shape)
    beta = rng.normal(0.0, 0.5, size=ones.shape)
    y, cache = forward(x, gamma, beta, 0.5)
    np.testing.assert_allclose(y, gamma * (x64 - mean) / np.sqrt(var + 0.5) + beta, rtol=tol, atol=tol)

    dx, dgamma, dbeta = backward(np.ones_like(x), cache)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype


# ---------------------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_mask(dtype):
    rng = np.random.default_rng(8)
    ones = ops.dropout_mask(rng, (3, 4), 0.0, dtype)
    assert ones.dtype == dtype and ones.shape == (3, 4) and (ones == 1).all()

    mask = ops.dropout_mask(rng, (500, 1000), 0.3, dtype)
    assert mask.dtype == dtype and mask.shape == (500, 1000)
    assert set(np.unique(mask).tolist()) == {0.0, float(dtype(1 / 0.7))}
    assert abs(np.mean(mask == 0) - 0.3) < 0.005
    assert abs(mask.mean(dtype=np.float64) - 1.0) < 0.005


def test_dropout_mask_is_seeded_and_checks_its_rate():
    a = ops.dropout_mask(np.random.default_rng(1), (50, 20), 0.5, np.float32)
    b = ops.dropout_mask(np.random.default_rng(1), (50, 20), 0.5, np.float64)
    np.testing.assert_array_equal(a, b)
    assert not ops.dropout_mask(np.random.default_rng(1), (4,), 1.0, np.float64).any()
    with pytest.raises(ValueError):
        ops.dropout_mask(np.random.default_rng(1), (4,), 1.5, np.float64)


def test_conv_in_batch_chunks_equals_one_pass(monkeypatch):
    """A batch too big for one im2col matrix goes through in chunks: the same numbers."""
    from initdiag.core import ops

    rng = np.random.default_rng(7)
    x = rng.normal(size=(5, 6, 7, 3))
    W = rng.normal(size=(4, 3, 3, 3))
    b = rng.normal(size=4)
    dz = rng.normal(size=(5, 3, 4, 4))
    whole = ops.conv2d_forward(x, W, b, 2, (1, 1, 1, 1)), ops.conv2d_backward(x, dz, W, 2, (1, 1, 1, 1))
    monkeypatch.setattr(ops, "IM2COL_MAX_BYTES", 2 * 3 * 4 * 27 * 8)  # two samples per chunk
    assert ops.im2col_chunk(5, 3, 4, 27, 8) == 2
    chunked = ops.conv2d_forward(x, W, b, 2, (1, 1, 1, 1)), ops.conv2d_backward(x, dz, W, 2, (1, 1, 1, 1))
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-13)
    for a, c in zip(whole[1], chunked[1], strict=True):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-13)
