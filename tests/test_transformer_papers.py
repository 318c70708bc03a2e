"""Issue 14's acceptance: the papers' figures, reproduced by the probe's own numbers.

- Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture", under their
  assumptions (Xavier weights, W_Q = W_K = 0 so attention is uniform, a ReLU MLP of width d, no
  biases, unit Gaussian token vectors in): Lemma 2's Pre-LN stream (1 + l/2) d <= E|x_l|^2 <=
  (1 + 3l/2) d, and Post-LN's E|x^{post,5}_l|^2 = 3d/2 before each block's last LayerNorm; Theorem 1's
  last-block gradient, which falls with depth about as L^(-1/2) in Pre-LN and does not in Post-LN;
  Figure 3's shape (Post-LN's gradient of the MLP's second weight grows towards the output).
- Dong et al. 2021, "Attention is not all you need": attention alone (no residual, no MLP) drives a
  sample's tokens to one direction within a few layers; residuals keep them apart.
- Radford et al. 2019: GPT-2's 1/sqrt(2L) on the residual projections divides what each block adds to
  the stream by 2L (exactly, on the first block), and keeps its growth linear.
"""

from __future__ import annotations

import numpy as np
import pytest

import initdiag
from initdiag.network.specfile import load_spec

D, SEQ, BATCH = 256, 16, 16


def xiong(tmp_path, norm: str, blocks: int):
    """The stack of Xiong et al.'s analysis: a (seq, d) input of N(0, 1) vectors, then the blocks."""
    final = '[[layers]]\nkind = "layernorm"\n' if norm == "pre" else ""
    path = tmp_path / f"{norm}{blocks}.toml"
    path.write_text(f"""\
input_shape = [{SEQ}, {D}]

[defaults]
init = "xavier_normal"
act = "linear"

[init]
q = "zeros"
k = "zeros"

[[layers]]
kind = "transformer"
heads = 4
blocks = {blocks}
norm = "{norm}"
causal = false
bias = false
mult = 1
act = "relu"

{final}""")
    return initdiag.probe(load_spec(path).stack, batch=BATCH)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    path = tmp_path_factory.mktemp("xiong")
    return {(norm, blocks): xiong(path, norm, blocks) for norm in ("pre", "post") for blocks in (4, 16)}


def test_uniform_attention_under_their_assumptions(runs):
    for result in runs.values():
        assert all(b["attn_logit_std"] == 0 and b["attn_entropy"] == pytest.approx(1) for b in result.blocks)


def test_pre_ln_stream_grows_between_their_bounds(runs):
    """Lemma 2: (1 + l/2) d <= E|x_l|^2 <= (1 + 3l/2) d after l blocks (x_0 of unit variance), within
    sampling error (3%: d = 256, 16 tokens, 16 samples)."""
    sq = [b["residual_sq"] for b in runs[("pre", 16)].blocks]
    for depth, value in enumerate(sq, start=1):
        assert 0.97 * (1 + depth / 2) <= value <= 1.03 * (1 + 3 * depth / 2), (depth, value)
    assert sq[-1] > 2 * sq[3]  # it grows without bound: linearly


def test_post_ln_before_the_last_norm_is_three_halves(runs):
    """E|x^{post,5}_l|^2 = 3d/2: a LayerNorm'd stream (d) plus a ReLU MLP's output (d/2)."""
    adds = [x for x in runs[("post", 16)].layers if x.name.endswith(".mlp_add")]
    values = [x.preact_var + x.preact_mean**2 for x in adds]
    assert np.mean(values) == pytest.approx(1.5, rel=0.03)
    assert all(v == pytest.approx(1.5, rel=0.15) for v in values)
    assert all(b["residual_sq"] == pytest.approx(1.0, rel=1e-3) for b in runs[("post", 16)].blocks)


def _last_w2(result):
    return result.blocks[-1]["grad_weight_norm"]["mlp.W_out"]


def test_theorem_1_last_block_gradient_against_depth(runs):
    """Pre-LN: the last block's gradient falls about as L^(-1/2) (L = 4 -> 16: 1/2); Post-LN: it does
    not fall."""
    pre = _last_w2(runs[("pre", 16)]) / _last_w2(runs[("pre", 4)])
    post = _last_w2(runs[("post", 16)]) / _last_w2(runs[("post", 4)])
    assert 0.35 < pre < 0.65, pre
    assert post > 0.8, post


def test_figure_3_gradient_of_the_mlps_second_weight_by_layer(runs):
    """Post-LN: larger towards the output; Pre-LN: not (here it falls: the stream's gradient gathers
    a share from every branch above)."""

    def quarters(result):
        norms = [b["grad_weight_norm"]["mlp.W_out"] for b in result.blocks]
        return np.mean(norms[:4]), np.mean(norms[-4:])

    first, last = quarters(runs[("post", 16)])
    assert last > 1.05 * first, (first, last)
    first, last = quarters(runs[("pre", 16)])
    assert last < first, (first, last)


DONG = """\
input_shape = "seq=16,vocab=200"

[defaults]
init = "xavier_normal"

[init]
embedding = "normal:1"

[[layers]]
kind = "embedding"
d = 64
positions = "sinusoidal"

{layers}
"""


def test_attention_alone_collapses_the_tokens_and_residuals_keep_them_apart(tmp_path):
    """Dong et al. 2021: a stack of (causal) self-attention layers without skip connections or MLPs
    mixes each token into an average of the others, and the tokens' cosine climbs towards 1 layer
    after layer. The same attention in Pre-LN blocks, whose residuals carry each token on, keeps it
    well below."""
    alone, blocks = tmp_path / "alone.toml", tmp_path / "blocks.toml"
    alone.write_text(DONG.format(layers='[[layers]]\nkind = "attention"\nheads = 4\nrepeat = 6'))
    blocks.write_text(DONG.format(layers='[[layers]]\nkind = "transformer"\nheads = 4\nblocks = 6'))
    start = None
    for path, collapses in ((alone, True), (blocks, False)):
        result = initdiag.probe(load_spec(path).stack, batch=8)
        cosine = [b["token_cosine"] for b in result.blocks]
        start = result.layer("emb1.pos").token_cosine
        assert len(cosine) == 6 and start < 0.3
        if collapses:
            assert all(a < b for a, b in zip([start, *cosine], cosine, strict=False)), cosine
            assert cosine[-1] > 0.99 and "collapse" in result.summary.flags
        else:
            assert max(cosine) < 0.7 and "collapse" not in result.summary.flags, cosine


def test_gpt2_residual_scaling_divides_each_blocks_addition_by_2L():
    """The same draws, with and without 1/sqrt(2L) on the two residual projections: block 1's
    attention adds exactly 1/(2L) of the variance (its input is the same); the stream grows linearly
    in both, 2L-ish times slower with the scaling."""
    L = 6
    text = f"transformer:d=64,heads=4,blocks={L},seq=16,vocab=200"
    scaled = initdiag.probe(text, init="gpt2", batch=8, dtype="float64")
    plain = initdiag.probe(text, init="normal:0.02", batch=8, dtype="float64")
    ratio = plain.blocks[0]["branch_var"]["attn"] / scaled.blocks[0]["branch_var"]["attn"]
    assert ratio == pytest.approx(2 * L, rel=1e-9)
    for result in (scaled, plain):
        sq = [b["residual_sq"] for b in result.blocks]
        steps = np.diff(sq)
        assert (steps > 0).all() and steps.max() < 2 * steps.min()  # linear: about equal steps
        assert not result.summary.flags
    added = (scaled.blocks[-1]["residual_sq"] - scaled.blocks[0]["residual_sq"],
             plain.blocks[-1]["residual_sq"] - plain.blocks[0]["residual_sq"])  # fmt: skip
    assert 0.5 * 2 * L < added[1] / added[0] < 2 * 2 * L
