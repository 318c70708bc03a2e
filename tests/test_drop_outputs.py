"""What a layer keeps between the passes (`Layer.drop_outputs`): once a probe has taken a row's forward
statistics, the row lets go of what only they needed (an attention's seq x seq weights, an MLP's
hidden product, a stream add's branch), and its backward pass recomputes what it needs from what it
kept, to the same numbers, bit for bit. The attention's chunks (`SCORE_CHUNK`) change no number."""

from __future__ import annotations

import numpy as np
import pytest

import initdiag
from initdiag.core import attention
from initdiag.core.stats import distinct_columns
from initdiag.core.transformer import MultiHeadAttention, StreamAdd, TransformerBlock


class Dropping:
    """The probe's hook, as far as memory goes: each row drops its outputs after its forward call."""

    def before_forward(self, layer, x):
        pass

    def forward(self, layer):
        layer.drop_outputs()

    def backward(self, layer, da, dx):
        pass


def block(rng, dtype, **options):
    made = TransformerBlock("blk", 16, 4, dtype=dtype, **options)
    for key, array in made.params.items():
        scale = 0.3 if not key.endswith("gamma") else 0.0
        array[...] = (1.0 if key.endswith("gamma") else 0.0) + scale * rng.standard_normal(array.shape)
    return made


CASES = [
    {"norm": "pre"},
    {"norm": "pre", "sandwich": True, "mlp_act": "geglu"},
    {"norm": "post", "norm_type": "rmsnorm", "mlp_act": "swiglu", "qk_norm": True},
    {"norm": "deepnorm", "alpha": 1.5, "mlp_act": "relu", "causal": False},
    {"norm": "none", "mlp_act": "tanh", "bias": False},
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", CASES)
def test_backward_after_dropping_is_the_same_bit_for_bit(options, dtype):
    rng = np.random.default_rng(0)
    made = block(rng, dtype, **options)
    x = rng.standard_normal((3, 7, 16)).astype(dtype)
    G = rng.standard_normal((3, 7, 16)).astype(dtype)
    out = made.forward(x).copy()
    dx = made.backward(G).copy()
    grads = {key: value.copy() for key, value in made.grads.items()}
    assert made.attn.probs is not None and made.mlp.hidden is not None  # kept without a hook

    np.testing.assert_array_equal(made.forward(x, Dropping()), out)
    assert made.attn.probs is None and made.attn.logits is None  # the seq x seq arrays went
    assert made.mlp.hidden is None and made.mlp.z is None and made.attn.z is None
    assert all(add.branch is None and add.x is None for add in made.rows if isinstance(add, StreamAdd))
    if made.mlp.hidden_act.kind == "gelu":  # gelu's output is its input times the CDF it keeps
        assert made.mlp.hidden_post is None
    np.testing.assert_array_equal(made.backward(G, Dropping()), dx)
    for key, value in made.grads.items():
        np.testing.assert_array_equal(value, grads[key], err_msg=key)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("qk_norm", [True, False])
def test_attention_chunks_change_no_number(monkeypatch, two_threads, causal, qk_norm):
    rng = np.random.default_rng(1)
    layer = MultiHeadAttention("a", 24, 3, causal=causal, qk_norm=qk_norm, dtype=np.float32)
    for array in layer.params.values():
        array[...] = rng.standard_normal(array.shape)
    x = rng.standard_normal((5, 9, 24)).astype(np.float32)
    G = rng.standard_normal((5, 9, 24)).astype(np.float32)
    whole = [layer.forward(x).copy(), layer.logits.copy(), layer.probs.copy(), layer.backward(G).copy()]
    grads = {key: value.copy() for key, value in layer.grads.items()}
    monkeypatch.setattr(attention, "SCORE_CHUNK", 2 * 81)  # 2 of the 15 score matrices a chunk, on threads
    assert len(layer._parts(15, 9)) == 8
    chunked = [layer.forward(x), layer.logits, layer.probs]
    layer.drop_outputs()
    chunked.append(layer.backward(G))
    for got, want in zip(chunked, whole, strict=True):
        np.testing.assert_array_equal(got, want)
    for key, value in layer.grads.items():
        np.testing.assert_array_equal(value, grads[key], err_msg=key)


def test_softmax_hands_back_its_row_statistics():
    rng = np.random.default_rng(2)
    s = rng.standard_normal((4, 6)).astype(np.float32)
    s[1, 3:] = -np.inf
    row_max, row_sum = np.empty((4, 1), np.float32), np.empty((4, 1), np.float32)
    p = attention.softmax(s, row_max=row_max, row_sum=row_sum)
    np.testing.assert_array_equal(row_max[:, 0], s.max(axis=1))
    np.testing.assert_array_equal(np.exp(s - row_max) / row_sum, p)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("rows", [10, 200])
def test_distinct_columns_with_an_offset_is_that_of_the_difference(rows):
    rng = np.random.default_rng(3)
    z = rng.integers(-1000, 1000, (rows, 6)).astype(np.float32)  # integers: every difference exact
    offset = rng.integers(-1000, 1000, 6).astype(np.float32)
    z[:, 4] = z[:, 1] - offset[1] + offset[4]  # equal to unit 1 once each loses its offset
    assert distinct_columns(z, offset) == distinct_columns(z - offset) == 5
    assert distinct_columns(z) == 6


def test_a_probe_keeps_no_score_matrix_between_the_passes(monkeypatch):
    """Between the forward and the backward pass of a probe, no attention holds its weights."""
    from initdiag.core import layers

    seen = []
    run_backward = layers.run_backward

    def spy(nodes, da, hook=None):
        seen.extend(
            (layer.probs, layer.logits) for node in nodes for layer in getattr(node, "rows", [node])
            if isinstance(layer, MultiHeadAttention)
        )  # fmt: skip
        return run_backward(nodes, da, hook)

    monkeypatch.setattr("initdiag.analysis.probe.run_backward", spy)
    result = initdiag.probe("transformer:d=32,heads=4,blocks=2,seq=16,vocab=50", batch=4)
    assert len(seen) == 2 and all(p is None and s is None for p, s in seen)
    shares = [row.attn_entropy for row in result.layers if row.attn_entropy is not None]
    assert len(shares) == 2 and all(0.5 < share <= 1.0 for share in shares)  # taken before the drop


def test_layer_norm_parts_change_no_number(monkeypatch, two_threads):
    """A token-wise LayerNorm runs in parts of tokens: the same outputs and input gradient bit for bit
    (each token is its own), the parameter gradients up to the order of a float64 sum."""
    from initdiag.core import token_layers
    from initdiag.core.transformer import TokenLayerNorm

    rng = np.random.default_rng(4)
    layer = TokenLayerNorm("ln", 12, dtype=np.float32)
    layer.gamma[...] = 1 + 0.3 * rng.standard_normal(12)
    layer.beta[...] = 0.3 * rng.standard_normal(12)
    x = (3 + 2 * rng.standard_normal((4, 9, 12))).astype(np.float32)
    G = rng.standard_normal((4, 9, 12)).astype(np.float32)
    whole = [layer.forward(x).copy(), layer.backward(G).copy(), layer.dgamma.copy(), layer.dbeta.copy()]
    monkeypatch.setattr(token_layers, "TOKEN_PART", 5 * 12)  # 5 tokens a part: 8 parts of 36 tokens
    assert len(token_layers.token_parts(x.reshape(-1, 12))) == 8
    parted = [layer.forward(x), layer.backward(G), layer.dgamma, layer.dbeta]
    np.testing.assert_array_equal(parted[0], whole[0])
    np.testing.assert_array_equal(parted[1], whole[1])
    np.testing.assert_allclose(parted[2], whole[2], rtol=2**-23)
    np.testing.assert_allclose(parted[3], whole[3], rtol=2**-23)


def test_the_separately_drawn_projections_go_once_fused(monkeypatch):
    """An attention's W_q, W_k, W_v are drawn each from its own stream and concatenated into W_qkv;
    the drawn arrays must not outlive the build (a recursive closure's reference cycle kept them
    until a garbage collection: a quarter of a transformer's weights twice)."""
    import weakref

    from initdiag.analysis import probe as module
    from initdiag.analysis import token_build

    drawn, alive = [], []
    sample = token_build.sample

    def spy_sample(*args):
        arrays = sample(*args)
        drawn.extend(weakref.ref(arrays[key]) for key in ("W_q", "W_k", "W_v") if key in arrays)
        return arrays

    run_forward = module.run_forward

    def spy_forward(*args):
        alive.append(sum(ref() is not None for ref in drawn))
        return run_forward(*args)

    monkeypatch.setattr(token_build, "sample", spy_sample)
    monkeypatch.setattr(module, "run_forward", spy_forward)
    initdiag.probe("transformer:d=32,heads=4,blocks=2,seq=8,vocab=50", batch=2)
    assert len(drawn) == 6 and alive == [0]
