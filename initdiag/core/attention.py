"""Multi-head self-attention (Vaswani et al. 2017) on arrays (batch, seq, d), with its backward pass,
numpy only; the protocol and parameter conventions of `token_layers.ParamLayer`.

Layout of the parameters (initdiag's ``x @ W``, i.e. GPT-2's ``c_attn`` / ``c_proj`` Conv1D weights,
and the transpose of ``nn.MultiheadAttention``'s ``in_proj_weight`` / ``out_proj.weight``):

- ``W_qkv`` (d, 3 * heads * head_dim): columns [q | k | v], and within each, head h at columns
  h * head_dim ... (h + 1) * head_dim - 1. So ``W_qkv = in_proj_weight.T``; ``W_q``, ``W_k``, ``W_v``
  (d, heads * head_dim) are views of its three column blocks (``dW_q`` ... of ``dW_qkv``).
- ``b_qkv`` (3 * heads * head_dim,) = ``in_proj_bias``, ``W_o`` (heads * head_dim, d) =
  ``out_proj.weight.T``, ``b_o`` (d,) = ``out_proj.bias`` (no biases with ``bias=False``).
- with ``qk_norm``: ``q_norm_gamma``, ``q_norm_beta``, ``k_norm_gamma``, ``k_norm_beta`` (head_dim,),
  one LayerNorm over each head's q (and k) vector, shared by the heads (as timm's ``qk_norm``;
  Dehghani et al. 2023, "Scaling Vision Transformers to 22 Billion Parameters").
"""

from __future__ import annotations

import math

import numpy as np

from . import ops
from .parallel import map_chunks, spans
from .token_layers import ParamLayer, as_dtype, check_width, token_rows


def softmax(logits: np.ndarray, out=None, *, row_max=None, row_sum=None) -> np.ndarray:
    """p = exp(s - max s) / sum exp(s - max s) over the last axis: subtracting the row maximum keeps
    every exponent <= 0, so nothing overflows; -inf entries (masked) get p = 0 exactly. *out* may be
    *logits* itself (in place); *row_max* and *row_sum* (shape (..., 1)), when given, receive max s and
    the sum, with which exp(s - max s) / sum gives the same p again, bit for bit."""
    m = np.max(logits, axis=-1, keepdims=True, out=row_max)
    shifted = np.subtract(logits, m, out=out)
    np.exp(shifted, out=shifted)
    total = np.sum(shifted, axis=-1, keepdims=True, out=row_sum)
    shifted /= total
    return shifted


# score entries per chunk of (batch * heads) matrices: each chunk's products, softmax and recomputed
# weights stay in cache, and the chunks run on `parallel.map_chunks` (Python threads, one-thread BLAS:
# many small products would make OpenBLAS's pool wake and wait for each other)
SCORE_CHUNK = 1 << 18


def causal_allowed(seq: int) -> np.ndarray:
    """(seq, seq) bool: query i may attend to key j <= i (the lower triangle with the diagonal)."""
    return np.tri(seq, dtype=bool)


class MultiHeadAttention(ParamLayer):
    """Multi-head self-attention, z = concat_h(softmax(Q_h K_h^T / sqrt(head_dim) + M) V_h) W_o + b_o,
    with [Q | K | V] = x W_qkv + b_qkv split into heads, M = -inf above the diagonal when ``causal``
    (a query sees itself and earlier keys), else 0. ``qk_norm``: Q_h and K_h are layer-normalized over
    head_dim before the product. Batched GEMMs (np.matmul) in the input's dtype; a stable `softmax`.

    After forward, for statistics (no extra pass): ``logits`` (batch, heads, seq, seq), the scaled
    scores Q K^T / sqrt(head_dim) with masked entries -inf (exactly what enters the softmax), ``probs``
    (same shape) the attention weights, ``allowed`` the (seq, seq) bool mask (None when not causal),
    ``q``, ``k``, ``v`` (batch, heads, seq, head_dim) after the qk-norm, ``context`` (batch, seq,
    heads * head_dim) what W_o multiplies. ``keep_logits=False`` computes the softmax in place and
    leaves ``logits`` None, halving the attention's (batch * heads * seq^2) memory. `drop_outputs`
    (once the statistics are taken) lets ``logits`` and ``probs`` go: the backward pass keeps only Q,
    K, V, the context and each softmax row's max and sum, as FlashAttention (Dao et al. 2022) keeps
    its row statistics, and recomputes P from them, bit for bit. The score products, softmax and
    recomputation run in chunks of (batch * heads) matrices on `parallel.map_chunks`.

    Backward, with dP = dC V^T for dC = dz W_o^T split into heads: dV = P^T dC; the softmax's
    dS = P * (dP - rowsum(dC * C)) (rowsum(dP * P) = rowsum(dC * C), the FlashAttention identity, a
    seq x head_dim product instead of seq x seq), scaled by 1 / sqrt(head_dim); dQ = dS K, dK = dS^T Q,
    through the qk-norm when on; then dW_qkv = x^T d[QKV], dx = d[QKV] W_qkv^T, dW_o = C^T dz.
    """

    kind = "attention"
    weight_name = "W_qkv"

    def __init__(
        self,
        name: str,
        d: int,
        heads: int,
        *,
        head_dim: int | None = None,
        causal: bool = False,
        bias: bool = True,
        qk_norm: bool = False,
        qk_norm_eps: float = 1e-5,
        keep_logits: bool = True,
        params=None,
        dtype=np.float64,
    ):
        super().__init__(name)
        if head_dim is None:
            if heads < 1 or d % heads:
                raise ValueError(f"{name}: d = {d} is not a multiple of heads = {heads}; give head_dim")
            head_dim = d // heads
        if heads < 1 or head_dim < 1:
            raise ValueError(f"{name}: heads and head_dim must be >= 1, got {heads} and {head_dim}")
        self.d, self.heads, self.head_dim = d, heads, head_dim
        self.inner = inner = heads * head_dim
        self.causal, self.bias, self.qk_norm = causal, bias, qk_norm
        self.qk_norm_eps, self.keep_logits = qk_norm_eps, keep_logits
        # called for each chunk of score matrices, on its thread, with (the chunk's index, its logits
        # after the mask, allowed) before the softmax and (index, its weights, allowed) after: a probe's
        # statistics of arrays it does not keep, taken while they are in cache; they change nothing
        self.logits_hook = self.probs_hook = None
        self.scale = 1.0 / math.sqrt(head_dim)
        specs = {"W_qkv": ((d, 3 * inner), 0.0)}
        if bias:
            specs["b_qkv"] = ((3 * inner,), 0.0)
        specs["W_o"] = ((inner, d), 0.0)
        if bias:
            specs["b_o"] = ((d,), 0.0)
        if qk_norm:
            for which in ("q", "k"):
                specs[f"{which}_norm_gamma"] = ((head_dim,), 1.0)
                specs[f"{which}_norm_beta"] = ((head_dim,), 0.0)
        self._take_params(specs, _fuse(name, params), dtype)
        self._clear()

    # --- the separate projections, as views of the fused ones --------------------------------
    def _block(self, array, i):
        if array is None:
            return None
        return array[..., i * self.inner : (i + 1) * self.inner]

    W_q = property(lambda self: self._block(self.W_qkv, 0))
    W_k = property(lambda self: self._block(self.W_qkv, 1))
    W_v = property(lambda self: self._block(self.W_qkv, 2))
    dW_q = property(lambda self: self._block(self.dW_qkv, 0))
    dW_k = property(lambda self: self._block(self.dW_qkv, 1))
    dW_v = property(lambda self: self._block(self.dW_qkv, 2))

    def _clear(self):
        self.logits = self.probs = self.allowed = None
        self.q = self.k = self.v = self.context = None
        self._q_cache = self._k_cache = self._row_max = self._row_sum = None

    def _split_heads(self, rows, batch, seq, parts):
        """(batch*seq, parts*inner) -> (parts, batch, heads, seq, head_dim), contiguous."""
        split = rows.reshape(batch, seq, parts, self.heads, self.head_dim).transpose(2, 0, 3, 1, 4)
        return np.ascontiguousarray(split)

    def _normalize(self, heads, which):
        gamma, beta = getattr(self, f"{which}_norm_gamma"), getattr(self, f"{which}_norm_beta")
        normed, cache = ops.layernorm_forward(token_rows(heads), gamma, beta, self.qk_norm_eps)
        return normed.reshape(heads.shape), cache

    def _parts(self, slabs: int, seq: int) -> list[slice]:
        """Slices of the (batch * heads) score matrices, about `SCORE_CHUNK` entries each."""
        return spans(slabs, max(1, SCORE_CHUNK // (seq * seq)))

    def _scores(self, q, k, out):
        """out = Q K^T / sqrt(head_dim), -inf where the mask forbids (q, k, out over the same slabs)."""
        np.matmul(q, k.swapaxes(-1, -2), out=out)
        out *= out.dtype.type(self.scale)
        if self.allowed is not None:
            np.copyto(out, out.dtype.type(-np.inf), where=~self.allowed)

    def transform(self, x):
        check_width(self, x, self.d)
        if x.ndim != 3:
            raise ValueError(f"{self.name}: expects (batch, seq, {self.d}) arrays, got shape {x.shape}")
        batch, seq, _ = x.shape
        dt = x.dtype
        qkv = token_rows(x) @ as_dtype(self.W_qkv, dt)
        if self.bias:
            qkv += as_dtype(self.b_qkv, dt)
        q, k, v = self._split_heads(qkv, batch, seq, 3)
        del qkv
        if self.qk_norm:
            q, self._q_cache = self._normalize(q, "q")
            k, self._k_cache = self._normalize(k, "k")
        self.q, self.k, self.v = q, k, v
        self.allowed = causal_allowed(seq) if self.causal else None
        slabs, hd = batch * self.heads, self.head_dim
        qs, ks, vs = (a.reshape(slabs, seq, hd) for a in (q, k, v))
        parts = self._parts(slabs, seq)
        logits = np.empty((batch, self.heads, seq, seq), dtype=dt)
        scores = logits.reshape(slabs, seq, seq)
        self.logits = logits if self.keep_logits else None
        self.probs = np.empty_like(logits) if self.keep_logits else logits
        probs = self.probs.reshape(slabs, seq, seq)
        self._row_max = np.empty((slabs, seq, 1), dtype=dt)
        self._row_sum = np.empty((slabs, seq, 1), dtype=dt)
        context = np.empty((slabs, seq, hd), dtype=dt)
        logits_hook, probs_hook = self.logits_hook, self.probs_hook

        def attend(k):
            part = parts[k]
            self._scores(qs[part], ks[part], scores[part])
            if logits_hook is not None:
                logits_hook(k, scores[part], self.allowed)
            p = softmax(
                scores[part], out=probs[part], row_max=self._row_max[part], row_sum=self._row_sum[part]
            )
            if probs_hook is not None:
                probs_hook(k, p, self.allowed)
            np.matmul(p, vs[part], out=context[part])

        map_chunks(attend, list(range(len(parts))))
        merged = context.reshape(batch, self.heads, seq, hd).transpose(0, 2, 1, 3).reshape(batch * seq, -1)
        self.context = merged.reshape(batch, seq, self.inner)
        out = merged @ as_dtype(self.W_o, dt)
        if self.bias:
            out += as_dtype(self.b_o, dt)
        return out.reshape(batch, seq, self.d)

    def transform_backward(self, dz):
        batch, seq, _ = dz.shape
        dt = dz.dtype
        dz_rows = token_rows(dz)
        merged = token_rows(self.context)
        self.dW_o = merged.T @ dz_rows
        if self.bias:
            self.db_o = dz_rows.sum(axis=0)
        d_context = self._split_heads(dz_rows @ as_dtype(self.W_o, dt).T, batch, seq, 1)[0]
        context = self._split_heads(merged, batch, seq, 1)[0]
        slabs, hd = batch * self.heads, self.head_dim
        flat = [a.reshape(slabs, seq, hd) for a in (self.q, self.k, self.v, d_context, context)]
        qs, ks, vs, dcs, cs = flat
        dq, dk, dv = (np.empty((batch, self.heads, seq, hd), dtype=dt) for _ in range(3))
        dqs, dks, dvs = (a.reshape(slabs, seq, hd) for a in (dq, dk, dv))

        def back(part):
            # the forward's attention weights, recomputed bit for bit from Q, K and the softmax's row
            # maxima and sums (the seq x seq weights are not kept between the passes)
            p = np.empty((qs[part].shape[0], seq, seq), dtype=dt)
            self._scores(qs[part], ks[part], p)
            p -= self._row_max[part]
            np.exp(p, out=p)
            p /= self._row_sum[part]
            np.matmul(p.swapaxes(-1, -2), dcs[part], out=dvs[part])
            d_scores = np.matmul(dcs[part], vs[part].swapaxes(-1, -2))  # dL/dP, then dL/dS in place
            d_scores -= np.sum(dcs[part] * cs[part], axis=-1, keepdims=True)
            d_scores *= p
            d_scores *= dt.type(self.scale)
            np.matmul(d_scores, ks[part], out=dqs[part])
            np.matmul(d_scores.swapaxes(-1, -2), qs[part], out=dks[part])

        map_chunks(back, self._parts(slabs, seq))
        if self.qk_norm:
            dq, self.dq_norm_gamma, self.dq_norm_beta = ops.layernorm_backward(token_rows(dq), self._q_cache)
            dk, self.dk_norm_gamma, self.dk_norm_beta = ops.layernorm_backward(token_rows(dk), self._k_cache)
            dq, dk = dq.reshape(dv.shape), dk.reshape(dv.shape)
        d_qkv = np.empty((batch, seq, 3, self.heads, self.head_dim), dtype=dt)
        for i, part in enumerate((dq, dk, dv)):
            d_qkv[:, :, i] = part.transpose(0, 2, 1, 3)
        d_qkv_rows = d_qkv.reshape(batch * seq, 3 * self.inner)
        x_rows = token_rows(self.x)
        self.dW_qkv = x_rows.T @ d_qkv_rows
        if self.bias:
            self.db_qkv = d_qkv_rows.sum(axis=0)
        return (d_qkv_rows @ as_dtype(self.W_qkv, dt).T).reshape(self.x.shape)

    def drop_outputs(self):
        """The statistics are taken: the attention weights (and logits) go; the backward pass
        recomputes them from Q, K and the softmax's row maxima and sums."""
        super().drop_outputs()
        self.logits = self.probs = None

    def free(self):
        super().free()
        self._clear()

    def __repr__(self) -> str:
        flags = [f for f, on in (("causal", self.causal), ("qk_norm", self.qk_norm)) if on]
        return (
            f"MultiHeadAttention({self.name!r}, d={self.d}, heads={self.heads}, head_dim={self.head_dim}"
            + "".join(f", {f}" for f in flags)
            + ")"
        )


def _fuse(name, params):
    """Separate W_q, W_k, W_v (d, inner) (and b_q, b_k, b_v) -> W_qkv (and b_qkv), concatenated (a
    copy: the layer's views W_q ... then look into W_qkv); fused or absent ones pass through."""
    if not params:
        return params
    params = dict(params)
    for prefix, axis in (("W", 1), ("b", 0)):
        names = [f"{prefix}_{which}" for which in "qkv"]
        present = [n for n in names if n in params]
        if not present:
            continue
        if len(present) != 3 or f"{prefix}_qkv" in params:
            raise ValueError(
                f"{name}: give {prefix}_qkv or all of {', '.join(names)}, not {', '.join(sorted(present))}"
            )
        params[f"{prefix}_qkv"] = np.concatenate([np.asarray(params.pop(n)) for n in names], axis=axis)
    return params
