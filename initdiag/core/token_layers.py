"""Token-wise layers of a transformer, on arrays (batch, seq, d): embeddings, positions, the two
norms and a per-token dense map. The MLP is in `mlp.py`, attention in `attention.py`, the block that
composes them in `transformer.py`.

Every layer follows the protocol of `initdiag.core.layers.Layer` (``forward(x)`` caches, ``backward(da)``
returns dL/dx and fills the parameter gradients; x -> z then a = act(z), act the identity unless
given). The compute dtype is the input's (float32 or float64): parameters are cast to it, outputs and
gradients come back in it; norm statistics are taken in float64 (as `ops` does).

Parameters (`ParamLayer`): each is an attribute named in ``param_names`` (``W_in``, ``gamma``, ...),
its gradient the attribute ``d<name>`` (``dW_in``, ``dgamma``) after backward; ``params`` and
``grads`` map names to the live arrays, ``weight`` / ``dweight`` are the one the table reports
(``weight_name``). A layer is built from its sizes; ``params={name: array}`` hands it sampled arrays
(used as given, not copied, checked for shape), and any not given start as PyTorch's defaults for
norms (gamma 1, beta 0), zeros otherwise, to be filled in place (``layer.params["W_in"][...] = ...``).
Dense weights are stored (fan_in, fan_out) and applied as ``x @ W`` (initdiag's and GPT-2's
layout); embedding tables are (rows, d) as ``nn.Embedding.weight``.
"""

from __future__ import annotations

import numpy as np

from . import ops
from .activations import get_activation
from .layers import Layer
from .parallel import map_chunks, spans


class ParamLayer(Layer):
    """A `Layer` with named parameters: ``param_names``, gradients ``d<name>``, ``params``/``grads``
    dicts, and ``weight``/``dweight`` aliasing the parameter ``weight_name`` (None: no weight)."""

    param_names: tuple[str, ...] = ()
    weight_name: str | None = None

    def _take_params(self, specs: dict, params, dtype) -> None:
        """Set each parameter of *specs* ({name: (shape, fill)}) from *params* or to its fill."""
        given = dict(params or {})
        for key, (shape, fill) in specs.items():
            value = given.pop(key, None)
            if value is None:
                value = np.full(shape, fill, dtype=dtype)
            else:
                value = np.asarray(value)
                if value.shape != tuple(shape):
                    raise ValueError(f"{self.name}: {key} has shape {value.shape}, expected {tuple(shape)}")
            setattr(self, key, value)
            setattr(self, "d" + key, None)
        if given:
            raise ValueError(f"{self.name}: unknown parameters {sorted(given)}; it has {list(specs)}")
        self.param_names = tuple(specs)

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {key: getattr(self, key) for key in self.param_names}

    @property
    def grads(self) -> dict[str, np.ndarray | None]:
        return {key: getattr(self, "d" + key) for key in self.param_names}

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {key: getattr(self, key).shape for key in self.param_names}

    @property
    def weight(self):
        return None if self.weight_name is None else getattr(self, self.weight_name)

    @weight.setter
    def weight(self, value) -> None:  # `layer.weight *= k` (LSUV) assigns back
        setattr(self, self.weight_name, value)

    @property
    def dweight(self):
        return None if self.weight_name is None else getattr(self, "d" + self.weight_name)

    @dweight.setter
    def dweight(self, value) -> None:  # Layer.free sets it to None
        if self.weight_name is not None:
            setattr(self, "d" + self.weight_name, value)

    def free(self) -> None:
        super().free()
        for key in self.param_names:
            setattr(self, "d" + key, None)


def as_dtype(array: np.ndarray, dtype) -> np.ndarray:
    """A parameter in the compute dtype (itself when it already is)."""
    return array.astype(dtype, copy=False)


def token_rows(x: np.ndarray) -> np.ndarray:
    """(..., d) -> (tokens, d), a view when x is contiguous."""
    return x.reshape(-1, x.shape[-1])


# entries per part of a token-wise computation (a norm's): its float64 temporaries stay in cache, and
# the parts run on `parallel.map_chunks`
TOKEN_PART = 1 << 16


def token_parts(rows: np.ndarray) -> list[slice]:
    """Slices of the tokens of a (tokens, d) array, about `TOKEN_PART` entries each."""
    return spans(len(rows), max(1, TOKEN_PART // max(rows.shape[1], 1)))


def check_width(layer: Layer, x: np.ndarray, d: int) -> None:
    """A clear error for an input whose last axis is not the layer's width."""
    if x.ndim < 2 or x.shape[-1] != d:
        raise ValueError(f"{layer.name}: expects (..., {d}) arrays, got shape {x.shape}")


class Embedding(ParamLayer):
    """Token embedding (``nn.Embedding``): ids (batch, seq) int -> z = scale * W[ids] (batch, seq, d),
    W (vocab, d); Vaswani et al. 2017 use scale = sqrt(d).

    Backward: dW[v] = scale * sum of dz over the positions holding token v (a scatter-add, done as a
    sort and `np.add.reduceat`); the ids get no gradient, so it returns None.
    """

    kind = "embedding"
    weight_name = "W"

    def __init__(self, name: str, vocab: int, d: int, *, scale: float = 1.0, params=None, dtype=np.float64):
        super().__init__(name)
        self.vocab, self.d, self.scale = vocab, d, scale
        self._take_params({"W": ((vocab, d), 0.0)}, params, dtype)

    def transform(self, ids):
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise ValueError(f"{self.name}: token ids must be integers, got {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab):
            raise ValueError(
                f"{self.name}: token ids must be in [0, {self.vocab}), got {ids.min()}..{ids.max()}"
            )
        z = self.W[ids]
        if self.scale != 1.0:
            z *= z.dtype.type(self.scale)
        return z

    def transform_backward(self, dz):
        flat_ids = np.asarray(self.x).reshape(-1)
        dz_rows = token_rows(dz)
        order = np.argsort(flat_ids, kind="stable")
        sorted_ids = flat_ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]) if flat_ids.size else []
        self.dW = np.zeros(self.W.shape, dtype=dz.dtype)
        if flat_ids.size:
            self.dW[sorted_ids[starts]] = np.add.reduceat(dz_rows[order], starts, axis=0)
        if self.scale != 1.0:
            self.dW *= dz.dtype.type(self.scale)
        return None


class PositionEmbedding(ParamLayer):
    """Learned absolute positions (GPT-2's ``wpe``), added to the input: z = x + P[:seq] for x
    (batch, seq, d), P (max_seq, d). Backward: dP[:seq] = sum over the batch of dz, dx = dz."""

    kind = "position_embedding"
    weight_name = "P"

    def __init__(self, name: str, max_seq: int, d: int, *, params=None, dtype=np.float64):
        super().__init__(name)
        self.max_seq, self.d = max_seq, d
        self._take_params({"P": ((max_seq, d), 0.0)}, params, dtype)

    def transform(self, x):
        check_width(self, x, self.d)
        seq = x.shape[-2]
        if seq > self.max_seq:
            raise ValueError(f"{self.name}: sequence of {seq} is longer than max_seq {self.max_seq}")
        return x + as_dtype(self.P[:seq], x.dtype)

    def transform_backward(self, dz):
        seq = dz.shape[-2]
        self.dP = np.zeros(self.P.shape, dtype=dz.dtype)
        self.dP[:seq] = dz.reshape(-1, seq, self.d).sum(axis=0)
        return dz


def sinusoidal_table(seq: int, d: int, base: float = 10000.0) -> np.ndarray:
    """Vaswani et al. 2017, section 3.5 (float64, (seq, d)): PE[p, 2i] = sin(p / base^(2i/d)),
    PE[p, 2i+1] = cos(p / base^(2i/d)); for odd d the last column is a sine."""
    positions = np.arange(seq, dtype=np.float64)[:, None]
    frequencies = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    angles = positions * frequencies
    table = np.empty((seq, d))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : d // 2])
    return table


class SinusoidalPositions(ParamLayer):
    """Fixed sinusoidal positions (`sinusoidal_table`), added to the input: z = x + PE[:seq].
    No parameters; dx = dz."""

    kind = "sinusoidal_positions"

    def __init__(self, name: str, d: int, *, base: float = 10000.0):
        super().__init__(name)
        self.d, self.base = d, base
        self._take_params({}, None, None)
        self._table = np.zeros((0, d))

    def table(self, seq: int) -> np.ndarray:
        """PE[:seq] in float64, computed once for the longest sequence seen."""
        if seq > len(self._table):
            self._table = sinusoidal_table(seq, self.d, self.base)
        return self._table[:seq]

    def transform(self, x):
        check_width(self, x, self.d)
        return x + as_dtype(self.table(x.shape[-2]), x.dtype)

    def transform_backward(self, dz):
        return dz


class TokenLayerNorm(ParamLayer):
    """Layer normalization (Ba et al. 2016) of each token's d features, as ``nn.LayerNorm(d)``:
    z = gamma * (x - mean) / sqrt(var + eps) + beta, mean and biased variance over the last axis.
    (`layers.LayerNorm` normalizes a whole sample; this one each token.) Numerics: `ops.layernorm_*`
    on the (tokens, d) view. Backward: dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)) with
    g = dz * gamma; dgamma = sum of dz * xhat, dbeta = sum of dz over all tokens."""

    kind = "token_layernorm"
    weight_name = "gamma"

    def __init__(self, name: str, d: int, *, eps: float = 1e-5, act=None, params=None, dtype=np.float64):
        super().__init__(name, get_activation(act) if act is not None else None)
        self.d, self.eps = d, eps
        self._take_params({"gamma": ((d,), 1.0), "beta": ((d,), 0.0)}, params, dtype)
        self._inv_std = None

    def transform(self, x):
        check_width(self, x, self.d)
        rows = token_rows(x)
        z = np.empty_like(rows)
        self._inv_std = np.empty((len(rows), 1))  # xhat is recomputed from x going back: the stream is kept

        def part(tokens):
            z[tokens], (_, _, self._inv_std[tokens]) = ops.layernorm_forward(
                rows[tokens], self.gamma, self.beta, self.eps
            )

        map_chunks(part, token_parts(rows))
        return z.reshape(x.shape)

    def transform_backward(self, dz):
        rows, dz_rows, gamma = token_rows(self.x), token_rows(dz), as_dtype(self.gamma, dz.dtype)
        dx = np.empty_like(dz_rows)

        def part(tokens):
            inv_std = self._inv_std[tokens]
            xhat = ops.normalized(rows[tokens], inv_std, axes=(1,))
            dy = dz_rows[tokens]
            dx[tokens] = ops.normalize_backward(dy * gamma, xhat, inv_std, (1,))
            return np.sum(dy * xhat, axis=0, dtype=np.float64), dy.sum(axis=0, dtype=np.float64)

        sums = map_chunks(part, token_parts(rows))
        self.dgamma = np.sum([s[0] for s in sums], axis=0).astype(dz.dtype)
        self.dbeta = np.sum([s[1] for s in sums], axis=0).astype(dz.dtype)
        return dx.reshape(dz.shape)

    def free(self):
        super().free()
        self._inv_std = None


class RMSNorm(ParamLayer):
    """RMS normalization (Zhang & Sennrich 2019), as ``nn.RMSNorm(d)``: z = x / sqrt(mean(x^2) + eps)
    * gamma, mean over the last axis, in float64; eps None takes ``finfo(dtype).eps`` as PyTorch does.

    Backward, with r = 1 / sqrt(mean(x^2) + eps), xhat = x r, g = dz * gamma:
    dx = r * (g - xhat * mean(g * xhat)), dgamma = sum over all tokens of dz * xhat.
    """

    kind = "rmsnorm"
    weight_name = "gamma"

    def __init__(
        self, name: str, d: int, *, eps: float | None = None, act=None, params=None, dtype=np.float64
    ):
        super().__init__(name, get_activation(act) if act is not None else None)
        self.d, self.eps = d, eps
        self._take_params({"gamma": ((d,), 1.0)}, params, dtype)
        self._inv_rms = None

    def _normalized(self, rows, dt):
        return (rows * self._inv_rms).astype(dt, copy=False)

    def transform(self, x):
        check_width(self, x, self.d)
        dt = x.dtype
        eps = np.finfo(dt).eps if self.eps is None else self.eps
        rows = token_rows(x)
        mean_square = np.mean(np.square(rows, dtype=np.float64), axis=1, keepdims=True)
        self._inv_rms = 1.0 / np.sqrt(mean_square + eps)
        # xhat is recomputed from x going back (the stream is kept anyway), bit for bit
        return (self._normalized(rows, dt) * as_dtype(self.gamma, dt)).reshape(x.shape)

    def transform_backward(self, dz):
        dt = dz.dtype
        dz_rows = token_rows(dz)
        xhat = self._normalized(token_rows(self.x), dt)
        self.dgamma = np.sum(dz_rows * xhat, axis=0, dtype=np.float64).astype(dt)
        g = dz_rows * as_dtype(self.gamma, dt)
        mean_gx = np.mean(g * xhat, axis=1, dtype=np.float64, keepdims=True).astype(dt)
        g -= xhat * mean_gx
        g *= self._inv_rms.astype(dt)
        return g.reshape(dz.shape)

    def free(self):
        super().free()
        self._inv_rms = None


class TokenDense(ParamLayer):
    """A dense map applied to every token: z = x @ W + b on the last axis, W (d_in, d_out), as
    ``nn.Linear`` (whose weight is W^T) or GPT-2's ``Conv1D``; e.g. an LM head.
    Backward: dW = X^T dZ, db = column sums of dZ, dx = dZ W^T, over the (tokens, d) views."""

    kind = "token_dense"
    weight_name = "W"

    def __init__(
        self, name: str, d_in: int, d_out: int, *, bias=True, act=None, params=None, dtype=np.float64
    ):
        super().__init__(name, get_activation(act) if act is not None else None)
        self.d_in, self.d_out = d_in, d_out
        specs = {"W": ((d_in, d_out), 0.0)}
        if bias:
            specs["b"] = ((d_out,), 0.0)
        self._take_params(specs, params, dtype)

    def transform(self, x):
        check_width(self, x, self.d_in)
        z = token_rows(x) @ as_dtype(self.W, x.dtype)
        if "b" in self.param_names:
            z += as_dtype(self.b, x.dtype)
        return z.reshape(*x.shape[:-1], self.d_out)

    def transform_backward(self, dz):
        dz_rows = token_rows(dz)
        self.dW = token_rows(self.x).T @ dz_rows
        if "b" in self.param_names:
            self.db = dz_rows.sum(axis=0)
        return (dz_rows @ as_dtype(self.W, dz.dtype).T).reshape(self.x.shape)


class TiedUnembedding(TokenDense):
    """Logits from the embedding's own table, z = x @ E^T with E (vocab, d) the embedding's W (a
    language model whose output layer shares its input embedding: Press & Wolf 2017, GPT-2). Its
    ``dweight`` is this layer's share of dL/dE (dZ^T X, (vocab, d)); the table is the embedding's."""

    kind = "unembedding"

    def __init__(self, name: str, embedding: Embedding):
        super().__init__(name, embedding.d, embedding.vocab, bias=False, params={"W": embedding.W.T},
                         dtype=embedding.W.dtype)  # fmt: skip
        self.embedding = embedding

    @property
    def weight(self):
        return self.embedding.W

    @property
    def dweight(self):
        return None if self.dW is None else self.dW.T

    @dweight.setter
    def dweight(self, value) -> None:
        self.dW = value
