"""A resolved stack as the probe runs it: one `Row` per layer, in execution order, with the shape
of one sample going in and out, and the tree that residual blocks make of the rows.

Shapes are PyTorch's: a sample is ``(width,)`` or ``(channels, height, width)``. A residual block
contributes the rows of its branch, then one row of kind ``residual`` for the sum
``x + scale * branch(x)``; when the branch changes the shape, that row carries the shortcut's
projection (a dense map without bias, or a 1x1 convolution with the stride that matches).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

from ..errors import SpecLayerError

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

    @property
    def units(self) -> int:
        """Output units: features of a flat output, channels of an image-shaped one."""
        return self.out_shape[0]


class Block(NamedTuple):
    """A residual block in the tree: its branch (rows and nested blocks) and its sum row."""

    branch: tuple
    sum_row: int


class Graph(NamedTuple):
    rows: tuple[Row, ...]
    tree: tuple  # row indices and Blocks, in order


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

    def sequence(layers, shape, path, depth, scale) -> tuple[tuple, tuple[int, ...]]:
        tree = []
        for k, layer in enumerate(layers):
            where = (*path, k)
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
            row = _row(layer, shape, where, depth, scale, len(out))
            out.append(row)
            tree.append(row.index)
            shape = row.out_shape
        return tuple(tree), shape

    tree, _ = sequence(stack.layers, tuple(stack.input_shape), ("layers",), 0, 1.0)
    return Graph(tuple(out), tree)


def _row(layer, shape: tuple[int, ...], where: tuple, depth: int, scale: float, index: int) -> Row:
    kind, name = layer.kind, layer.name
    image = len(shape) == 3
    base = dict(index=index, name=name, kind=kind, layer=layer, path=where, depth=depth, in_shape=shape,
                branch_scale=scale)  # fmt: skip
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
