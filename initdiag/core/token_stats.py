"""Statistics of token streams and attention, in float64 over bounded chunks (numpy only): the
attention logits' std and entropy, and the mean pairwise cosine of a sample's tokens (rank collapse).
Definitions are the contract's "Transformer statistics" (docs/transformers.md)."""

from __future__ import annotations

import math

import numpy as np

from .parallel import map_chunks

_CHUNK = 1 << 20  # float64 entries converted at a time


def _batch_chunks(n: int, per_sample: int):
    step = max(1, _CHUNK // max(per_sample, 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def attention_logit_std(logits: np.ndarray, allowed: np.ndarray | None) -> float:
    """Population std of the attention logits (batch, heads, seq, seq), the scaled scores that enter
    the softmax, over the entries a query may attend to (*allowed* (seq, seq) bool; None: all; the
    others are -inf). Sums in float64 over one head at a time, masked by ``where``: no copy of the
    allowed entries, and *logits* unchanged."""
    from .stats import moments

    batch, heads = logits.shape[:2]
    if allowed is None:
        return math.sqrt(moments(logits).var)

    def head_sums(h):
        block = logits[:, h]
        square = np.square(block, where=allowed, out=np.zeros_like(block))
        return float(np.sum(block, where=allowed, dtype=np.float64)), float(np.sum(square, dtype=np.float64))

    total = total_sq = 0.0
    for head_total, head_sq in map_chunks(head_sums, list(range(heads))):  # summed in head order
        total += head_total
        total_sq += head_sq
    count = batch * heads * int(allowed.sum())
    mean = total / count
    return math.sqrt(max(total_sq / count - mean * mean, 0.0))


def attention_entropy_share(probs: np.ndarray, allowed: np.ndarray | None) -> float:
    """Mean over samples, heads and query positions of the attention weights' entropy as a share of
    its maximum, H(p_i) / log(n_i), n_i the keys query i may attend to (seq, or i + 1 under a causal
    mask). Queries with a single allowed key (the first one under a causal mask), whose entropy is 0
    by construction and whose maximum is 0, are left out. 1: uniform attention; 0: one-hot."""
    batch, heads, seq, _ = probs.shape
    keys = allowed.sum(axis=1) if allowed is not None else np.full(seq, seq)
    judged = keys >= 2
    if not judged.any():
        return math.nan
    scale = np.zeros(seq)
    scale[judged] = 1.0 / np.log(keys[judged])

    def part_sums(part):
        h, rows = part
        p = probs[rows, h].astype(np.float64)
        logp = np.log(p + (p == 0))  # log 1 = 0 where p = 0 (np.where costs ten times the add)
        entropy = -np.einsum("bij,bij->bi", p, logp)  # (samples, queries)
        return float((entropy[:, judged] * scale[judged]).sum()), entropy.shape[0] * int(judged.sum())

    parts = [(h, rows) for h in range(heads) for rows in _batch_chunks(batch, seq * seq)]
    total, count = 0.0, 0
    for part_total, part_count in map_chunks(part_sums, parts):  # summed in order
        total += part_total
        count += part_count
    return total / count


def token_cosine(x: np.ndarray) -> float:
    """Mean over samples of the mean pairwise cosine between the token vectors of one sample (x of
    shape (batch, seq, d); pairs of distinct tokens). With x_hat the unit vectors, the sum over pairs
    is |sum_t x_hat_t|^2 - sum_t |x_hat_t|^2, so it costs one pass. A zero vector counts as cosine 0
    with every other; one token per sample has no pair (nan). 1: every token points the same way
    (rank collapse, Dong et al. 2021)."""
    batch, seq, d = x.shape
    if seq < 2:
        return math.nan
    total = 0.0
    for rows in _batch_chunks(batch, seq * d):
        v = x[rows].astype(np.float64)
        norms = np.sqrt(np.einsum("btd,btd->bt", v, v))
        unit = v / np.where(norms > 0, norms, 1.0)[..., None]
        summed = unit.sum(axis=1)
        pairs = np.einsum("bd,bd->b", summed, summed) - (norms > 0).sum(axis=1)
        total += float(pairs.sum())
    return total / (batch * seq * (seq - 1))


def frobenius(array: np.ndarray) -> float:
    """sqrt(sum of squares) in float64, converted a chunk at a time."""
    flat = array.reshape(-1)
    total = 0.0
    for start in range(0, flat.size, _CHUNK):
        part = flat[start : start + _CHUNK].astype(np.float64)
        # einsum, not BLAS's dot, which wakes its thread pool for every chunk (and spins)
        total += float(np.einsum("i,i->", part, part))
    return math.sqrt(total)
