"""The transformer layers (initdiag.core.transformer) against central differences, in float64.

Loss L = sum(out * G) with a fixed random G, so dL/dout = G; every entry of every parameter and of
the input is checked (the shapes are small), for each layer and each block configuration. The stored
PyTorch fixture is checked in test_torch_transformer_reference.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from finite_differences import central_differences
from hypothesis import given, settings
from hypothesis import strategies as st

from initdiag.core.transformer import (
    MLP,
    Embedding,
    MultiHeadAttention,
    PositionEmbedding,
    RMSNorm,
    SinusoidalPositions,
    StreamAdd,
    TokenDense,
    TokenLayerNorm,
    TransformerBlock,
    deepnorm_constants,
    sinusoidal_table,
    softmax,
)

# Central differences at h = 1e-6 lose about eps * |L| / h to rounding (~1e-9 for |L| ~ 5) and
# h^2 f''' / 6 to truncation (~1e-12 here); the analytic gradients agree with them to ~1e-9 at most.
RTOL = 1e-6


def fill(layer, rng, std=0.5):
    """Random parameters of a layer or a block, in place: gammas around 1, the rest N(0, std^2)."""
    for key, array in layer.params.items():
        if key.endswith("gamma"):
            array[...] = 1.0 + 0.3 * rng.standard_normal(array.shape)
        else:
            array[...] = std * rng.standard_normal(array.shape)
    return layer


def check_gradients(layer, x, rng, check_input=True):
    """dL/dx and every dL/dparam of *layer* (a Layer or a TransformerBlock) against central
    differences; returns the largest absolute error."""
    out = layer.forward(x)
    G = rng.standard_normal(out.shape)
    dx = layer.backward(G)
    grads = {key: None if g is None else g.copy() for key, g in layer.grads.items()}
    assert set(grads) == set(layer.params)

    def loss():
        return float(np.sum(layer.forward(x) * G))

    scale = max([1.0] + [np.abs(g).max() for g in grads.values() if g is not None and g.size])
    atol = 1e-8 * scale + 2e-9 * max(1.0, abs(loss()))
    worst = 0.0
    targets = [("x", x, dx)] if check_input else []
    targets += [(key, layer.params[key], grads[key]) for key in grads]
    for key, array, analytic in targets:
        assert analytic is not None, f"{key}: no gradient"
        assert analytic.shape == array.shape, key
        numeric = central_differences(loss, array)
        np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=atol, err_msg=key)
        if numeric.size:
            worst = max(worst, float(np.abs(analytic - numeric).max()))
    return worst


def tokens(rng, batch=2, seq=3, d=4):
    return rng.standard_normal((batch, seq, d))


# --- token-wise layers --------------------------------------------------------------------------


def test_token_layernorm_gradients():
    rng = np.random.default_rng(1)
    layer = fill(TokenLayerNorm("ln", 5), rng)
    check_gradients(layer, 2.0 + 3.0 * tokens(rng, d=5), rng)


@pytest.mark.parametrize("eps", [None, 1e-6, 0.3])
def test_rmsnorm_gradients(eps):
    rng = np.random.default_rng(2)
    layer = fill(RMSNorm("rms", 5, eps=eps), rng)
    check_gradients(layer, tokens(rng, d=5), rng)


def test_rmsnorm_is_its_formula():
    rng = np.random.default_rng(3)
    layer = fill(RMSNorm("rms", 6, eps=1e-3), rng)
    x = tokens(rng, d=6)
    expected = x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + 1e-3) * layer.gamma
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-14)
    # eps None is PyTorch's: the dtype's machine epsilon
    layer = RMSNorm("rms", 6)
    x32 = x.astype(np.float32)
    expected = x32 / np.sqrt(np.mean(x32.astype(np.float64) ** 2, axis=-1, keepdims=True) + 2.0**-23)
    np.testing.assert_allclose(layer.forward(x32), expected, rtol=1e-6)


def test_layer_norms_normalize_each_token():
    rng = np.random.default_rng(4)
    x = 5.0 + 2.0 * tokens(rng, seq=4, d=8)
    z = TokenLayerNorm("ln", 8).forward(x)
    np.testing.assert_allclose(z.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(z.var(axis=-1), 1 / (1 + 1e-5 / x.var(axis=-1)), rtol=1e-12)
    z = RMSNorm("rms", 8).forward(x)
    np.testing.assert_allclose(np.mean(z**2, axis=-1), 1, rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_token_dense_gradients(bias):
    rng = np.random.default_rng(5)
    layer = fill(TokenDense("head", 4, 3, bias=bias, act="tanh"), rng)
    check_gradients(layer, tokens(rng), rng)


@pytest.mark.parametrize("act", ["gelu", "tanh", "silu", "swiglu", "geglu"])
@pytest.mark.parametrize("bias", [True, False])
def test_mlp_gradients(act, bias):
    rng = np.random.default_rng(6)
    layer = fill(MLP("mlp", 4, 2, act, bias=bias), rng)
    assert layer.gated == (act in ("swiglu", "geglu"))
    assert ("W_linear" in layer.params) == layer.gated and ("b_in" in layer.params) == bias
    check_gradients(layer, tokens(rng), rng)
    assert layer.hidden_dact.shape == layer.hidden_pre.shape == (2, 3, 8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["gelu", "geglu", "tanh", "swiglu"])
def test_mlp_hidden_activation_is_the_activations_own(act, dtype):
    """gelu's normal CDF is kept from forward to backward: the same bits as `activations`."""
    rng = np.random.default_rng(19)
    layer = fill(MLP("mlp", 4, 3, act), rng, std=2.0)
    x = tokens(rng, seq=8).astype(dtype)
    layer.backward(np.ones_like(layer.forward(x)))
    phi = layer.hidden_act
    assert layer.hidden_pre.dtype == dtype
    np.testing.assert_array_equal(layer.hidden_post, phi(layer.hidden_pre))
    np.testing.assert_array_equal(layer.hidden_dact, phi.derivative(layer.hidden_pre, layer.hidden_post))


def test_gated_mlp_is_shazeer_formula():
    rng = np.random.default_rng(7)
    layer = fill(MLP("mlp", 4, act="swiglu", hidden=6, bias=False), rng)
    x = tokens(rng)
    pre = x @ layer.W_in
    silu = pre / (1 + np.exp(-pre))
    expected = (silu * (x @ layer.W_linear)) @ layer.W_out
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-13)
    np.testing.assert_allclose(layer.hidden, silu * (x @ layer.W_linear), rtol=1e-13)


def test_embedding_gradient_is_a_scatter_add():
    rng = np.random.default_rng(8)
    layer = fill(Embedding("wte", 7, 4, scale=1.5), rng)
    ids = np.array([[0, 3, 3, 6], [3, 0, 5, 5]])
    z = layer.forward(ids)
    np.testing.assert_array_equal(z, 1.5 * layer.W[ids])
    G = rng.standard_normal(z.shape)
    assert layer.backward(G) is None  # token ids have no gradient
    expected = np.zeros_like(layer.W)
    np.add.at(expected, ids.ravel(), 1.5 * G.reshape(-1, 4))
    np.testing.assert_allclose(layer.dW, expected, rtol=1e-15, atol=1e-15)
    assert not layer.dW[[1, 2, 4]].any()  # tokens that do not occur

    def loss():
        return float(np.sum(layer.forward(ids) * G))

    np.testing.assert_allclose(layer.dW, central_differences(loss, layer.W), rtol=RTOL, atol=1e-8)


def test_embedding_refuses_bad_ids():
    layer = Embedding("wte", 5, 3)
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        layer.forward(np.array([[0, 5]]))
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        layer.forward(np.array([[-1, 2]]))
    with pytest.raises(ValueError, match="integers"):
        layer.forward(np.array([[0.0, 1.0]]))


def test_positions_gradients():
    rng = np.random.default_rng(9)
    layer = fill(PositionEmbedding("wpe", 5, 4), rng)
    x = tokens(rng)
    np.testing.assert_array_equal(layer.forward(x), x + layer.P[:3])
    check_gradients(layer, x, rng)
    assert not layer.dP[3:].any()  # positions beyond the sequence
    with pytest.raises(ValueError, match="max_seq 5"):
        layer.forward(tokens(rng, seq=6))
    fixed = SinusoidalPositions("pe", 4)
    assert fixed.params == {} and fixed.weight is None
    check_gradients(fixed, x, rng)


@pytest.mark.parametrize("d", [6, 7])
def test_sinusoidal_positions_follow_vaswani(d):
    table = sinusoidal_table(50, d)
    for p in (0, 1, 17, 49):
        for i in range((d + 1) // 2):
            angle = p / 10000 ** (2 * i / d)
            assert table[p, 2 * i] == pytest.approx(np.sin(angle), abs=1e-15)
            if 2 * i + 1 < d:
                assert table[p, 2 * i + 1] == pytest.approx(np.cos(angle), abs=1e-15)
    layer = SinusoidalPositions("pe", d)
    x = np.zeros((1, 9, d), dtype=np.float32)
    z = layer.forward(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[0], table[:9], atol=1e-7)


# --- attention ----------------------------------------------------------------------------------


def test_softmax_is_stable_and_masks():
    logits = np.array([[1000.0, 1001.0, -np.inf], [-1e4, 0.0, 1e4]])
    p = softmax(logits)
    np.testing.assert_allclose(p[0], [1 / (1 + np.e), np.e / (1 + np.e), 0.0], rtol=1e-15)
    np.testing.assert_array_equal(p[1], [0.0, 0.0, 1.0])


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("qk_norm", [False, True])
def test_attention_gradients(causal, bias, qk_norm):
    rng = np.random.default_rng(10 + 4 * causal + 2 * bias + qk_norm)
    layer = fill(MultiHeadAttention("attn", 4, 2, causal=causal, bias=bias, qk_norm=qk_norm), rng)
    check_gradients(layer, tokens(rng, seq=4), rng)


@settings(max_examples=20, deadline=None)
@given(
    batch=st.integers(1, 2),
    seq=st.integers(1, 4),
    d=st.integers(1, 5),
    heads=st.integers(1, 3),
    head_dim=st.integers(1, 3),
    causal=st.booleans(),
    bias=st.booleans(),
    qk_norm=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_attention_gradients_over_shapes(batch, seq, d, heads, head_dim, causal, bias, qk_norm, seed):
    rng = np.random.default_rng(seed)
    layer = MultiHeadAttention("attn", d, heads, head_dim=head_dim, causal=causal, bias=bias, qk_norm=qk_norm)
    check_gradients(fill(layer, rng), tokens(rng, batch, seq, d), rng)
    assert layer.probs.shape == layer.logits.shape == (batch, heads, seq, seq)


def test_attention_is_its_formula_and_exposes_logits_and_probs():
    rng = np.random.default_rng(11)
    layer = fill(MultiHeadAttention("attn", 6, 2, causal=True), rng)
    x = tokens(rng, batch=2, seq=5, d=6)
    out = layer.forward(x)
    mask = np.triu(np.full((5, 5), -np.inf), 1)
    expected = np.zeros((2, 5, 6))
    for h in range(2):
        cols = slice(3 * h, 3 * h + 3)
        q = x @ layer.W_q[:, cols] + layer.b_qkv[0:6][cols]
        k = x @ layer.W_k[:, cols] + layer.b_qkv[6:12][cols]
        v = x @ layer.W_v[:, cols] + layer.b_qkv[12:18][cols]
        s = q @ k.transpose(0, 2, 1) / np.sqrt(3) + mask
        np.testing.assert_allclose(layer.logits[:, h], s, rtol=1e-13)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        np.testing.assert_allclose(layer.probs[:, h], p, rtol=1e-13, atol=1e-16)
        expected += (p @ v) @ layer.W_o[cols]
    np.testing.assert_allclose(out, expected + layer.b_o, rtol=1e-12)
    np.testing.assert_array_equal(layer.allowed, np.tril(np.ones((5, 5), bool)))
    np.testing.assert_array_equal(layer.probs[..., ~layer.allowed], 0.0)
    # the same without keeping the logits (the softmax in place)
    lean = MultiHeadAttention("attn", 6, 2, causal=True, keep_logits=False, params=layer.params)
    np.testing.assert_array_equal(lean.forward(x), out)
    assert lean.logits is None


def test_attention_takes_separate_projections_and_shows_views():
    rng = np.random.default_rng(12)
    Wq, Wk, Wv = (rng.standard_normal((4, 4)) for _ in range(3))
    bq, bk, bv = (rng.standard_normal(4) for _ in range(3))
    params = {"W_q": Wq, "W_k": Wk, "W_v": Wv, "b_q": bq, "b_k": bk, "b_v": bv}
    params |= {"W_o": rng.standard_normal((4, 4)), "b_o": np.zeros(4)}
    layer = MultiHeadAttention("attn", 4, 2, params=params)
    np.testing.assert_array_equal(layer.W_qkv, np.concatenate([Wq, Wk, Wv], axis=1))
    np.testing.assert_array_equal(layer.b_qkv, np.concatenate([bq, bk, bv]))
    assert np.shares_memory(layer.W_k, layer.W_qkv)
    layer.backward(layer.forward(tokens(rng)))
    np.testing.assert_array_equal(layer.dW_v, layer.dW_qkv[:, 8:])
    with pytest.raises(ValueError, match="W_qkv or all of"):
        MultiHeadAttention("attn", 4, 2, params={"W_q": Wq})
    with pytest.raises(ValueError, match="not a multiple"):
        MultiHeadAttention("attn", 5, 2)
    with pytest.raises(ValueError, match="expected"):
        MultiHeadAttention("attn", 4, 2, params={"W_o": np.zeros((4, 5))})


# --- the block ----------------------------------------------------------------------------------

PLACEMENTS = [("pre", False), ("pre", True), ("post", False), ("deepnorm", False), ("none", False)]


def make_block(norm, sandwich=False, rng=None, **kwargs):
    alpha = deepnorm_constants(6)[0] if norm == "deepnorm" else None
    kwargs = {"mlp_mult": 2} | kwargs
    block = TransformerBlock("blk", 4, 2, norm=norm, sandwich=sandwich, alpha=alpha, **kwargs)
    return fill(block, rng or np.random.default_rng(0), std=0.4)


@pytest.mark.parametrize(("norm", "sandwich"), PLACEMENTS)
@pytest.mark.parametrize("norm_type", ["layernorm", "rmsnorm"])
def test_block_gradients(norm, sandwich, norm_type):
    rng = np.random.default_rng(hash((norm, sandwich, norm_type)) % 1000)
    block = make_block(norm, sandwich, rng, norm_type=norm_type, eps=1e-3 if norm_type == "rmsnorm" else None)
    check_gradients(block, tokens(rng), rng)


@pytest.mark.parametrize(
    ("causal", "bias", "qk_norm", "mlp_act"),
    [(False, True, True, "swiglu"), (True, False, True, "geglu"), (False, False, False, "tanh")],
)
def test_block_gradients_attention_and_mlp_options(causal, bias, qk_norm, mlp_act):
    rng = np.random.default_rng(13)
    block = make_block("pre", rng=rng, causal=causal, bias=bias, qk_norm=qk_norm, mlp_act=mlp_act)
    check_gradients(block, tokens(rng), rng)


def test_block_rows_streams_and_branches():
    rng = np.random.default_rng(14)
    pre = make_block("pre", True, rng)
    assert list(pre.layers) == ["ln1", "attn", "ln1_out", "attn_add", "ln2", "mlp", "ln2_out", "mlp_add"]
    assert [row.name for row in pre.rows][:2] == ["blk.ln1", "blk.attn"]
    post = make_block("post", rng=rng)
    assert list(post.layers) == ["attn", "attn_add", "ln1", "mlp", "mlp_add", "ln2"]
    assert list(make_block("none", rng=rng).layers) == ["attn", "attn_add", "mlp", "mlp_add"]
    x = tokens(rng)
    out = pre.forward(x)
    attn_out = pre.ln1_out.forward(pre.attn.forward(pre.ln1.forward(x)))
    np.testing.assert_allclose(pre.branch_outputs["attn"], attn_out, rtol=1e-14)
    np.testing.assert_allclose(pre.stream_after["attn"], x + attn_out, rtol=1e-14)
    mlp_out = pre.ln2_out.forward(pre.mlp.forward(pre.ln2.forward(x + attn_out)))
    np.testing.assert_allclose(out, x + attn_out + mlp_out, rtol=1e-14)
    assert pre.out is out
    # deepnorm: LN(alpha x + f(x))
    deep = make_block("deepnorm", rng=rng)
    alpha = deepnorm_constants(6)[0]
    assert alpha == pytest.approx(12**0.25)
    out = deep.forward(x)
    h = deep.attn.forward(x)
    x1 = deep.ln1.forward(alpha * x + h)
    np.testing.assert_allclose(deep.stream_after["attn"], x1, rtol=1e-14)
    np.testing.assert_allclose(out, deep.ln2.forward(alpha * x1 + deep.mlp.forward(x1)), rtol=1e-14)
    assert set(deep.params) == {f"{row}.{p}" for row, layer in deep.layers.items() for p in layer.params}
    assert "attn.W_qkv" in deep.params and "ln2.beta" in deep.params


def test_block_refuses_bad_options():
    with pytest.raises(ValueError, match="norm must be one of"):
        TransformerBlock("b", 4, 2, norm="middle")
    with pytest.raises(ValueError, match="alpha"):
        TransformerBlock("b", 4, 2, norm="deepnorm")
    with pytest.raises(ValueError, match="alpha"):
        TransformerBlock("b", 4, 2, norm="pre", alpha=2.0)
    with pytest.raises(ValueError, match="sandwich"):
        TransformerBlock("b", 4, 2, norm="post", sandwich=True)
    with pytest.raises(ValueError, match="unknown parameters"):
        TransformerBlock("b", 4, 2, params={"attn.W_qkv": np.zeros((4, 12)), "lm_head.W": np.zeros(3)})


class RecordingHook:
    """A probe's hook: records the calls, and frees each layer after its backward (as the recorder)."""

    def __init__(self):
        self.calls = []

    def before_forward(self, layer, x):
        self.calls.append(("before", layer.name))

    def forward(self, layer):
        assert layer.a is not None
        self.calls.append(("forward", layer.name))

    def backward(self, layer, da, dx):
        assert da.shape == dx.shape
        self.calls.append(("backward", layer.name, float(np.sum(dx))))
        layer.free()


@pytest.mark.parametrize(("norm", "sandwich"), PLACEMENTS)
def test_block_calls_the_hook_at_every_row_and_survives_freeing(norm, sandwich):
    rng = np.random.default_rng(15)
    block = make_block(norm, sandwich, rng)
    x, G = tokens(rng), rng.standard_normal((2, 3, 4))
    out = block.forward(x).copy()
    dx = block.backward(G).copy()
    grads = {k: v.copy() for k, v in block.grads.items()}
    hook = RecordingHook()
    np.testing.assert_array_equal(block.forward(x, hook), out)
    np.testing.assert_array_equal(block.backward(G, hook), dx)
    forwards = [c[1] for c in hook.calls if c[0] == "forward"]
    assert forwards == [row.name for row in block.rows]
    befores = [c[1] for c in hook.calls if c[0] == "before"]
    assert befores == [row.name for row in block.rows if not isinstance(row, StreamAdd)]
    backwards = [c[1] for c in hook.calls if c[0] == "backward"]
    assert sorted(backwards) == sorted(forwards)
    # an add is reported after its branch, with dL/dx of the sublayer's input: the block's for the first
    assert backwards[-1] == "blk.attn_add" and hook.calls[-1][2] == pytest.approx(float(np.sum(dx)))
    assert all(g is None for g in block.grads.values())  # freed by the hook, after being reported
    block.forward(x)
    block.backward(G)
    for key, g in block.grads.items():
        np.testing.assert_array_equal(g, grads[key], err_msg=key)


# --- edges: batch 1, seq 1, float32, non-finite -------------------------------------------------


@pytest.mark.parametrize(("batch", "seq"), [(1, 1), (1, 4), (3, 1)])
def test_batch_one_and_seq_one(batch, seq):
    rng = np.random.default_rng(16)
    block = make_block("pre", rng=rng, qk_norm=True)
    check_gradients(block, tokens(rng, batch, seq), rng)
    if seq == 1:  # one key: the weight is 1 and the logits get no gradient
        np.testing.assert_array_equal(block.attn.probs, 1.0)


def test_float32_stays_float32():
    rng = np.random.default_rng(17)
    block = make_block("pre", rng=rng, qk_norm=True, mlp_act="swiglu")
    x64 = tokens(rng, seq=5)
    out64 = block.forward(x64).copy()
    G = rng.standard_normal(out64.shape)
    dx64 = block.backward(G).copy()
    out = block.forward(x64.astype(np.float32))
    dx = block.backward(G.astype(np.float32))
    assert out.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in block.grads.values())
    assert block.attn.probs.dtype == block.attn.logits.dtype == np.float32
    np.testing.assert_allclose(out, out64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, dx64, rtol=1e-4, atol=1e-5)
    emb = Embedding("wte", 5, 4, params={"W": np.ones((5, 4), np.float32)})
    assert emb.forward(np.array([[1, 2]])).dtype == np.float32


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("norm_type", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize(("norm", "sandwich"), PLACEMENTS)
def test_nonfinite_input_gives_nonfinite_output_without_warnings(bad, norm_type, norm, sandwich):
    rng = np.random.default_rng(18)
    block = make_block(norm, sandwich, rng, qk_norm=True, norm_type=norm_type)
    x = tokens(rng)
    x[1, 0, 2] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="ignore"):
            out = block.forward(x)
            dx = block.backward(np.ones_like(out))
    assert not np.isfinite(out).all()
    assert not np.isfinite(dx).all()
    assert np.isfinite(out[0]).all()  # the other sequence is untouched
