"""A transformer's per-block statistics (issue 14, B2), each against an independent truth: hand
computations and brute-force loops for the formulas, closed forms on constructed weights (zero
queries and keys: uniform attention; identical tokens: cosine 1), and one small stack recomputed
in plain numpy, with its weight gradients by central differences."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

import initdiag
from initdiag.analysis import token_build
from initdiag.analysis.inputs import get_input, stream
from initdiag.analysis.plan import _plan
from initdiag.analysis.probe import _INPUT_STREAM, _TARGET_STREAM
from initdiag.cli import app
from initdiag.core.losses import make_target
from initdiag.core.token_stats import attention_entropy_share, attention_logit_std, frobenius, token_cosine
from initdiag.network.shorthand import parse_layers
from initdiag.network.specfile import load_spec

runner = CliRunner()


# --- the formulas, by hand ---------------------------------------------------------------------------


def test_entropy_share_by_hand():
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])[None, None]
    assert attention_entropy_share(p, None) == pytest.approx((math.log(2) / math.log(3) + 0 + 1) / 3)
    causal = np.tri(3, dtype=bool)  # query 0 has one key: left out; query 1 uniform on 2; query 2 one-hot
    q = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0, 0, 1.0]])[None, None]
    assert attention_entropy_share(q, causal) == pytest.approx(0.5)
    uniform = np.tri(5) / np.arange(1, 6)[:, None]  # each query uniform over its allowed keys
    assert attention_entropy_share(np.broadcast_to(uniform, (2, 3, 5, 5)), np.tri(5, dtype=bool)) == 1.0


def test_logit_std_ignores_masked_entries():
    logits = np.array([[0.0, -np.inf, -np.inf], [1.0, 2.0, -np.inf], [3.0, -1.0, 5.0]])[None, None]
    allowed = np.tri(3, dtype=bool)
    assert attention_logit_std(logits, allowed) == pytest.approx(np.std([0, 1, 2, 3, -1, 5]))
    x = np.random.default_rng(0).normal(size=(3, 2, 4, 4))
    assert attention_logit_std(x, None) == pytest.approx(x.std())


def test_token_cosine_against_every_pair():
    x = np.array([[[1.0, 0], [1, 1], [0, 1]]])
    assert token_cosine(x) == pytest.approx(math.sqrt(2) / 3)  # pairs: 1/sqrt 2, 0, 1/sqrt 2
    assert token_cosine(np.ones((2, 5, 3))) == pytest.approx(1.0)
    assert token_cosine(np.eye(4)[None]) == 0.0
    y = np.random.default_rng(1).normal(size=(3, 6, 5)) + 0.5
    brute = np.mean([
        np.mean([a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in itertools.combinations(sample, 2)])
        for sample in y
    ])  # fmt: skip
    assert token_cosine(y) == pytest.approx(brute)
    assert frobenius(y) == pytest.approx(np.linalg.norm(y))


# --- closed forms on constructed weights ---------------------------------------------------------------


SPEC = """\
input_shape = "seq=12,vocab=50"

[defaults]
init = "gpt2"

[init]
{roles}

[[layers]]
kind = "embedding"
d = 32
{positions}

[[layers]]
kind = "transformer"
heads = 4
blocks = 2
causal = {causal}

[[layers]]
kind = "layernorm"

[[layers]]
kind = "unembedding"

[check]
{check}
"""


def spec(tmp_path, roles="", positions="", causal="true", check="", name="s.toml"):
    path = tmp_path / name
    path.write_text(SPEC.format(roles=roles, positions=positions, causal=causal, check=check))
    return path


@pytest.mark.parametrize("causal", ["true", "false"])
def test_zero_queries_and_keys_give_uniform_attention(tmp_path, causal):
    """W_q = W_k = 0 (and their biases): every logit is 0, so each query spreads its weight evenly
    over the keys it may see: entropy share exactly 1, logit std exactly 0."""
    path = spec(tmp_path, roles='qkv = "zeros"', causal=causal)
    result = initdiag.probe(load_spec(path).stack, batch=4, dtype="float64")
    for block in result.blocks:
        assert block["attn_logit_std"] == 0.0
        assert block["attn_entropy"] == pytest.approx(1.0, abs=1e-12)
        assert block["branch_var"]["attn"] == 0.0  # zero values too: the branch adds nothing
        assert block["flags"] == []
    # ... which the attention rows say: no signal, and equal units
    assert result.layer("block1.attn").flags == ["vanishing", "symmetric"]


def test_identical_tokens_have_cosine_one_and_are_flagged_collapse(tmp_path):
    """Token ids all equal and no positions: every token vector of a sample is the same."""
    np.save(tmp_path / "ids.npy", np.full((4, 12), 7))
    path = spec(tmp_path, positions='positions = "none"', causal="false")
    result = initdiag.probe(load_spec(path).stack, input=f"tokens:{tmp_path / 'ids.npy'}", dtype="float64")
    start = result.layer("emb1")
    assert start.token_cosine == pytest.approx(1.0, abs=1e-12) and "collapse" in start.flags
    # without a causal mask each token attends alike to identical tokens: they stay identical
    assert all(b["token_cosine"] == pytest.approx(1.0, abs=1e-9) for b in result.blocks)
    assert "collapse" in result.summary.flags and result.summary.verdict == "fail"


def test_thresholds_from_the_check_table(tmp_path):
    base = initdiag.probe(load_spec(spec(tmp_path)).stack, batch=4)
    cosine = base.blocks[1]["token_cosine"]
    assert 0 < cosine < 0.9 and not base.summary.flags
    tight = load_spec(spec(tmp_path, check=f"max_token_cosine = {cosine / 2:g}", name="t.toml"))
    assert tight.check.thresholds.max_token_cosine == pytest.approx(cosine / 2)
    result = initdiag.probe(tight.stack, batch=4, thresholds=tight.check.thresholds)
    assert "collapse" in result.layer("block2.mlp_add").flags
    assert any(r.startswith("layer block2.mlp_add: the tokens of a sample") for r in result.summary.reasons)


def test_sharp_attention_is_flagged_saturated(tmp_path):
    """Queries and keys of std 3 on a LayerNorm'd stream of width 32: logits of std about
    9 * 32 / sqrt(8), so each query's softmax is one key."""
    result = initdiag.probe(load_spec(spec(tmp_path, roles='qkv = "normal:3"')).stack, batch=4)
    block = result.blocks[0]
    assert block["attn_entropy"] < 0.1 and block["attn_logit_std"] > 20
    assert "attn_saturated" in block["flags"] and "attn_saturated" in result.layer("block1.attn").flags


def test_stream_growth_against_linear():
    grows = initdiag.probe("transformer:d=32,heads=4,blocks=5,seq=8,vocab=50,norm=none", init="he_normal",
                           batch=8)  # fmt: skip
    sq = [b["residual_sq"] for b in grows.blocks]
    for depth, b in enumerate(grows.blocks[1:], start=2):
        assert b["stream_growth"] == pytest.approx(sq[depth - 1] / (depth * sq[0]))
    assert "stream_growth" in grows.summary.flags
    assert grows.blocks[0]["stream_growth"] is None
    gpt2 = initdiag.probe("transformer:d=32,heads=4,blocks=5,seq=8,vocab=50", init="gpt2", batch=8)
    assert all(b["stream_growth"] is None or b["stream_growth"] <= 1.0 for b in gpt2.blocks)
    assert "stream_growth" not in gpt2.summary.flags


def test_json_has_blocks_and_the_rows_keys_and_the_thresholds():
    result = runner.invoke(app, ["probe", "--layers", "transformer:d=16,heads=2,blocks=2,seq=4,vocab=20",
                                 "--batch", "2", "-f", "json"])  # fmt: skip
    data = json.loads(result.stdout)
    assert [b["name"] for b in data["blocks"]] == ["block1", "block2"]
    assert set(data["blocks"][0]) == {"name", "kind", "residual_sq", "token_cosine", "stream_growth",
                                      "branch_var", "attn_logit_std", "attn_entropy", "grad_weight_norm",
                                      "flags"}  # fmt: skip
    assert set(data["blocks"][0]["grad_weight_norm"]) == {"attn.W_q", "attn.W_k", "attn.W_v", "attn.W_o",
                                                          "mlp.W_in", "mlp.W_out"}  # fmt: skip
    rows = {x["name"]: x for x in data["layers"]}
    assert rows["block1.attn"]["attn_entropy"] == data["blocks"][0]["attn_entropy"]
    assert "residual_sq" not in rows["block1.attn"] and rows["emb1.pos"]["residual_sq"] > 0
    assert data["settings"]["max_token_cosine"] == 0.9
    plain = json.loads(runner.invoke(app, ["probe", "--layers", "8,8", "-f", "json"]).stdout)
    assert "blocks" not in plain and "max_token_cosine" not in plain["settings"]


def test_trials_average_the_block_statistics():
    from initdiag.analysis.probe import _run_trial

    text = "transformer:d=16,heads=2,blocks=2,seq=4,vocab=20"
    both = initdiag.probe(text, batch=4, seed=0, trials=2)
    plan = _plan(both.spec, "float32")
    source = get_input("tokens", both.spec.input_shape, both.spec.vocab)
    raws = [_run_trial(plan, both.settings, source, trial, None)[0] for trial in (0, 1)]
    end = next(x.index for x in plan.graph.rows if x.name == "block2.mlp_add")
    attn = next(x.index for x in plan.graph.rows if x.name == "block1.attn")
    assert both.blocks[1]["residual_sq"] == pytest.approx(np.mean([r["residual_sq"][end] for r in raws]))
    assert both.blocks[0]["attn_entropy"] == pytest.approx(np.mean([r["attn_entropy"][attn] for r in raws]))
    norms = [r["grad_norms"][attn]["W_o"] for r in raws]
    assert both.blocks[0]["grad_weight_norm"]["attn.W_o"] == pytest.approx(np.mean(norms))
    assert both.layer("block2.mlp_add").sd["residual_sq"] == pytest.approx(
        np.std([r["residual_sq"][end] for r in raws], ddof=1)
    )


# --- one small stack, recomputed ------------------------------------------------------------------------


def _ln(x, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)


def _gelu(x):
    return x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def test_a_small_stack_against_plain_numpy():
    text = "transformer:d=4,heads=1,blocks=1,seq=3,vocab=5,mult=2"
    stack = parse_layers(text, init="normal:0.7", bias_init="normal:0.3").resolve()
    batch, seed = 2, 0
    result = initdiag.probe(stack, batch=batch, seed=seed, dtype="float64")
    plan = _plan(stack, "float64")
    w = {}
    for i, row_draws in enumerate(plan.draws):
        if row_draws:
            w.update(
                {
                    f"{plan.graph.rows[i].name}.{k}": v
                    for k, v in token_build.sample(row_draws, seed, 0, i).items()
                }
            )
    ids = get_input("tokens", stack.input_shape, stack.vocab).batch(
        stream(seed, 0, _INPUT_STREAM), batch, (3,), None
    )
    G = make_target("unit", stream(seed, 0, _TARGET_STREAM), (batch, 3, 5), np.float64)

    def forward(w):
        x0 = w["emb1.W"][ids] + w["emb1.pos.P"][:3]
        h = _ln(x0)
        q, k, v = (h @ w[f"block1.attn.W_{c}"] + w[f"block1.attn.b_{c}"] for c in "qkv")
        scores = q @ k.swapaxes(1, 2) / math.sqrt(4)
        scores = np.where(np.tri(3, dtype=bool), scores, -np.inf)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        a = (p @ v) @ w["block1.attn.W_o"] + w["block1.attn.b_o"]
        x1 = x0 + a
        m = _gelu(_ln(x1) @ w["block1.mlp.W_in"] + w["block1.mlp.b_in"]) @ w["block1.mlp.W_out"]
        m = m + w["block1.mlp.b_out"]
        x2 = x1 + m
        y = _ln(x2) @ w["unembed1.W"]
        return float(np.sum(y * G) / batch), dict(x0=x0, scores=scores, p=p, a=a, m=m, x2=x2)

    loss, mid = forward(w)
    assert result.summary.loss == pytest.approx(loss, rel=1e-10)
    block = result.blocks[0]
    assert block["residual_sq"] == pytest.approx(np.mean(mid["x2"] ** 2), rel=1e-10)
    assert block["branch_var"]["attn"] == pytest.approx(np.var(mid["a"]), rel=1e-10)
    assert block["branch_var"]["mlp"] == pytest.approx(np.var(mid["m"]), rel=1e-10)
    allowed = np.tri(3, dtype=bool)
    assert block["attn_logit_std"] == pytest.approx(np.std(mid["scores"][:, allowed]), rel=1e-10)
    share = [-(row[:n] * np.log(row[:n])).sum() / math.log(n) for sample in mid["p"] for n, row in
             zip((2, 3), sample[1:], strict=True)]  # fmt: skip
    assert block["attn_entropy"] == pytest.approx(np.mean(share), rel=1e-10)
    assert block["token_cosine"] == pytest.approx(token_cosine(mid["x2"]), rel=1e-10)
    assert result.layer("emb1.pos").token_cosine == pytest.approx(token_cosine(mid["x0"]), rel=1e-10)
    # the weights' gradient norms, by central differences on the numpy forward
    for key in ("attn.W_q", "attn.W_o", "mlp.W_in", "mlp.W_out"):
        name = f"block1.{key}"
        grad = np.zeros_like(w[name])
        for idx in np.ndindex(grad.shape):
            up, down = dict(w), dict(w)
            up[name], down[name] = w[name].copy(), w[name].copy()
            up[name][idx] += 1e-6
            down[name][idx] -= 1e-6
            grad[idx] = (forward(up)[0] - forward(down)[0]) / 2e-6
        assert block["grad_weight_norm"][key] == pytest.approx(np.linalg.norm(grad), rel=1e-6), key


def test_a_spec_with_roles_and_token_thresholds_round_trips(tmp_path):
    from initdiag.network.specfile import dump, to_data

    path = spec(tmp_path, roles='q = "zeros"\nout_proj = "normal:0.01"', check="max_token_cosine = 0.5\n"
                "min_attn_entropy = 0.2\nmax_stream_growth = 3")  # fmt: skip
    loaded = load_spec(path)
    stack = loaded.stack.resolve()
    again = tmp_path / "again.toml"
    again.write_text(dump(to_data(stack, loaded.settings({}), loaded.check), "toml"))
    reloaded = load_spec(again)
    assert reloaded.check == loaded.check
    assert reloaded.check.thresholds.max_stream_growth == 3
    first, second = (
        initdiag.probe(s.stack, batch=2, thresholds=s.check.thresholds) for s in (loaded, reloaded)
    )
    from initdiag.render.probe import to_json

    a, b = json.loads(to_json(first)), json.loads(to_json(second))
    assert a["layers"] == b["layers"] and a["blocks"] == b["blocks"] and a["settings"] == b["settings"]
    assert a["settings"]["min_attn_entropy"] == 0.2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [True, False])
def test_logit_std_keeps_its_precision_under_a_large_common_offset(monkeypatch, dtype, causal):
    """Logits that share a large offset (a bias on every query and key): the std of the small spread
    around it, not of float64 rounding (E[x^2] - mean^2 in one pass gave 0 in float32), whatever the
    chunks the sums are split into."""
    from initdiag.core import token_stats

    rng = np.random.default_rng(30)
    logits = (3600 + 8e-5 * rng.standard_normal((16, 2, 16, 16))).astype(dtype)
    allowed = np.tri(16, dtype=bool) if causal else None
    values = logits.astype(np.float64)[:, :, allowed] if causal else logits.astype(np.float64)
    want = float(np.std(values))  # two passes, float64, over the values the query may see
    assert attention_logit_std(logits, allowed) == pytest.approx(want, rel=1e-6)
    monkeypatch.setattr(token_stats, "_CHUNK", 3 * 256)  # three matrices a chunk: 11 chunks combined
    assert attention_logit_std(logits, allowed) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_frobenius_of_infinite_and_nan_entries(dtype):
    assert frobenius(np.array([np.inf, 1.0] * 1000, dtype=dtype)) == np.inf
    assert frobenius(np.array([np.inf, -np.inf], dtype=dtype)) == np.inf
    assert math.isnan(frobenius(np.array([np.nan, 1.0], dtype=dtype)))
    assert frobenius(np.array([3.0, 4.0], dtype=dtype)) == pytest.approx(5.0)
    assert frobenius(np.zeros(0, dtype=dtype)) == 0.0
