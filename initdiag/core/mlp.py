"""The transformer's position-wise feed-forward network, plain or gated, on (batch, seq, d) arrays;
the protocol and parameter conventions of `token_layers.ParamLayer`."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import InitdiagError
from .activations import Activation, get_activation
from .parallel import map_chunks, spans
from .special import gelu_float32, normal_cdf, normal_pdf
from .token_layers import ParamLayer, as_dtype, check_width, token_rows

GATED = {"swiglu": "silu", "geglu": "gelu"}


class Gated(NamedTuple):
    """A gated MLP's activation (Shazeer 2020): ``swiglu`` (silu) or ``geglu`` (gelu); text as its name."""

    name: str
    act: Activation

    def __str__(self) -> str:
        return self.name


def get_mlp_activation(text) -> Activation | Gated:
    """An MLP's activation: any `get_activation` name, or ``swiglu`` / ``geglu`` for a gated MLP."""
    if isinstance(text, Activation | Gated):
        return text
    name = str(text).strip().lower()
    if name in GATED:
        return Gated(name, get_activation(GATED[name]))
    try:
        return get_activation(text)
    except InitdiagError as exc:
        raise InitdiagError(f"{exc}; an MLP also takes swiglu or geglu (gated)") from None


# entries per piece of an elementwise function: its float64 temporaries stay in the cache (the normal
# CDF of a (2048, 3072) float32 array takes a quarter of the time in pieces of 2^16 than whole), and
# the pieces run on `parallel.map_chunks` (numpy's loops let go of the GIL)
_ELEMENTWISE_PIECE = 1 << 16


def _elementwise(fn, *arrays: np.ndarray, outputs: int = 1):
    """fn(*arrays) for an elementwise *fn*, evaluated piece by piece: the same numbers, less memory
    traffic. Each result has the first array's shape and dtype; with *outputs* > 1, *fn* returns that
    many arrays per piece and a tuple of results comes back."""
    flat = [a.reshape(-1) for a in arrays]
    outs = [np.empty_like(flat[0]) for _ in range(outputs)]

    def piece(part):
        got = fn(*(a[part] for a in flat))
        for out, value in zip(outs, got if outputs > 1 else (got,), strict=True):
            out[part] = value

    size = flat[0].size
    map_chunks(piece, spans(size, _ELEMENTWISE_PIECE))
    shaped = tuple(out.reshape(arrays[0].shape) for out in outs)
    return shaped if outputs > 1 else shaped[0]


def _cdf_and_gelu(pre):
    cdf = normal_cdf(pre)
    return cdf, pre * cdf


def _gelu_slope(pre, cdf):
    slope = pre * normal_pdf(pre)
    slope += cdf
    return slope


def _gelu_slope_and_value(pre, cdf):
    return _gelu_slope(pre, cdf), pre * cdf


class MLP(ParamLayer):
    """The transformer's position-wise feed-forward network, d -> hidden -> d (hidden = mult * d
    unless given), on every token:

    - plain (Vaswani et al. 2017; GPT-2 with gelu): out = act(x W_in + b_in) W_out + b_out
    - gated (Shazeer 2020, "GLU variants"; ``act="swiglu"`` is silu, ``"geglu"`` gelu):
      out = (act(x W_in + b_in) * (x W_linear + b_linear)) W_out + b_out

    Parameters: W_in (d, hidden) the activated projection (GPT-2's c_fc; Shazeer's W; LLaMA's w1 /
    gate_proj), W_linear (d, hidden) the linear one of the gated forms (Shazeer's V; LLaMA's w3 /
    up_proj), W_out (hidden, d) (c_proj; W_2; w2 / down_proj), biases b_* unless ``bias=False``.
    The layer's own act is the identity (z = a = out); the hidden activation is ``hidden_act``.

    After forward: ``hidden_pre`` = x W_in + b_in, ``hidden_post`` = act(hidden_pre), ``linear``
    (gated only), ``hidden`` = what W_out multiplies, each (batch, seq, hidden); after backward
    ``hidden_dact`` = act'(hidden_pre). Backward: dh = dz W_out^T; gated: dlinear = dh * hidden_post,
    dh *= linear; dpre = dh * act'(hidden_pre); dW_* = X^T d*, dx = dpre W_in^T (+ dlinear W_linear^T).
    """

    kind = "mlp"
    weight_name = "W_in"

    def __init__(
        self,
        name: str,
        d: int,
        mult: float = 4,
        act: str | Activation = "gelu",
        *,
        hidden: int | None = None,
        bias: bool = True,
        params=None,
        dtype=np.float64,
    ):
        super().__init__(name)
        if isinstance(act, Gated):
            act = act.name
        self.gated = isinstance(act, str) and act in GATED
        self.variant = act if self.gated else "plain"
        self.hidden_act = get_activation(GATED[act] if self.gated else act)
        self.d = d
        self.hidden_size = hidden if hidden is not None else round(mult * d)
        if self.hidden_size < 1:
            raise ValueError(f"{name}: the hidden size must be >= 1, got {self.hidden_size}")
        n = self.hidden_size
        specs = {"W_in": ((d, n), 0.0)}
        if bias:
            specs["b_in"] = ((n,), 0.0)
        if self.gated:
            specs["W_linear"] = ((d, n), 0.0)
            if bias:
                specs["b_linear"] = ((n,), 0.0)
        specs["W_out"] = ((n, d), 0.0)
        if bias:
            specs["b_out"] = ((d,), 0.0)
        self.bias = bias
        self._take_params(specs, params, dtype)
        self._clear_hidden()

    def _clear_hidden(self):
        self.hidden_pre = self.hidden_post = self.linear = self.hidden = self.hidden_dact = None
        self._cdf = None

    def _activate(self, pre):
        """act(pre). For gelu (z Phi(z)), Phi(pre) is kept for the derivative Phi(z) + z phi(z): the
        formulas of `activations`, bit for bit, without computing the normal CDF twice (in float32 it
        costs as much as a third of the MLP's matrix products)."""
        if self.hidden_act.kind == "gelu":
            if pre.dtype == np.float32:
                post, self._cdf = gelu_float32(pre, value=True, cdf=True)
            else:
                self._cdf, post = _elementwise(_cdf_and_gelu, pre, outputs=2)
            return post
        return _elementwise(self.hidden_act, pre)

    def _derivative(self, pre, post):
        """act'(pre), and act(pre) again when *post* is None (gelu's, from the CDF it kept)."""
        if self._cdf is None:
            return _elementwise(self.hidden_act.derivative, pre, post), post
        if post is None:
            return _elementwise(_gelu_slope_and_value, pre, self._cdf, outputs=2)
        return _elementwise(_gelu_slope, pre, self._cdf), post

    def _affine(self, x_rows, W, b):
        out = x_rows @ as_dtype(W, x_rows.dtype)
        if b is not None:
            out += as_dtype(b, x_rows.dtype)
        return out

    def transform(self, x):
        check_width(self, x, self.d)
        x_rows = token_rows(x)
        shape = (*x.shape[:-1], self.hidden_size)
        pre = self._affine(x_rows, self.W_in, self.b_in if self.bias else None)
        post = self._activate(pre)
        hidden = post
        if self.gated:
            linear = self._affine(x_rows, self.W_linear, self.b_linear if self.bias else None)
            hidden = post * linear
            self.linear = linear.reshape(shape)
        self.hidden_pre, self.hidden_post, self.hidden = (
            pre.reshape(shape),
            post.reshape(shape),
            hidden.reshape(shape),
        )
        out = self._affine(hidden, self.W_out, self.b_out if self.bias else None)
        return out.reshape(x.shape)

    def transform_backward(self, dz):
        dt = dz.dtype
        dz_rows = token_rows(dz)
        x_rows = token_rows(self.x)
        pre = token_rows(self.hidden_pre)
        # the slope; and what `drop_outputs` let go, recomputed as the forward pass computed it
        kept = None if self.hidden_post is None else token_rows(self.hidden_post)
        dact, post = self._derivative(pre, kept)
        if self.hidden is not None:
            hidden = token_rows(self.hidden)
        else:
            hidden = post * token_rows(self.linear) if self.gated else post
        self.dW_out = hidden.T @ dz_rows
        del hidden
        if not self.gated:
            del post  # (hidden itself) no longer needed: a hidden-sized array less at the peak
        dh = dz_rows @ as_dtype(self.W_out, dt).T
        if self.bias:
            self.db_out = dz_rows.sum(axis=0)
        if self.gated:
            dlinear = dh * post
            dh *= token_rows(self.linear)
            self.dW_linear = x_rows.T @ dlinear
            if self.bias:
                self.db_linear = dlinear.sum(axis=0)
        self.hidden_dact = dact.reshape(self.hidden_pre.shape)
        dh *= dact
        self.dW_in = x_rows.T @ dh
        if self.bias:
            self.db_in = dh.sum(axis=0)
        dx = dh @ as_dtype(self.W_in, dt).T
        if self.gated:
            dx += dlinear @ as_dtype(self.W_linear, dt).T
        return dx.reshape(self.x.shape)

    def drop_outputs(self):
        """The statistics are taken: ``hidden`` goes (and gelu's ``hidden_post``, which is
        ``hidden_pre`` times the normal CDF it keeps); the backward pass recomputes them."""
        super().drop_outputs()
        self.hidden = None
        if self._cdf is not None:
            self.hidden_post = None

    def free(self):
        super().free()
        self._clear_hidden()

    def __repr__(self) -> str:
        sizes = f"{self.d} -> {self.hidden_size} -> {self.d}"
        return f"MLP({self.name!r}, {sizes}, {self.variant}, {self.hidden_act})"
