"""Array kernels for convolutional and normalization layers: forward and backward, numpy only.

Activations are channels-last: image batches are (N, H, W, C), flat batches (N, D). Convolution
weights use PyTorch's (O, C, kh, kw) layout, so weights drawn for torch match one to one. Every
kernel returns arrays in the input's dtype (float32 or float64); reductions that decide accuracy
(normalization statistics) run in float64.
"""

from __future__ import annotations

import threading

import numpy as np

from .parallel import map_chunks, spans


def _check_conv(x, W, stride, pads):
    if x.ndim != 4 or W.ndim != 4:
        raise ValueError(f"conv2d needs x (N,H,W,C) and W (O,C,kh,kw), got {x.shape} and {W.shape}")
    if x.shape[3] != W.shape[1]:
        raise ValueError(f"conv2d: x has {x.shape[3]} channels but W expects {W.shape[1]}")
    if stride < 1 or min(pads) < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and pads >= 0, got {stride} and {pads}")
    top, bottom, left, right = pads
    if x.shape[1] + top + bottom < W.shape[2] or x.shape[2] + left + right < W.shape[3]:
        raise ValueError(f"conv2d: kernel {W.shape[2:]} is larger than the padded input")


def _out_size(size, k, stride, pad_lo, pad_hi):
    return (size + pad_lo + pad_hi - k) // stride + 1


def _w2d(W, dtype):
    """(O,C,kh,kw) -> (O, kh*kw*C), the column order of `_Windows`."""
    return W.astype(dtype, copy=False).transpose(0, 2, 3, 1).reshape(W.shape[0], -1)


# The im2col matrix of a whole batch can be huge (64 x 224^2 positions x 576 for a 3x3 conv from 64
# channels: 7.4 GB in float32). The convolutions below use much less (`WINDOW_CHUNK_BYTES` per
# thread, or one sample's columns); the memory estimate (analysis/memory.py) allows this bound.
IM2COL_MAX_BYTES = 256 << 20


def im2col_chunk(N: int, Ho: int, Wo: int, depth: int, itemsize: int) -> int:
    """Samples per chunk so that one chunk's im2col matrix stays under `IM2COL_MAX_BYTES` (the
    memory estimate's bound)."""
    per_sample = Ho * Wo * depth * itemsize
    return max(1, min(N, IM2COL_MAX_BYTES // max(per_sample, 1)))


# A convolution goes through the batch in chunks of about this many bytes of window columns, each
# gathered into a buffer that its thread reuses (no fresh pages) and multiplied while it is in cache;
# the chunks run on `parallel.map_chunks`
WINDOW_CHUNK_BYTES = 8 << 20


def _chunks(N: int, sample_bytes: int) -> list[slice]:
    """The batch's chunks: slices of samples, about `WINDOW_CHUNK_BYTES` of columns each."""
    return spans(N, max(1, min(N, WINDOW_CHUNK_BYTES // max(sample_bytes, 1))))


class _Windows:
    """The im2col matrix (n*Ho*Wo, kh*kw*C), columns in (kh, kw, C) order (as `_w2d`), of one
    chunk of samples at a time, written into buffers kept per thread, so a caller uses each matrix
    before asking its thread for the next. A 1x1 stride-1 unpadded kernel's columns are the input
    itself (no copy)."""

    def __init__(self, x, kh, kw, stride, pads, step):
        _, H, Wd, _ = x.shape
        self.x, self.kh, self.kw, self.stride, self.pads, self.step = x, kh, kw, stride, pads, step
        top, bottom, left, right = pads
        self.Hp, self.Wp = H + top + bottom, Wd + left + right
        self.Ho, self.Wo = (self.Hp - kh) // stride + 1, (self.Wp - kw) // stride + 1
        self.plain = kh == kw == stride == 1 and not any(pads)
        self.local = threading.local()

    def __call__(self, part: slice) -> np.ndarray:
        x, kh, kw, s, (top, _, left, _) = self.x, self.kh, self.kw, self.stride, self.pads
        n, H, Wd, C = x[part].shape
        Ho, Wo = self.Ho, self.Wo
        if self.plain:
            return x[part].reshape(-1, C)
        if getattr(self.local, "cols", None) is None:
            if any(self.pads):  # zeroed once: only the inside is written, the border stays zero
                self.local.padded = np.zeros((self.step, self.Hp, self.Wp, C), dtype=x.dtype)
            self.local.cols = np.empty((self.step, Ho, Wo, kh, kw, C), dtype=x.dtype)
        src, cols = x[part], self.local.cols[:n]
        if any(self.pads):
            src = self.local.padded[:n]
            src[:, top : top + H, left : left + Wd, :] = x[part]
        for i in range(kh):
            for j in range(kw):
                cols[:, :, :, i, j, :] = src[:, i : i + s * Ho : s, j : j + s * Wo : s, :]
        return cols.reshape(n * Ho * Wo, kh * kw * C)


def conv2d_forward(
    x: np.ndarray, W: np.ndarray, b: np.ndarray | None, stride: int, pads: tuple[int, int, int, int]
) -> np.ndarray:
    """2-D cross-correlation as ``torch.nn.functional.conv2d`` (no kernel flip), channels-last.

    x (N,H,W,C), W (O,C,kh,kw), b (O,) or None, pads = (top, bottom, left, right) zeros.
    Returns z (N,Ho,Wo,O), C-contiguous, with Ho = (H + top + bottom - kh) // stride + 1 (Wo alike):
    z[n,p,q,o] = b[o] + sum_{c,i,j} xpad[n, p*stride + i, q*stride + j, c] * W[o,c,i,j].
    One matrix product per chunk of samples (`_Windows`), written straight into z.
    """
    _check_conv(x, W, stride, pads)
    N, H, Wd, C = x.shape
    n_out, _, kh, kw = W.shape
    Ho = _out_size(H, kh, stride, pads[0], pads[1])
    Wo = _out_size(Wd, kw, stride, pads[2], pads[3])
    W2d = _w2d(W, x.dtype).T
    z = np.empty((N, Ho, Wo, n_out), dtype=x.dtype)
    parts = _chunks(N, Ho * Wo * kh * kw * C * x.dtype.itemsize)
    windows = _Windows(x, kh, kw, stride, pads, parts[0].stop if parts else 1)

    def chunk(part):
        np.matmul(windows(part), W2d, out=z[part].reshape(-1, n_out))

    map_chunks(chunk, parts)
    if b is not None:
        z += b.astype(x.dtype, copy=False)
    return z


def conv2d_backward(
    x: np.ndarray, dz: np.ndarray, W: np.ndarray, stride: int, pads: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of `conv2d_forward` given dz = dL/dz (N,Ho,Wo,O).

    Returns dx (N,H,W,C) (the padding cropped off), dW (O,C,kh,kw), db (O,), chunk by chunk of
    samples; dW sums the chunks' parts in float64, in order.
    Stride 1 with pads below the kernel (a "same" or "valid" conv): dx is the convolution of dz,
    padded by (kh - 1 - top, ...), with the flipped kernel, and the windows of dz gathered for it
    give dW too, no gather of x and no scatter: with D the window columns of the padded dz in
    (i', j', o) order, dx = D @ Wf where Wf[(i', j', o), c] = W[o, c, kh-1-i', kw-1-j'], and
    dW[o, c, i, j] = (D^T x)[(kh-1-i, kw-1-j, o), c].
    Other strides: dW = dz2d^T @ im2col(x), and dx = col2im(dz2d @ W2d), where col2im adds every
    window's column gradient back onto the input positions the window covered.
    """
    _check_conv(x, W, stride, pads)
    N, H, Wd, C = x.shape
    n_out, _, kh, kw = W.shape
    top, bottom, left, right = pads
    Ho, Wo = dz.shape[1:3]
    dt = np.result_type(x.dtype, dz.dtype)
    x, dz = x.astype(dt, copy=False), dz.astype(dt, copy=False)
    dx = np.empty((N, H, Wd, C), dtype=dt)
    if stride == 1 and max(top, bottom) < kh and max(left, right) < kw:
        flipped = (kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right)
        Wf = np.ascontiguousarray(W.astype(dt, copy=False).transpose(2, 3, 0, 1)[::-1, ::-1]).reshape(-1, C)
        parts = _chunks(N, H * Wd * kh * kw * n_out * dt.itemsize)
        windows = _Windows(dz, kh, kw, 1, flipped, parts[0].stop if parts else 1)

        def chunk(part):
            D = windows(part)
            np.matmul(D, Wf, out=dx[part].reshape(-1, C))
            return D.T @ x[part].reshape(-1, C)

        G = np.zeros((kh * kw * n_out, C))
        for partial in map_chunks(chunk, parts):
            G += partial
        dW = np.ascontiguousarray(G.reshape(kh, kw, n_out, C)[::-1, ::-1].transpose(2, 3, 0, 1), dtype=dt)
    else:
        W2d = _w2d(W, dt)
        parts = _chunks(N, Ho * Wo * kh * kw * C * dt.itemsize)
        windows = _Windows(x, kh, kw, stride, pads, parts[0].stop if parts else 1)

        def chunk(part):
            dz2d = dz[part].reshape(-1, n_out)
            partial = dz2d.T @ windows(part)
            # (kh, kw, C) order, so each kernel offset's slice below is contiguous over C
            dcols = (dz2d @ W2d).reshape(-1, Ho, Wo, kh, kw, C)
            dxp = np.zeros((len(dcols), H + top + bottom, Wd + left + right, C), dtype=dt)
            # windows overlap when stride < kernel, so scatter-add one kernel offset at a time
            for i in range(kh):
                for j in range(kw):
                    dxp[:, i : i + stride * Ho : stride, j : j + stride * Wo : stride, :] += dcols[
                        :, :, :, i, j, :
                    ]
            dx[part] = dxp[:, top : top + H, left : left + Wd, :]
            return partial

        dW2d = np.zeros((n_out, kh * kw * C))
        for partial in map_chunks(chunk, parts):
            dW2d += partial
        dW = np.ascontiguousarray(dW2d.reshape(n_out, kh, kw, C).transpose(0, 3, 1, 2), dtype=dt)
    db = dz.reshape(-1, n_out).sum(axis=0)
    return dx, dW, db


def _pool_windows(x, size):
    """(N,H,W,C) -> (N,Ho,Wo,size*size,C), row-major window order, leftover rows/cols dropped."""
    N, H, Wd, C = x.shape
    Ho, Wo = H // size, Wd // size
    blocks = x[:, : Ho * size, : Wo * size, :].reshape(N, Ho, size, Wo, size, C)
    return blocks.transpose(0, 1, 3, 2, 4, 5).reshape(N, Ho, Wo, size * size, C)


def maxpool2d_forward(x: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling as ``torch.nn.MaxPool2d(size)``: size x size windows, stride size, floor mode.

    x (N,H,W,C) -> y (N, H // size, W // size, C); rows/cols that do not fill a window are dropped.
    Also returns ``index`` (N,Ho,Wo,C), the row-major position (i*size + j) of each window's first
    maximum, as a small unsigned integer array for `maxpool2d_backward`.
    """
    if size < 1 or x.shape[1] < size or x.shape[2] < size:
        raise ValueError(f"maxpool2d: window {size} does not fit input {x.shape}")
    windows = _pool_windows(x, size)
    # argmax returns the first maximum, as PyTorch routes the gradient
    index = windows.argmax(axis=3)
    y = np.take_along_axis(windows, index[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    small = np.uint8 if size * size <= 256 else np.uint32
    return y, index.astype(small)


def maxpool2d_backward(
    dy: np.ndarray, index: np.ndarray, x_shape: tuple[int, int, int, int], size: int
) -> np.ndarray:
    """dL/dx (x_shape) from dy (N,Ho,Wo,C): each window's dy goes to its first maximum only.

    Rows/cols dropped by the forward pass get zero gradient.
    """
    dx = np.zeros(x_shape, dtype=dy.dtype)
    Ho, Wo = dy.shape[1:3]
    for i in range(size):
        for j in range(size):
            dx[:, i : Ho * size : size, j : Wo * size : size, :] = np.where(index == i * size + j, dy, 0)
    return dx


def global_avgpool_forward(x: np.ndarray) -> np.ndarray:
    """(N,H,W,C) -> (N,C): y[n,c] = mean over h, w of x[n,h,w,c]."""
    return x.mean(axis=(1, 2))


def global_avgpool_backward(dy: np.ndarray, x_shape: tuple[int, int, int, int]) -> np.ndarray:
    """dL/dx (N,H,W,C) = dy[n,c] / (H*W) at every position."""
    H, Wd = x_shape[1:3]
    return np.broadcast_to((dy / (H * Wd))[:, None, None, :], x_shape).copy()


def _centered(x, axes):
    """x - mean(x) over *axes*, in float64 (the mean is taken in float64)."""
    return x - x.mean(axis=axes, dtype=np.float64, keepdims=True)


def normalized(x, inv_std, axes):
    """xhat = (x - mean) * inv_std over *axes*, in x.dtype: `_normalize_forward`'s xhat again, bit for
    bit, from x and its inv_std (for a layer that keeps its input rather than xhat)."""
    centered = _centered(x, axes)
    centered *= inv_std
    return centered.astype(x.dtype, copy=False)


def _normalize_forward(x, gamma, beta, axes, eps):
    """y = gamma * xhat + beta with xhat = (x - mean) / sqrt(var + eps) over *axes* (biased variance).

    The statistics are taken in float64; xhat and y come back in x.dtype. Returns y and the cache
    (xhat, gamma, inv_std), inv_std = 1 / sqrt(var + eps) in float64, shaped to broadcast against x.
    """
    dt = x.dtype
    centered = _centered(x, axes)
    var = np.mean(np.square(centered), axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    centered *= inv_std
    xhat = centered.astype(dt, copy=False)
    del centered  # for float32 input, the float64 copy is twice the size of x
    y = xhat * gamma.astype(dt, copy=False)
    y += beta.astype(dt, copy=False)
    return y, (xhat, gamma, inv_std)


def normalize_backward(g, xhat, inv_std, axes):
    """dL/dx from g = dL/dxhat through the statistics of `_normalize_forward`:
    dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)), means over *axes*.
    """
    dt = g.dtype
    mean_g = g.mean(axis=axes, dtype=np.float64, keepdims=True).astype(dt)
    mean_gx = np.mean(g * xhat, axis=axes, dtype=np.float64, keepdims=True).astype(dt)
    dx = g - mean_g
    dx -= xhat * mean_gx
    dx *= inv_std.astype(dt)
    return dx


def batchnorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Training-mode batch norm (``BatchNorm1d``/``BatchNorm2d``) over every axis but the last.

    x (N,D) or (N,H,W,C); gamma, beta (C,). y = gamma * (x - mean) / sqrt(var + eps) + beta with the
    batch mean and biased (population) variance per channel. Returns y and the cache
    ``(xhat, gamma, inv_std)`` for `batchnorm_backward`.
    """
    axes = tuple(range(x.ndim - 1))
    return _normalize_forward(x, gamma, beta, axes, eps)


def batchnorm_backward(
    dy: np.ndarray, cache: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact gradient through the batch statistics: returns dx (x's shape), dgamma, dbeta (C,).

    dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat)), dgamma = sum(dy * xhat),
    dbeta = sum(dy), means and sums over every axis but the last.
    """
    xhat, gamma, inv_std = cache
    axes = tuple(range(dy.ndim - 1))
    dt = dy.dtype
    dgamma = np.sum(dy * xhat, axis=axes, dtype=np.float64)
    dbeta = dy.sum(axis=axes, dtype=np.float64)
    # gamma is constant over the normalized axes, so it factors out of the means
    dx = normalize_backward(dy, xhat, inv_std, axes)
    dx *= gamma.astype(dt, copy=False)
    return dx, dgamma.astype(dt), dbeta.astype(dt)


def layernorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Layer norm as ``torch.nn.LayerNorm(x.shape[1:])``: each sample over all its other axes.

    x (N, ...); gamma, beta x.shape[1:]. y = gamma * (x - mean) / sqrt(var + eps) + beta with the
    sample's mean and biased variance. Returns y and the cache ``(xhat, gamma, inv_std)``.
    """
    axes = tuple(range(1, x.ndim))
    return _normalize_forward(x, gamma, beta, axes, eps)


def layernorm_backward(
    dy: np.ndarray, cache: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns dx (x's shape), dgamma, dbeta (x.shape[1:]); with g = dy * gamma:

    dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)), means per sample,
    dgamma = sum over the batch of dy * xhat, dbeta = sum over the batch of dy.
    """
    xhat, gamma, inv_std = cache
    axes = tuple(range(1, dy.ndim))
    dt = dy.dtype
    dgamma = np.sum(dy * xhat, axis=0, dtype=np.float64)
    dbeta = dy.sum(axis=0, dtype=np.float64)
    # gamma varies within a sample here, so it has to go inside the means
    dx = normalize_backward(dy * gamma.astype(dt, copy=False), xhat, inv_std, axes)
    return dx, dgamma.astype(dt), dbeta.astype(dt)


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], rate: float, dtype) -> np.ndarray:
    """Inverted-dropout mask: 0 with probability *rate*, 1 / (1 - rate) otherwise, in *dtype*.

    E[mask] = 1, so ``x * mask`` keeps the expectation of x. rate 0 gives ones (no draw), rate 1 zeros
    (as ``torch.nn.functional.dropout``).
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"dropout rate must be in [0, 1], got {rate}")
    if rate == 0.0:
        return np.ones(shape, dtype=dtype)
    if rate == 1.0:
        return np.zeros(shape, dtype=dtype)
    # float64 draws whatever the dtype, so one seed gives the same mask in float32 and float64
    mask = (rng.random(shape) >= rate).astype(dtype)
    mask *= np.asarray(1.0 / (1.0 - rate), dtype=dtype)
    return mask
