"""Transformer layers for the probe, numpy only: the block that composes them, and (re-exported here)
the layers themselves.

- `token_layers`: `Embedding`, `PositionEmbedding` (learned), `SinusoidalPositions` (fixed),
  `TokenLayerNorm` (``nn.LayerNorm(d)``), `RMSNorm`, `TokenDense` (a per-token ``nn.Linear``);
  `mlp`: `MLP` (plain, or gated: swiglu, geglu); `attention`: `MultiHeadAttention`, `softmax`.
- here: `StreamAdd` (one add of the residual stream) and `TransformerBlock`.

Every layer is a `layers.Layer` (x -> z, a = act(z); ``forward`` / ``backward``) on (batch, seq, d)
arrays with named parameters (`token_layers.ParamLayer`: ``params``, ``grads``, ``weight``).

The composite, for a probe that reports one row per inner layer plus the stream
-------------------------------------------------------------------------------
A `TransformerBlock` is two sublayers, attention then MLP, each "branch, then an add to the stream":

    norm="pre"       x + f(LN(x))                            (GPT-2; Xiong et al. 2020)
    norm="post"      LN(x + f(x))                            (Vaswani et al. 2017, BERT)
    norm="deepnorm"  LN(alpha * x + f(x))                    (Wang et al. 2022, DeepNet)
    norm="none"      x + f(x)
    sandwich=True    x + LN_out(f(LN(x)))  (with "pre")      (Ding et al. 2021, CogView)

It holds its inner layers as ``block.layers``, a dict in forward order of short name -> layer:
``ln1``, ``attn``, ``ln1_out`` (sandwich), ``attn_add``, ``ln2``, ``mlp``, ``ln2_out``, ``mlp_add``
for pre-norm; ``attn``, ``attn_add``, ``ln1``, ``mlp``, ``mlp_add``, ``ln2`` for post / deepnorm (the
norm after its add); no ``ln*`` for "none". Each layer's ``name`` is ``"<block name>.<short name>"``.
``block.rows`` is that list: one table row each. The two `StreamAdd` rows are the stream: their
``x`` the stream coming in, ``branch`` the branch's output before the add, ``a`` the stream after it.

``block.forward(x, hook=None)`` and ``block.backward(da, hook=None)`` have the signatures of
`layers.Residual`, and call *hook* as `layers.run_forward` does: ``before_forward(layer, x)`` and
``forward(layer)`` around each inner layer, ``forward(add)`` after each add; going back
``backward(layer, da, dx)`` for each, an add's after its branch with dx = dL/d(stream in), both paths
(also ``add.grad_input``). A hook may free each layer once called for it (the `analysis.recorder`
does): nothing is read from a layer after its own backward. (`layers.run_forward` / `run_backward`
hand the hook to `Residual` nodes only, today; a block in a node list needs the same dispatch.)

After forward: ``block.branch_outputs`` ({"attn": ..., "mlp": ...}, each branch's output before its
add), ``block.stream_after`` (the stream after each sublayer, after the post-norm if any) and
``block.out`` (the stream after the block); ``block.attn`` exposes the attention's ``logits`` and
``probs``. After backward: ``block.grads`` ({"attn.W_qkv": dW, ...}; ``block.params`` alike) and
``block.grad_input``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attention import MultiHeadAttention, causal_allowed, softmax
from .layers import Layer
from .mlp import MLP
from .token_layers import (
    Embedding,
    ParamLayer,
    PositionEmbedding,
    RMSNorm,
    SinusoidalPositions,
    TiedUnembedding,
    TokenDense,
    TokenLayerNorm,
    sinusoidal_table,
)

__all__ = [
    "MLP",
    "Embedding",
    "MultiHeadAttention",
    "ParamLayer",
    "PositionEmbedding",
    "RMSNorm",
    "SinusoidalPositions",
    "StreamAdd",
    "TiedUnembedding",
    "TokenDense",
    "TokenLayerNorm",
    "TransformerBlock",
    "causal_allowed",
    "deepnorm_constants",
    "sinusoidal_table",
    "softmax",
]

NORM_PLACEMENTS = ("pre", "post", "deepnorm", "none")
NORM_TYPES = {"layernorm": TokenLayerNorm, "rmsnorm": RMSNorm}


def deepnorm_constants(n_layers: int) -> tuple[float, float]:
    """DeepNet's constants for an encoder-only or decoder-only stack of N blocks (Wang et al. 2022,
    Table 1): alpha = (2N)^(1/4), the shortcut's scale, and beta = (8N)^(-1/4), the gain of the Xavier
    normal init of W_v, W_o and the MLP's weights (W_q, W_k keep gain 1)."""
    if n_layers < 1:
        raise ValueError(f"deepnorm needs n_layers >= 1, got {n_layers}")
    return (2.0 * n_layers) ** 0.25, (8.0 * n_layers) ** -0.25


class StreamAdd(ParamLayer):
    """One add of the residual stream: z = a = shortcut_scale * x + branch_scale * h, x the stream
    coming in, h the branch's output (kept as ``branch``). No parameters. `backward_pair` returns
    (dL/dh, dL/dx through the shortcut) = (branch_scale * da, shortcut_scale * da); the caller sets
    ``grad_input``, dL/dx through both paths."""

    kind = "stream_add"

    def __init__(self, name: str, shortcut_scale: float = 1.0, branch_scale: float = 1.0):
        super().__init__(name)
        self._take_params({}, None, None)
        self.shortcut_scale, self.branch_scale = shortcut_scale, branch_scale
        self.branch: np.ndarray | None = None
        self.grad_input: np.ndarray | None = None

    @staticmethod
    def _scaled(array, scale):
        return array if scale == 1.0 else array * array.dtype.type(scale)

    def forward_pair(self, h: np.ndarray, x: np.ndarray) -> np.ndarray:
        self.x, self.branch = x, h
        if self.shortcut_scale == 1.0 and self.branch_scale == 1.0:
            z = x + h  # one pass (the same numbers as a copy of x plus h)
        else:
            z = x * x.dtype.type(self.shortcut_scale) if self.shortcut_scale != 1.0 else x.copy()
            z += self._scaled(h, self.branch_scale)
        self.z = self.a = z
        return z

    def backward_pair(self, da: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._scaled(da, self.branch_scale), self._scaled(da, self.shortcut_scale)

    def drop_outputs(self):
        """The statistics are taken: the add's backward needs none of its arrays."""
        super().drop_outputs()
        self.x = self.branch = None

    def free(self):
        super().free()
        self.branch = self.grad_input = None


@dataclass
class _Sublayer:
    """branch layers (norm, f, sandwich norm), the add, and the norm after the add (post, deepnorm)."""

    key: str
    branch: list
    add: StreamAdd
    after: Layer | None


def _run(layer, x, hook):
    if hook is not None:
        hook.before_forward(layer, x)
    a = layer.forward(x)
    if hook is not None:
        hook.forward(layer)
    return a


def _back(layer, da, hook):
    dx = layer.backward(da)
    if hook is not None:
        hook.backward(layer, da, dx)
    return dx


class TransformerBlock:
    """Self-attention then an MLP, each with a residual add and the norm placement *norm* (see the
    module docstring for the formulas and the interface). Arguments:

    d, heads, head_dim (d / heads), causal, bias, qk_norm: of the `MultiHeadAttention`;
    mlp_mult (4), mlp_act ("gelu"; "swiglu", "geglu" gated), mlp_hidden: of the `MLP` (same bias);
    norm ("pre", "post", "deepnorm", "none"), sandwich (a norm on each branch's output, with "pre"),
    norm_type ("layernorm" or "rmsnorm") and eps (None: 1e-5 for LayerNorm, PyTorch's for RMSNorm);
    alpha: deepnorm's shortcut scale (required with it, see `deepnorm_constants`);
    keep_logits: of the attention (False: its softmax in place, no seq x seq logits kept);
    params: {"<short name>.<param>": array} (e.g. "attn.W_qkv", "ln1.gamma"), as each layer takes.
    """

    kind = "transformer_block"

    def __init__(
        self,
        name: str,
        d: int,
        heads: int,
        *,
        norm: str = "pre",
        sandwich: bool = False,
        norm_type: str = "layernorm",
        eps: float | None = None,
        alpha: float | None = None,
        causal: bool = True,
        bias: bool = True,
        qk_norm: bool = False,
        head_dim: int | None = None,
        mlp_mult: float = 4,
        mlp_act: str = "gelu",
        mlp_hidden: int | None = None,
        keep_logits: bool = True,
        params=None,
        dtype=np.float64,
    ):
        if norm not in NORM_PLACEMENTS:
            raise ValueError(f"{name}: norm must be one of {', '.join(NORM_PLACEMENTS)}, got {norm!r}")
        if norm_type not in NORM_TYPES:
            raise ValueError(f"{name}: norm_type must be layernorm or rmsnorm, got {norm_type!r}")
        if sandwich and norm != "pre":
            raise ValueError(f"{name}: sandwich norm goes with norm='pre', got {norm!r}")
        if (norm == "deepnorm") != (alpha is not None):
            raise ValueError(
                f"{name}: alpha (the shortcut's scale) is given with norm='deepnorm' and only then"
            )
        self.name, self.d, self.norm, self.sandwich, self.norm_type = name, d, norm, sandwich, norm_type
        self.alpha = alpha if alpha is not None else 1.0
        given = dict(params or {})

        def own(short):
            prefix = short + "."
            return {key[len(prefix) :]: given.pop(key) for key in list(given) if key.startswith(prefix)}

        def norm_layer(short):
            kwargs = {} if eps is None else {"eps": eps}
            return NORM_TYPES[norm_type](f"{name}.{short}", d, params=own(short), dtype=dtype, **kwargs)

        self.attn = MultiHeadAttention(
            f"{name}.attn", d, heads, head_dim=head_dim, causal=causal, bias=bias, qk_norm=qk_norm,
            keep_logits=keep_logits, params=own("attn"), dtype=dtype,
        )  # fmt: skip
        self.mlp = MLP(
            f"{name}.mlp", d, mlp_mult, mlp_act, hidden=mlp_hidden, bias=bias, params=own("mlp"), dtype=dtype
        )
        normed = norm != "none"
        self.ln1 = norm_layer("ln1") if normed else None
        self.ln2 = norm_layer("ln2") if normed else None
        self.ln1_out = norm_layer("ln1_out") if sandwich else None
        self.ln2_out = norm_layer("ln2_out") if sandwich else None
        self.attn_add = StreamAdd(f"{name}.attn_add", self.alpha)
        self.mlp_add = StreamAdd(f"{name}.mlp_add", self.alpha)
        if given:
            raise ValueError(f"{name}: unknown parameters {sorted(given)}")
        pre, after = norm == "pre", norm in ("post", "deepnorm")
        self.sublayers = tuple(
            _Sublayer(
                key,
                [x for x in (ln if pre else None, f, out_norm) if x is not None],
                add,
                ln if after else None,
            )
            for key, ln, f, out_norm, add in (
                ("attn", self.ln1, self.attn, self.ln1_out, self.attn_add),
                ("mlp", self.ln2, self.mlp, self.ln2_out, self.mlp_add),
            )
        )
        self.layers = {}
        for sub in self.sublayers:
            for layer in (*sub.branch, sub.add, sub.after):
                if layer is not None:
                    self.layers[layer.name[len(name) + 1 :]] = layer
        self.x = self.out = self.grad_input = None
        self.stream_after: dict[str, np.ndarray] = {}

    @property
    def rows(self) -> list:
        """The inner layers in forward order: one table row each."""
        return list(self.layers.values())

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {f"{short}.{k}": v for short, layer in self.layers.items() for k, v in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray | None]:
        return {f"{short}.{k}": v for short, layer in self.layers.items() for k, v in layer.grads.items()}

    @property
    def branch_outputs(self) -> dict[str, np.ndarray | None]:
        """Each branch's output before its add (after the sandwich norm, when on)."""
        return {sub.key: sub.add.branch for sub in self.sublayers}

    def forward(self, x: np.ndarray, hook=None) -> np.ndarray:
        self.x = x
        for sub in self.sublayers:
            h = x
            for layer in sub.branch:
                h = _run(layer, h, hook)
            x = sub.add.forward_pair(h, x)
            if hook is not None:
                hook.forward(sub.add)
            if sub.after is not None:
                x = _run(sub.after, x, hook)
            self.stream_after[sub.key] = x
        self.out = x
        return x

    def backward(self, da: np.ndarray, hook=None) -> np.ndarray:
        for sub in reversed(self.sublayers):
            if sub.after is not None:
                da = _back(sub.after, da, hook)
            dh, dx = sub.add.backward_pair(da)
            for layer in reversed(sub.branch):
                dh = _back(layer, dh, hook)
            dx = dx + dh
            sub.add.grad_input = dx
            if hook is not None:
                hook.backward(sub.add, da, dx)
            da = dx
        self.grad_input = da
        return da

    def free(self) -> None:
        for layer in self.rows:
            layer.free()
        self.x = self.out = self.grad_input = None
        self.stream_after = {}

    def __repr__(self) -> str:
        extra = ", sandwich" if self.sandwich else ""
        if self.norm == "deepnorm":
            extra += f", alpha={self.alpha:g}"
        parts = f"d={self.d}, norm={self.norm!r}{extra}, {self.attn!r}, {self.mlp!r}"
        return f"TransformerBlock({self.name!r}, {parts})"
