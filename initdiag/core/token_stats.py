"""Statistics of token streams and attention, in float64 over bounded chunks (numpy only): the
attention logits' std and entropy, and the mean pairwise cosine of a sample's tokens (rank collapse).
Definitions are the contract's "Transformer statistics" (docs/transformers.md)."""

from __future__ import annotations

import math

import numpy as np

from .parallel import map_chunks, spans

_CHUNK = 1 << 20  # float64 entries converted at a time


def _batch_chunks(n: int, per_sample: int) -> list[slice]:
    return spans(n, max(1, _CHUNK // max(per_sample, 1)))


def logit_sums(logits: np.ndarray, allowed: np.ndarray | None) -> tuple[int, float, float]:
    """(count, mean, sum of squared deviations from that mean), in float64, of the attention logits a
    query may attend to in *logits* (..., seq, seq): the scaled scores that enter the softmax,
    *allowed* the (seq, seq) bool mask (None: all; the others are -inf). Two passes over the chunk
    (the mean, then the deviations), so a large common offset costs no precision; `logit_std`
    combines chunks."""
    seq = logits.shape[-1]
    values = logits.reshape(-1, seq, seq).astype(np.float64)
    count = values.size if allowed is None else len(values) * int(allowed.sum())
    if count == 0:
        return 0, 0.0, 0.0
    if allowed is not None:
        np.copyto(values, 0.0, where=~allowed)  # the masked -inf: no part of the sums
    mean = float(values.sum()) / count
    values -= mean
    if allowed is not None:
        np.copyto(values, 0.0, where=~allowed)
    flat = values.reshape(-1)
    return count, mean, float(np.einsum("i,i->", flat, flat))


def logit_std(sums: list[tuple[int, float, float]]) -> float:
    """Population std of the logits from `logit_sums` of chunks, combined in the order given as Chan,
    Golub & LeVeque (1979) combine partial variances (no cancellation between chunks either)."""
    count, mean, squares = 0, 0.0, 0.0
    for part_count, part_mean, part_squares in sums:
        if part_count == 0:
            continue
        total = count + part_count
        delta = part_mean - mean
        squares += part_squares + delta * delta * count * part_count / total
        mean += delta * part_count / total
        count = total
    return math.sqrt(squares / count) if count else math.nan


def entropy_sums(probs: np.ndarray, allowed: np.ndarray | None) -> tuple[float, int]:
    """(sum over queries of H(p_i) / log(n_i), queries counted) of the attention weights *probs*
    (..., seq, seq), n_i the keys query i may attend to (seq, or i + 1 under the causal *allowed*).
    Queries with a single allowed key (entropy 0 by construction, maximum 0) are left out.
    `entropy_share` combines the sums of several chunks."""
    seq = probs.shape[-1]
    keys = allowed.sum(axis=1) if allowed is not None else np.full(seq, seq)
    judged = keys >= 2
    scale = np.zeros(seq)
    scale[judged] = 1.0 / np.log(keys[judged])
    p = probs.reshape(-1, seq, seq)
    logp = np.log(p + (p == 0))  # log 1 = 0 where p = 0 (np.where costs ten times the add)
    if p.dtype == np.float64:
        entropy = -np.einsum("bij,bij->bi", p, logp)  # (matrices, queries)
    else:  # float32 weights: their logs in float32 (a rounding of 6e-8), summed in float64
        entropy = -np.sum(p * logp, axis=-1, dtype=np.float64)
    return float((entropy[:, judged] * scale[judged]).sum()), entropy.shape[0] * int(judged.sum())


def entropy_share(sums: list[tuple[float, int]]) -> float:
    """Mean entropy share from `entropy_sums` of chunks (added in the order given); nan if no query
    has two keys to choose from."""
    total, count = 0.0, 0
    for part_total, part_count in sums:
        total += part_total
        count += part_count
    return total / count if count else math.nan


def _by_matrices(array: np.ndarray, fn, allowed):
    """fn(chunk, allowed) over chunks of the (seq, seq) matrices of *array*, on `map_chunks`."""
    seq = array.shape[-1]
    matrices = array.reshape(-1, seq, seq)
    parts = _batch_chunks(len(matrices), seq * seq)
    return map_chunks(lambda part: fn(matrices[part], allowed), parts)


def attention_logit_std(logits: np.ndarray, allowed: np.ndarray | None) -> float:
    """Population std of the attention logits (batch, heads, seq, seq) a query may attend to (see
    `logit_sums`), *logits* unchanged."""
    return logit_std(_by_matrices(logits, logit_sums, allowed))


def attention_entropy_share(probs: np.ndarray, allowed: np.ndarray | None) -> float:
    """Mean over samples, heads and query positions of the attention weights' entropy as a share of
    its maximum, H(p_i) / log(n_i) (see `entropy_sums`). 1: uniform attention; 0: one-hot."""
    return entropy_share(_by_matrices(probs, entropy_sums, allowed))


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
    """sqrt(sum of squares) = sqrt(n E[x^2]), E[x^2] from `stats.moments` (float64 sums; float32 data
    in float32 blocks, without a float64 copy). Where that is not finite (an inf or nan entry), the
    plain float64 sum of squares says which: inf, or nan."""
    from .stats import moments

    if array.size == 0:
        return 0.0
    with np.errstate(all="ignore"):  # inf - inf in the moments: the fallback below says what it is
        second = moments(array).second
    if math.isfinite(second):
        return math.sqrt(second * array.size)
    flat = array.reshape(-1)
    total = 0.0
    for start in range(0, flat.size, _CHUNK):
        part = flat[start : start + _CHUNK].astype(np.float64)
        total += float(np.einsum("i,i->", part, part))
    return math.sqrt(total)
