"""Memory: what a probe will need, estimated before any allocation, and what the machine has."""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np

from ..core.ops import im2col_chunk
from ..errors import InitdiagError
from ..network.graph import rows
from ..network.kinds import KINDS, NORM_KINDS
from ..network.stack import StackSpec


class MemoryEstimate(NamedTuple):
    weights: int  # W and dW (and the float64 QR work space of orthogonal init)
    activations: int  # the cached x, z, a of every layer, plus transients
    total: int


def estimate_memory(
    spec: StackSpec, batch: int, dtype: str, orthogonal: bool = False, loss: str = "unit"
) -> MemoryEstimate:
    """Peak bytes one trial of a resolved stack needs, before anything is allocated: the weights and
    their gradients, every row's cached arrays (an attention's seq x seq scores and weights per head
    included), the largest transient of a backward step, and the loss on the output."""
    item = np.dtype(dtype).itemsize
    graph = rows(spec)
    params, largest = 0, 0
    cached = math.prod(spec.input_shape)
    transient = im2col = 0
    for row in graph.rows:
        out = math.prod(row.out_shape)
        if row.params or row.kind in _TOKEN_ROWS:
            row_params, row_cached, step = _token_row(row)
            params += row_params
            largest = max([largest, *(math.prod(p.shape) for p in row.params)])
            cached += row_cached
            transient = max(transient, step)
            continue
        if row.weight_shape is not None:
            size = math.prod(row.weight_shape)
            params += size + (row.units if row.kind != "residual" else 0)
            largest = max(largest, size)
        if row.kind in NORM_KINDS:
            params += 2 * (row.units if row.kind == "batchnorm" else out)
        # z and a (one array when the layer has no activation), plus xhat / the dropout mask
        cached += out * (2 if KINDS[row.kind].takes_act else 1) + (
            out if row.kind in (*NORM_KINDS, "dropout") else 0
        )
        step = 4 * out  # dL/da, phi'(z), dL/dz, dL/dx
        if row.kind == "conv2d" or (
            row.kind == "residual" and row.weight_shape and len(row.weight_shape) == 4
        ):
            _, c, kh, kw = row.weight_shape
            step += 2 * math.prod(row.in_shape)  # the padded input and its gradient
            # one batch chunk's im2col matrix (or its gradient), bounded by ops.IM2COL_MAX_BYTES
            positions, depth = math.prod(row.out_shape[1:]), c * kh * kw
            chunk = im2col_chunk(batch, *row.out_shape[1:], depth, item)
            im2col = max(im2col, chunk * positions * depth * item)
        transient = max(transient, step)
    # the loss: its target (or labels) and dL/dY, and a cross-entropy's float64 log-softmax (three arrays)
    out = math.prod(graph.rows[-1].out_shape)
    transient = max(transient, 2 * out + (3 * out * 8 // item if loss == "xent" else 0))
    weights = 2 * params * item + (3 * largest * 8 if orthogonal else 0)
    # float64 chunks of the statistics and of each sampling thread's draw
    # + 10%: numpy's temporaries and the allocator's slack (measured: a 10-layer conv stack peaks 5%
    # above the rest of this sum)
    activations = int(1.1 * (batch * (cached + transient) * item + im2col))
    activations += 8 * (1 << 20) * (1 + (os.cpu_count() or 1))
    return MemoryEstimate(weights, activations, weights + activations)


_TOKEN_ROWS = ("sinusoidal_positions", "stream_add", "rmsnorm", "unembedding")


def _token_row(row) -> tuple[int, int, int]:
    """(parameters, values cached per sample, values of its largest backward transient per sample) of
    a transformer row, or a norm or dense layer on a token stream."""
    seq, d = row.out_shape[0], row.in_shape[-1]
    out = math.prod(row.out_shape)
    params = sum(math.prod(p.shape) + (p.shape[1] if p.bias else 0) for p in row.params)
    if row.kind == "attention":
        heads = row.layer.heads
        inner = row.params[0].shape[1]
        # kept for the backward pass: q, k, v, the context and each softmax row's max and sum (the
        # attention weights go once their statistics are taken, `MultiHeadAttention.drop_outputs`);
        # forward: the (heads x seq^2) scores, softmax in place, and the output; backward: dq, dk, dv,
        # d[qkv], the context's gradient and split (the weights are recomputed a chunk at a time)
        cached = 4 * seq * inner + 2 * heads * seq
        return params, cached, max(heads * seq * seq + 2 * out, 8 * seq * inner + 2 * out)
    if row.kind == "mlp":
        hidden = row.params[0].shape[1]
        gated = len(row.params) == 3
        # kept: before the activation and after it (gelu: the normal CDF instead), and the gated
        # forms' linear half; forward: those, the product and the output; backward: what was let go,
        # recomputed, the hidden gradient, act'(z) (kept for the statistics), the gate's gradient
        kept = (3 if gated else 2) * seq * hidden
        return params, kept, kept + 4 * seq * hidden + 2 * out
    if row.kind in ("layernorm", "rmsnorm"):
        return params + 2 * d, out, 4 * out  # z (a); x is the stream, kept as its add's output
    # an embedding, positions, an add of the stream, an unembedding or dense layer: z (and a)
    return params, 2 * out, 4 * out + (seq * d if row.kind == "sinusoidal_positions" else 0)


def available_memory() -> int | None:
    """Bytes we may use: ``INITDIAG_MAX_MEMORY`` (e.g. ``2GiB``) if set, else MemAvailable; in a
    worker process, its pool's share of that (the workers run at once)."""
    from .workers import pool_size

    total = _machine_memory()
    return None if total is None else total // pool_size()


def _machine_memory() -> int | None:
    limit = os.environ.get("INITDIAG_MAX_MEMORY")
    if limit:
        return parse_bytes(limit)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def shared_note() -> str:
    from .workers import pool_size

    n = pool_size()
    return f" to each of {n} worker processes (--jobs 1 gives one all of it)" if n > 1 else ""


def parse_bytes(text: str) -> int:
    units = {
        "": 1,
        "b": 1,
        "kb": 10**3,
        "mb": 10**6,
        "gb": 10**9,
        "tb": 10**12,
        "kib": 2**10,
        "mib": 2**20,
        "gib": 2**30,
        "tib": 2**40,
    }
    s = text.strip().lower()
    number = s.rstrip("abcdefghijklmnopqrstuvwxyz ")
    unit = s[len(number) :].strip()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or value <= 0:
        raise InitdiagError(f"INITDIAG_MAX_MEMORY='{text}' is not a size like 512MB or 2GiB")
    return int(value * units[unit])


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError
