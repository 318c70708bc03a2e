"""The transformer layers against real PyTorch, through a stored fixture (no torch needed here).

``tests/data/torch_transformer_reference.npz`` is written by
``tests/reference/make_torch_transformer_reference.py`` (needs torch, does not import initdiag; its
docstring lists the keys). Everything is float64 and L = sum(out * G), so backward(G) gives the
gradients autograd gave. Torch's (out, in) weights are transposed into initdiag's (in, out) going
in, and the gradients coming out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from initdiag.core.transformer import (
    MLP,
    Embedding,
    MultiHeadAttention,
    RMSNorm,
    TokenLayerNorm,
    TransformerBlock,
    sinusoidal_table,
)

DATA = Path(__file__).resolve().parent / "data" / "torch_transformer_reference.npz"
FIXTURE_MAX_BYTES = 300_000  # ~130 kB: 170 small float64 arrays

# Both libraries compute in float64 and differ only in summation order (matmul blocking, the order of
# the norms' means) and by an ulp or so in exp, erf and silu. Observed against torch 2.13: the largest
# absolute error is 1.5e-14 (the post-LN encoder layer's dW_in, whose entries reach 4.5; the largest
# value in the fixture is 15), the largest relative error 1.1e-12 on entries above 1e-3 (geglu's
# dW_in, through torch's erf). So atol 1e-13, about 7x the largest error, and rtol 1e-10: a transposed
# weight, a missing 1/sqrt(head_dim), a mask off by one or a gamma left at 1 fail by many orders more.
RTOL, ATOL = 1e-10, 1e-13
D, H = 8, 2


@pytest.fixture(scope="module")
def ref():
    with np.load(DATA) as data:
        return {key: data[key] for key in data.files}


def close(got, want, what):
    assert got.shape == want.shape, f"{what}: {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


def run(layer, ref):
    """Forward X, backward G; returns (out, dX)."""
    out = layer.forward(ref["X"].copy())
    return out.copy(), layer.backward(ref["G"].copy())


def test_fixture_is_float64_small_and_records_torch(ref):
    assert str(ref["torch_version"]).startswith("2.")
    for key, value in ref.items():
        if value.dtype.kind == "f":
            assert value.dtype == np.float64, key
    assert DATA.stat().st_size < FIXTURE_MAX_BYTES


def _attention_params(ref, prefix="mha/"):
    return {
        "W_qkv": ref[f"{prefix}in_proj_weight"].T.copy(),
        "b_qkv": ref[f"{prefix}in_proj_bias"].copy(),
        "W_o": ref[f"{prefix}out_proj_weight"].T.copy(),
        "b_o": ref[f"{prefix}out_proj_bias"].copy(),
    }


def _check_attention_grads(layer, ref, prefix):
    close(layer.dW_qkv, ref[f"{prefix}/din_proj_weight"].T, "dW_qkv")
    close(layer.db_qkv, ref[f"{prefix}/din_proj_bias"], "db_qkv")
    close(layer.dW_o, ref[f"{prefix}/dout_proj_weight"].T, "dW_o")
    close(layer.db_o, ref[f"{prefix}/dout_proj_bias"], "db_o")


@pytest.mark.parametrize("mask", ["causal", "full"])
def test_multihead_attention_matches_nn_multiheadattention(ref, mask):
    layer = MultiHeadAttention("attn", D, H, causal=mask == "causal", params=_attention_params(ref))
    out, dx = run(layer, ref)
    close(out, ref[f"mha/{mask}/out"], "out")
    close(layer.probs, ref[f"mha/{mask}/probs"], "probs")
    close(dx, ref[f"mha/{mask}/dX"], "dX")
    _check_attention_grads(layer, ref, f"mha/{mask}")


def test_qk_norm_matches_layer_norm_then_scaled_dot_product_attention(ref):
    params = _attention_params(ref)
    for which in ("q", "k"):
        params[f"{which}_norm_gamma"] = ref[f"sdpa_qknorm/{which}_norm_weight"].copy()
        params[f"{which}_norm_beta"] = ref[f"sdpa_qknorm/{which}_norm_bias"].copy()
    layer = MultiHeadAttention("attn", D, H, causal=True, qk_norm=True, params=params)
    out, dx = run(layer, ref)
    close(out, ref["sdpa_qknorm/out"], "out")
    close(dx, ref["sdpa_qknorm/dX"], "dX")
    _check_attention_grads(layer, ref, "sdpa_qknorm")
    for which in ("q", "k"):
        close(getattr(layer, f"d{which}_norm_gamma"), ref[f"sdpa_qknorm/d{which}_norm_weight"], which)
        close(getattr(layer, f"d{which}_norm_beta"), ref[f"sdpa_qknorm/d{which}_norm_bias"], which)


def test_layer_norm_matches_nn_layernorm(ref):
    layer = TokenLayerNorm("ln", D, params={"gamma": ref["layernorm/weight"], "beta": ref["layernorm/bias"]})
    out = layer.forward(1.0 + 3.0 * ref["X"])
    close(out, ref["layernorm/out"], "out")
    close(layer.backward(ref["G"]), ref["layernorm/dX"], "dX")
    close(layer.dgamma, ref["layernorm/dweight"], "dgamma")
    close(layer.dbeta, ref["layernorm/dbias"], "dbeta")


@pytest.mark.parametrize("eps", ["default", "1e-06"])
def test_rms_norm_matches_nn_rmsnorm(ref, eps):
    prefix = f"rmsnorm/{eps}"
    layer = RMSNorm(
        "rms", D, eps=None if eps == "default" else float(eps), params={"gamma": ref[f"{prefix}/weight"]}
    )
    out, dx = run(layer, ref)
    close(out, ref[f"{prefix}/out"], "out")
    close(dx, ref[f"{prefix}/dX"], "dX")
    close(layer.dgamma, ref[f"{prefix}/dweight"], "dgamma")


# (initdiag name, fixture name) for the MLPs; every weight is transposed
MLP_NAMES = {
    "gelu": (("W_in", "fc1_weight"), ("b_in", "fc1_bias"), ("W_out", "fc2_weight"), ("b_out", "fc2_bias")),
    "swiglu": (("W_in", "w1"), ("W_linear", "w3"), ("W_out", "w2")),
    "geglu": (
        ("W_in", "w1"),
        ("b_in", "b1"),
        ("W_linear", "w3"),
        ("b_linear", "b3"),
        ("W_out", "w2"),
        ("b_out", "b2"),
    ),
}


@pytest.mark.parametrize("act", ["gelu", "swiglu", "geglu"])
def test_mlps_match_torch(ref, act):
    prefix, names = f"mlp_{act}", MLP_NAMES[act]
    params = {ours: ref[f"{prefix}/{theirs}"].T.copy() for ours, theirs in names}
    hidden = params["W_in"].shape[1]
    layer = MLP("mlp", D, act=act, hidden=hidden, bias=act != "swiglu", params=params)
    out, dx = run(layer, ref)
    close(out, ref[f"{prefix}/out"], "out")
    close(dx, ref[f"{prefix}/dX"], "dX")
    for ours, theirs in names:
        close(layer.grads[ours], ref[f"{prefix}/d{theirs}"].T, ours)


def test_embedding_matches_nn_embedding(ref):
    layer = Embedding("wte", 11, D, params={"W": ref["embedding/weight"].copy()})
    close(layer.forward(ref["ids"]), ref["embedding/out"], "out")
    assert layer.backward(ref["G"]) is None
    close(layer.dW, ref["embedding/dweight"], "dW")


@pytest.mark.parametrize("d", [8, 7])
def test_sinusoidal_table_matches(ref, d):
    close(sinusoidal_table(16, d), ref[f"sinusoidal/d{d}"], "table")


# TransformerBlock parameter -> (fixture name, transposed?) for GPT-2's block and nn.TransformerEncoderLayer
def _block_names(ln1, ln2, attn, fc_in, fc_out):
    names = {}
    for ours, theirs in (("ln1", ln1), ("ln2", ln2)):
        names[f"{ours}.gamma"], names[f"{ours}.beta"] = (f"{theirs}.weight", False), (f"{theirs}.bias", False)
    names["attn.W_qkv"], names["attn.b_qkv"] = (
        (f"{attn}.in_proj_weight", True),
        (f"{attn}.in_proj_bias", False),
    )
    names["attn.W_o"], names["attn.b_o"] = (f"{attn}.out_proj.weight", True), (f"{attn}.out_proj.bias", False)
    names["mlp.W_in"], names["mlp.b_in"] = (f"{fc_in}.weight", True), (f"{fc_in}.bias", False)
    names["mlp.W_out"], names["mlp.b_out"] = (f"{fc_out}.weight", True), (f"{fc_out}.bias", False)
    return names


BLOCKS = {
    "gpt2": ("pre", _block_names("ln_1", "ln_2", "attn", "mlp.fc", "mlp.proj")),
    "encoder_pre": ("pre", _block_names("norm1", "norm2", "self_attn", "linear1", "linear2")),
    "encoder_post": ("post", _block_names("norm1", "norm2", "self_attn", "linear1", "linear2")),
}


def _block(ref, prefix):
    norm, names = BLOCKS[prefix]
    params = {}
    for ours, (theirs, transposed) in names.items():
        value = ref[f"{prefix}/{theirs}"]
        params[ours] = (value.T if transposed else value).copy()
    block = TransformerBlock(prefix, D, H, norm=norm, causal=True, params=params)
    return block, names


@pytest.mark.parametrize("prefix", list(BLOCKS))
def test_blocks_match_gpt2_and_transformer_encoder_layer(ref, prefix):
    block, names = _block(ref, prefix)
    out, dx = run(block, ref)
    close(out, ref[f"{prefix}/out"], "out")
    close(dx, ref[f"{prefix}/dX"], "dX")
    assert set(block.grads) == set(names)
    for ours, (theirs, transposed) in names.items():
        want = ref[f"{prefix}/d{theirs}"]
        close(block.grads[ours], want.T if transposed else want, ours)


def test_gpt2_block_exposes_branches_stream_and_probs(ref):
    block, _ = _block(ref, "gpt2")
    out = block.forward(ref["X"].copy())
    close(block.branch_outputs["attn"], ref["gpt2/attn_branch"], "attn branch")
    close(block.branch_outputs["mlp"], ref["gpt2/mlp_branch"], "mlp branch")
    close(block.stream_after["attn"], ref["gpt2/stream1"], "stream after attention")
    close(block.attn.probs, ref["gpt2/probs"], "probs")
    assert block.out is out and block.stream_after["mlp"] is out
