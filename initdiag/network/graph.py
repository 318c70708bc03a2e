"""A resolved stack as the probe runs it: one `Row` per layer, in execution order, with the shape
of one sample going in and out, and the tree that residual blocks make of the rows.

Shapes are PyTorch's: a sample is ``(width,)``, ``(channels, height, width)``, or a token stream
``(seq, d)`` (token ids are ``(seq,)`` going into an embedding). A residual block contributes the
rows of its branch, then one row of kind ``residual`` for the sum ``x + scale * branch(x)``; when
the branch changes the shape, that row carries the shortcut's projection (a dense map without bias,
or a 1x1 convolution with the stride that matches).

Transformers (`transformer_rows`): an ``embedding`` entry is its table's row and, unless
``positions = "none"``, a ``<name>.pos`` row; a ``transformer`` entry of N blocks is, per block, the
rows of `core.transformer.TransformerBlock.layers` in its order (``<block>.ln1``, ``.attn``,
``.attn_add``, ...), each add of the stream a `Block` of the tree whose branch is the norm(s) and the
sublayer (indented as a residual branch is), a post-norm a row after it. Rows with several weights
(attention, MLP, embedding, unembedding) list them in ``params``, each with its role for the inits.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

from ..errors import InitdiagError, SpecLayerError

if TYPE_CHECKING:  # for annotations only: the stack resolves through `rows`
    from .stack import StackSpec


class Row(NamedTuple):
    index: int  # execution order; also the key of the row's random stream
    name: str
    kind: str
    layer: object  # its LayerSpec (for a residual row, the block)
    path: tuple  # where the layer is in a spec file: ("layers", 3, "layers", 0)
    depth: int  # 0 at the top level, 1 inside a residual branch, ...
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight_shape: tuple[int, ...] | None  # dense (fan_in, units), conv (O, C, kh, kw), projection
    stride: int = 1
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    branch_scale: float = 1.0  # product of the scales of the residual blocks around the row
    params: tuple = ()  # `Param`s: the weights of a row of several (attention, MLP, embedding, ...)
    block: str | None = None  # the transformer block the row is part of
    tied_to: str | None = None  # an unembedding tied to this embedding row's table

    @property
    def units(self) -> int:
        """Output units: features of a flat output or of a token stream's (seq, d), channels of an
        image-shaped one."""
        return self.out_shape[-1] if len(self.out_shape) == 2 else self.out_shape[0]

    @property
    def positions(self) -> int:
        """Values each unit has per sample: an image's pixels, a sequence's tokens, 1 for a flat output."""
        return math.prod(self.out_shape) // max(self.units, 1)


class Param(NamedTuple):
    """One sampled weight of a row: the layer's parameter name (``W_q``), its role (`core.role_inits`:
    q, k, v, out_proj, mlp_in, mlp_gate, mlp_out, embedding, positions, unembedding), its shape in
    initdiag's ``x @ W`` layout (an embedding table (rows, d)), its fans, and its bias's parameter
    name (None: no bias)."""

    key: str
    role: str
    shape: tuple[int, ...]
    fans: tuple[int, int]
    bias: str | None = None


class Block(NamedTuple):
    """A residual block in the tree: its branch (rows and nested blocks) and its sum row."""

    branch: tuple
    sum_row: int


class Graph(NamedTuple):
    rows: tuple[Row, ...]
    tree: tuple  # row indices and Blocks, in order
    n_blocks: int = 0  # transformer blocks in the stack (L of gpt2's 1/sqrt(2L), N of DeepNet's alpha)
    causal: bool = False  # some attention is causal (a decoder: T-Fixup's constants)


def conv_geometry(size: int, kernel: int, stride: int, padding: str | int) -> tuple[int, int, int]:
    """(output size, padding before, padding after) along one axis.

    ``same``: output ceil(size / stride), the padding split as evenly as it goes, the odd cell
    after (TensorFlow/Keras; PyTorch's ``padding="same"`` for stride 1). ``valid``: no padding.
    An integer pads both sides (PyTorch's ``padding=p``). Output: (size + pads - kernel) // stride + 1.
    """
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2, total - total // 2
    pad = 0 if padding == "valid" else int(padding)
    return (size + 2 * pad - kernel) // stride + 1, pad, pad


def _show(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def rows(stack: StackSpec) -> Graph:
    """The rows of a resolved stack; raises `SpecLayerError` (naming the layer) where shapes do
    not fit: a dense layer on an image, a convolution on a flat input, a kernel or pooling window
    larger than its input, a residual branch no projection can match."""
    out: list[Row] = []
    n_blocks, causal = stack_counts(stack)
    ids = stack.vocab is not None  # the input is token ids, for an embedding to take

    def sequence(layers, shape, path, depth, scale) -> tuple[tuple, tuple[int, ...]]:
        nonlocal ids
        tree = []
        for k, layer in enumerate(layers):
            where = (*path, k)
            if ids != (layer.kind == "embedding"):
                _ids_error(layer, ids, stack, where)
            if layer.kind == "embedding":
                ids = False
                made = embedding_rows(layer, shape, stack.vocab, where, depth, scale, len(out))
                out.extend(made)
                tree.extend(row.index for row in made)
                shape = made[-1].out_shape
                continue
            if layer.kind == "transformer":
                shape = transformer_rows(layer, shape, where, depth, scale, out, tree, n_blocks)
                continue
            if layer.kind in ("attention", "mlp"):
                row = attention_like(layer, layer.kind, shape, where, depth, scale, len(out))
            elif layer.kind == "unembedding":
                row = unembedding_row(layer, shape, where, depth, scale, len(out), stack.vocab, out)
            elif layer.kind == "residual":
                row = None
            else:
                row = _row(layer, shape, where, depth, scale, len(out))
            if row is not None:
                out.append(row)
                tree.append(row.index)
                shape = row.out_shape
                continue
            if layer.kind == "residual":
                branch, branch_shape = sequence(
                    layer.layers, shape, (*where, "layers"), depth + 1, scale * layer.get("scale")
                )
                projection, stride = _projection(layer, shape, branch_shape, where)
                out.append(Row(len(out), layer.name, "residual", layer, where, depth, shape, branch_shape,
                               projection, stride, branch_scale=scale))  # fmt: skip
                tree.append(Block(branch, len(out) - 1))
                shape = branch_shape
                continue
        return tuple(tree), shape

    tree, _ = sequence(stack.layers, tuple(stack.input_shape), ("layers",), 0, 1.0)
    names = [row.name for row in out]
    if len(set(names)) < len(names):
        seen: set[str] = set()
        repeated = sorted({n for n in names if n in seen or seen.add(n)})
        raise InitdiagError(f"layer names must be unique; repeated: {', '.join(repeated)}")
    return Graph(tuple(out), tree, n_blocks, causal)


def _ids_error(layer, ids: bool, stack, where: tuple) -> None:
    """Token ids go into an embedding, and only they do."""
    if ids:
        raise SpecLayerError(
            f"layer {layer.name}: the input is token ids ({stack.input_text}), which go into an embedding "
            f"layer first; a {layer.kind} layer takes numbers",
            where,
        )
    raise SpecLayerError(
        f"layer {layer.name}: an embedding takes token ids: give input_shape as seq=S,vocab=V and make the "
        "embedding the first layer",
        where,
    )


def _row(layer, shape: tuple[int, ...], where: tuple, depth: int, scale: float, index: int) -> Row:
    kind, name = layer.kind, layer.name
    image = len(shape) == 3
    base = dict(index=index, name=name, kind=kind, layer=layer, path=where, depth=depth, in_shape=shape,
                branch_scale=scale)  # fmt: skip
    if len(shape) == 2 and kind in ("flatten", "batchnorm"):
        raise SpecLayerError(
            f"layer {name}: a {kind} layer on a token stream {_show(shape)} is not supported; per token, use "
            "layernorm or rmsnorm (normalization) or dense (a map)",
            where,
        )
    if kind == "rmsnorm" and image:
        raise SpecLayerError(
            f"layer {name}: rmsnorm normalizes a flat input or each token, not an image", where
        )
    if kind == "dense" and len(shape) == 2:  # per token, as nn.Linear on (batch, seq, d)
        return Row(**base, out_shape=(shape[0], layer.units), weight_shape=(shape[1], layer.units))
    if kind == "dense":
        if image:
            raise SpecLayerError(
                f"layer {name}: a dense layer needs a flat input but gets {_show(shape)}; "
                "put a flatten or global_avgpool layer before it",
                where,
            )
        return Row(**base, out_shape=(layer.units,), weight_shape=(shape[0], layer.units))
    if kind in ("conv2d", "maxpool2d", "global_avgpool") and not image:
        raise SpecLayerError(
            f"layer {name}: a {kind} layer needs a (channels, height, width) input but gets {_show(shape)}",
            where,
        )
    if kind == "conv2d":
        kernel = layer.get("kernel")
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        stride, padding = layer.get("stride"), layer.get("padding")
        c, h, w = shape
        (ho, top, bottom), (wo, left, right) = (
            conv_geometry(h, kh, stride, padding),
            conv_geometry(w, kw, stride, padding),
        )
        if ho < 1 or wo < 1:
            raise SpecLayerError(
                f"layer {name}: kernel {kh}x{kw} is larger than its {h}x{w} input "
                f"(padding {padding}); use a smaller kernel or padding same",
                where,
            )
        return Row(**base, out_shape=(layer.channels, ho, wo), weight_shape=(layer.channels, c, kh, kw),
                   stride=stride, pads=(top, bottom, left, right))  # fmt: skip
    if kind == "maxpool2d":
        size = layer.get("size")
        c, h, w = shape
        if size > h or size > w:
            message = f"layer {name}: pooling window {size}x{size} is larger than its {h}x{w} input"
            raise SpecLayerError(message, where)
        return Row(**base, out_shape=(c, h // size, w // size), weight_shape=None)
    if kind == "global_avgpool":
        return Row(**base, out_shape=(shape[0],), weight_shape=None)
    if kind == "flatten":
        return Row(**base, out_shape=(math.prod(shape),), weight_shape=None)
    # batchnorm, layernorm, dropout, activation keep the shape
    return Row(**base, out_shape=shape, weight_shape=None)


def _projection(layer, shape, branch_shape, where) -> tuple[tuple[int, ...] | None, int]:
    """The shortcut's weight shape (None for the identity) and stride."""
    if branch_shape == shape:
        return None, 1
    if len(shape) == 1 and len(branch_shape) == 1:
        return (shape[0], branch_shape[0]), 1
    if len(shape) == 3 and len(branch_shape) == 3:
        (c, h, w), (o, ho, wo) = shape, branch_shape
        stride = max(1, round(h / ho))
        if (h - 1) // stride + 1 == ho and (w - 1) // stride + 1 == wo:
            return (o, c, 1, 1), stride
    raise SpecLayerError(
        f"residual block {layer.name}: its branch maps {_show(shape)} to {_show(branch_shape)}, and no "
        "shortcut projection (dense, or 1x1 convolution with a whole stride) matches that",
        where,
    )


# --- transformers -------------------------------------------------------------------------------


def stack_counts(stack) -> tuple[int, bool]:
    """(transformer blocks in the stack, whether any attention is causal)."""
    blocks, causal = 0, False
    for layer in stack.walk():
        if layer.kind == "transformer":
            blocks += layer.blocks or 1
        if layer.kind in ("transformer", "attention") and layer.get("causal"):
            causal = True
    return blocks, causal


def deepnorm_alpha(n_blocks: int) -> float:
    """DeepNet's shortcut scale for a stack of N blocks (Wang et al. 2022, Table 1): (2N)^(1/4)."""
    return (2.0 * max(n_blocks, 1)) ** 0.25


def block_layout(norm: str, sandwich: bool) -> list[tuple[str, str, bool]]:
    """(short name, kind, in the branch) of a block's rows in forward order, kind ``norm`` standing
    for its norm type: the order of `core.transformer.TransformerBlock.layers`."""
    out = []
    for sub, kind in (("attn", "attention"), ("mlp", "mlp")):
        n = "ln1" if sub == "attn" else "ln2"
        if norm == "pre":
            out.append((n, "norm", True))
        out.append((sub, kind, True))
        if sandwich:
            out.append((f"{n}_out", "norm", True))
        out.append((f"{sub}_add", "stream_add", False))
        if norm in ("post", "deepnorm"):
            out.append((n, "norm", False))
    return out


def _stream(layer, shape: tuple, where: tuple, what: str) -> int:
    """The width d of a token stream (seq, d), or one error naming what needs one."""
    if len(shape) != 2:
        raise SpecLayerError(
            f"layer {layer.name}: {what} takes a token stream (seq, d), but gets {_show(shape)}; start the "
            "stack with an embedding (input_shape seq=S,vocab=V) or give input_shape as [seq, d]",
            where,
        )
    return shape[1]


def embedding_rows(layer, shape, vocab, where, depth, scale, index) -> list[Row]:
    """The table's row, (seq,) ids -> (seq, d), and the positions' row (none with positions none)."""
    seq, d = shape[0], layer.d
    if layer.vocab is not None and layer.vocab != vocab:
        raise SpecLayerError(
            f"layer {layer.name}: vocab {layer.vocab} differs from the input's vocab {vocab} (input_shape "
            f"seq={seq},vocab={vocab}); give one",
            where,
        )
    base = dict(layer=layer, path=where, depth=depth, branch_scale=scale)
    table = Param("W", "embedding", (vocab, d), (d, vocab))
    out = [Row(index, layer.name, "embedding", in_shape=shape, out_shape=(seq, d), weight_shape=(vocab, d),
               params=(table,), **base)]  # fmt: skip
    positions = layer.get("positions")
    if positions == "none":
        return out
    max_seq = layer.max_seq or seq
    if seq > max_seq:
        raise SpecLayerError(
            f"layer {layer.name}: the input's seq={seq} is longer than its position table "
            f"(max_seq={max_seq}); give max_seq >= {seq}, or a shorter seq",
            where,
        )
    name = f"{layer.name}.pos"
    if positions == "learned":
        kind, weight, params = (
            "position_embedding",
            (max_seq, d),
            (Param("P", "positions", (max_seq, d), (d, max_seq)),),
        )
    else:
        kind, weight, params = "sinusoidal_positions", None, ()
    out.append(Row(index + 1, name, kind, in_shape=(seq, d), out_shape=(seq, d), weight_shape=weight,
                   params=params, **base))  # fmt: skip
    return out


def _attention_params(layer, d: int, where) -> tuple[tuple[Param, ...], int]:
    heads, head_dim = layer.heads, layer.head_dim
    if head_dim is None:
        if d % heads:
            raise SpecLayerError(
                f"layer {layer.name}: heads = {heads} does not divide d = {d}; give a heads that divides it, "
                "or head_dim",
                where,
            )
        head_dim = d // heads
    inner = heads * head_dim
    bias = layer.get("bias")
    params = tuple(Param(f"W_{w}", w, (d, inner), (d, inner), f"b_{w}" if bias else None) for w in "qkv")
    params += (Param("W_o", "out_proj", (inner, d), (inner, d), "b_o" if bias else None),)
    return params, inner


def _mlp_params(layer, d: int, where) -> tuple[Param, ...]:
    hidden = layer.hidden if layer.hidden is not None else round(layer.get("mult") * d)
    if hidden < 1:
        raise SpecLayerError(
            f"layer {layer.name}: the MLP's hidden width mult * d is {hidden}; make it >= 1", where
        )
    bias = layer.get("bias")
    gated = type(layer.act).__name__ == "Gated" or str(layer.act) in ("swiglu", "geglu")
    params = (Param("W_in", "mlp_in", (d, hidden), (d, hidden), "b_in" if bias else None),)
    if gated:
        params += (Param("W_linear", "mlp_gate", (d, hidden), (d, hidden), "b_linear" if bias else None),)
    return (*params, Param("W_out", "mlp_out", (hidden, d), (hidden, d), "b_out" if bias else None))


def attention_like(layer, kind: str, shape, where, depth, scale, index, name=None, block=None) -> Row:
    """An attention or MLP row (*kind*), standalone or inside a block (*name* and *block* given). Its
    reported weight is the fused W_qkv (d, 3 * heads * head_dim) of attention, W_in of an MLP."""
    d = _stream(layer, shape, where, "attention" if kind == "attention" else "an MLP")
    if kind == "attention":
        params, inner = _attention_params(layer, d, where)
        weight = (d, 3 * inner)
    else:
        params = _mlp_params(layer, d, where)
        weight = params[0].shape
    return Row(index, name or layer.name, kind, layer, where, depth, shape, shape, weight, branch_scale=scale,
               params=params, block=block)  # fmt: skip


def transformer_rows(layer, shape, where, depth, scale, out: list, tree: list, n_blocks: int) -> tuple:
    """Append the rows of a transformer entry's blocks to *out* and their items to *tree*."""
    d = _stream(layer, shape, where, "a transformer block")
    norm, sandwich = layer.get("norm"), layer.get("sandwich")
    if sandwich and norm != "pre":
        raise SpecLayerError(
            f'layer {layer.name}: sandwich norms go with norm = "pre", got norm = "{norm}"', where
        )
    if layer.alpha is not None and norm != "deepnorm":
        message = f'layer {layer.name}: alpha is deepnorm\'s shortcut scale; give it with norm = "deepnorm"'
        raise SpecLayerError(message, where)
    _attention_params(layer, d, where)  # heads must divide d
    norm_kind = layer.get("norm_type")
    for block in layer.block_names or (layer.name,):
        branch: list[int] = []
        for short, kind, in_branch in block_layout(norm, sandwich):
            name = f"{block}.{short}"
            at_depth = depth + 1 if in_branch else depth
            if kind in ("attention", "mlp"):
                row = attention_like(layer, kind, shape, where, at_depth, scale, len(out), name, block)
            else:
                kind = norm_kind if kind == "norm" else kind
                row = Row(len(out), name, kind, layer, where, at_depth, shape, shape, None,
                          branch_scale=scale, block=block)  # fmt: skip
            out.append(row)
            if in_branch:
                branch.append(row.index)
            elif kind == "stream_add":
                tree.append(Block(tuple(branch), row.index))
                branch = []
            else:
                tree.append(row.index)
    return shape


def unembedding_row(layer, shape, where, depth, scale, index, vocab, out: list) -> Row:
    """(seq, d) -> (seq, vocab) logits: its own weight (d, vocab), or tied to the embedding's table."""
    d = _stream(layer, shape, where, "an unembedding")
    vocab = layer.vocab or vocab
    if vocab is None:
        raise SpecLayerError(
            f"layer {layer.name}: give vocab (the input is not token ids, so it has none)", where
        )
    base = dict(
        layer=layer, path=where, depth=depth, in_shape=shape, out_shape=(shape[0], vocab), branch_scale=scale
    )
    if not layer.get("tied"):
        bias = "b" if layer.get("bias") else None
        params = (Param("W", "unembedding", (d, vocab), (d, vocab), bias),)
        return Row(index, layer.name, "unembedding", weight_shape=(d, vocab), params=params, **base)
    table = next((row for row in out if row.kind == "embedding"), None)
    if table is None or table.weight_shape != (vocab, d):
        found = "no embedding" if table is None else f"an embedding table of {_show(table.weight_shape)}"
        raise SpecLayerError(
            f"layer {layer.name}: tied = true needs an embedding table of (vocab, d) = {_show((vocab, d))}; "
            f"the stack has {found}",
            where,
        )
    if layer.get("bias"):
        raise SpecLayerError(
            f"layer {layer.name}: a tied unembedding has no bias here; give bias = false", where
        )
    return Row(index, layer.name, "unembedding", weight_shape=None, tied_to=table.name, **base)
