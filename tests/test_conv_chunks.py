"""Convolutions in chunks of samples on threads (initdiag.core.parallel): the same numbers as one
chunk on one thread, the BLAS thread count restored, and the backward paths (the flipped-kernel
one of stride-1 convs, the scatter of the others) against finite differences where they switch."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from finite_differences import central_differences
from test_ops import CONV_CASES, assert_grad

from initdiag.core import ops, parallel


def _conv_all(x, W, b, dz, stride, pads):
    return (ops.conv2d_forward(x, W, b, stride, pads), *ops.conv2d_backward(x, dz, W, stride, pads))


@pytest.mark.parametrize(("kh", "kw", "stride", "pads"), CONV_CASES)
def test_chunks_and_threads_give_one_chunks_numbers(monkeypatch, kh, kw, stride, pads):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 9, 8, 3))
    W = rng.normal(size=(4, 3, kh, kw))
    b = rng.normal(size=4)
    dz = rng.normal(size=ops.conv2d_forward(x, W, b, stride, pads).shape)
    monkeypatch.setattr(ops, "WINDOW_CHUNK_BYTES", 1 << 30)
    whole = _conv_all(x, W, b, dz, stride, pads)
    monkeypatch.setattr(ops, "WINDOW_CHUNK_BYTES", 1)  # one sample per chunk: 7 chunks
    assert len(ops._chunks(7, 100)) == 7
    chunked = _conv_all(x, W, b, dz, stride, pads)
    for a, c in zip(whole, chunked, strict=True):
        assert a.shape == c.shape and a.dtype == c.dtype
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-13)


def test_float32_stays_float32_and_matches_float64():
    rng = np.random.default_rng(4)
    x, W, dz = rng.normal(size=(5, 6, 6, 4)), rng.normal(size=(3, 4, 3, 3)), rng.normal(size=(5, 6, 6, 3))
    exact = _conv_all(x, W, None, dz, 1, (1, 1, 1, 1))
    single = _conv_all(*(a.astype(np.float32) for a in (x, W)), None, dz.astype(np.float32), 1, (1, 1, 1, 1))
    for a, s in zip(exact, single, strict=True):
        assert s.dtype == np.float32
        np.testing.assert_allclose(s, a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("kh", "kw", "stride", "pads"),
    [(1, 1, 1, (1, 1, 1, 1)), (3, 3, 1, (3, 0, 0, 3)), (3, 3, 1, (0, 0, 0, 0)), (2, 3, 1, (1, 0, 2, 0))],
)
def test_stride_one_backward_paths_finite_differences(kh, kw, stride, pads):
    """Pads below the kernel take the flipped-kernel path, wider pads the scatter: both exact."""
    rng = np.random.default_rng(5)
    x, W, b = rng.normal(size=(2, 5, 4, 2)), rng.normal(size=(3, 2, kh, kw)), rng.normal(size=3)
    G = rng.normal(size=ops.conv2d_forward(x, W, b, stride, pads).shape)

    def loss():
        return float(np.sum(ops.conv2d_forward(x, W, b, stride, pads) * G))

    dx, dW, db = ops.conv2d_backward(x, G, W, stride, pads)
    assert_grad(dx, central_differences(loss, x))
    assert_grad(dW, central_differences(loss, W))
    assert_grad(db, central_differences(loss, b))


def test_map_chunks_keeps_order_and_restores_blas_threads(two_threads):
    names = set()

    def work(i):
        names.add(threading.current_thread().name)
        two_threads.during.append(two_threads.get())
        return i * i

    assert parallel.map_chunks(work, list(range(40))) == [i * i for i in range(40)]
    assert set(two_threads.during) == {1} and two_threads.get() == 2  # one BLAS thread meanwhile
    assert all(name.startswith("initdiag-chunks") for name in names)
    assert parallel.map_chunks(lambda i: threading.current_thread().name, [3]) == ["MainThread"]
    two_threads.threads = 1  # BLAS on one thread (a worker process): the chunks run in order here
    assert set(parallel.map_chunks(lambda i: threading.current_thread().name, [1, 2])) == {"MainThread"}


def test_map_chunks_threads_follow_the_callers_error_handling(two_threads):
    def overflow(i):
        return np.float32(3e38) * np.float32(10)

    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        parallel.map_chunks(overflow, [1, 2, 3])
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning from a pool thread would fail here
        assert parallel.map_chunks(overflow, [1, 2, 3]) == [np.inf] * 3


@pytest.mark.parametrize(("kh", "kw", "stride", "pads"), CONV_CASES)
def test_threads_give_one_threads_numbers(monkeypatch, two_threads, kh, kw, stride, pads):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(9, 9, 8, 3)).astype(np.float32)
    W = rng.normal(size=(4, 3, kh, kw)).astype(np.float32)
    dz = rng.normal(size=ops.conv2d_forward(x, W, None, stride, pads).shape).astype(np.float32)
    monkeypatch.setattr(ops, "WINDOW_CHUNK_BYTES", 1)
    threaded = _conv_all(x, W, None, dz, stride, pads)
    two_threads.threads = 1
    alone = _conv_all(x, W, None, dz, stride, pads)
    for a, t in zip(alone, threaded, strict=True):
        np.testing.assert_array_equal(t, a)


@pytest.mark.parametrize("stride", [1, 2])
def test_an_empty_batch_has_empty_gradients(stride):
    x, W = np.zeros((0, 5, 5, 3), np.float32), np.ones((4, 3, 3, 3), np.float32)
    z = ops.conv2d_forward(x, W, None, stride, (1, 1, 1, 1))
    dx, dW, db = ops.conv2d_backward(x, z, W, stride, (1, 1, 1, 1))
    assert z.shape[0] == dx.shape[0] == 0 and not dW.any() and not db.any()
