"""Transformers as stacks (issue 14, B1): the shorthand and its spec file, the presets and the
framework defaults measured on the weights the probe samples, per-role overrides, the memory
estimate, one-line errors, and what the backward gain means on a residual stream."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from typer.testing import CliRunner

import initdiag
from initdiag.analysis import token_build
from initdiag.analysis.memory import estimate_memory
from initdiag.analysis.plan import _plan
from initdiag.cli import app
from initdiag.network.shorthand import parse_layers
from initdiag.network.specfile import load_spec

runner = CliRunner()
SHORT = "transformer:d=32,heads=4,blocks=2,seq=8,vocab=50"


def run(*args, env=None):
    return runner.invoke(app, [*map(str, args)], env={"COLUMNS": "200", **(env or {})})


def stack(text: str = SHORT, **options):
    return parse_layers(text, **options).resolve()


def weights(spec, seed: int = 0) -> dict[str, np.ndarray]:
    """Every weight and bias of the token rows as the probe samples them, by ``row.param``."""
    plan = _plan(spec, "float64")
    out = {}
    for i, row_draws in enumerate(plan.draws):
        if row_draws:
            for key, array in token_build.sample(row_draws, seed, 0, i).items():
                out[f"{plan.graph.rows[i].name}.{key}"] = array
    return out


def std_close(array, std, rel=0.05):
    """The sample std of *array* within *rel* of *std* (n >= 4096 entries: its sd is under 1.2%)."""
    assert array.size >= 4096 or rel >= 0.1, array.size
    assert np.std(array) == pytest.approx(std, rel=rel), (np.std(array), std)


# --- the shorthand and its spec file -----------------------------------------------------------------


def test_shorthand_expands_to_embedding_blocks_final_norm_and_unembedding():
    spec = stack()
    assert [layer.kind for layer in spec.layers] == ["embedding", "transformer", "layernorm", "unembedding"]
    assert spec.input_shape == (8,) and spec.vocab == 50
    names = [x.name for x in initdiag.probe(spec, batch=4).layers]
    assert names[:2] == ["emb1", "emb1.pos"]
    assert names[2:8] == ["block1.ln1", "block1.attn", "block1.attn_add", "block1.ln2", "block1.mlp",
                          "block1.mlp_add"]  # fmt: skip
    assert names[-2:] == ["ln1", "unembed1"] and len(names) == 2 + 2 * 6 + 2


@pytest.mark.parametrize(
    "extra",
    ["", ",norm=post,tied=true", ",norm=deepnorm,positions=sinusoidal", ",norm=none,act=swiglu,causal=false",
     ",sandwich=true,norm_type=rmsnorm,qk_norm=true,bias=false,mult=2"],
)  # fmt: skip
def test_emit_spec_then_probe_config_gives_the_same_json(tmp_path, extra):
    text = SHORT + extra
    emitted = run("probe", "--layers", text, "--init", "gpt2", "--batch", "4", "--emit-spec", "toml")
    assert emitted.exit_code == 0, emitted.output
    path = tmp_path / "t.toml"
    path.write_text(emitted.stdout)
    direct = run("probe", "--layers", text, "--init", "gpt2", "--batch", "4", "-f", "json")
    again = run("probe", "-c", path, "-f", "json")
    assert direct.exit_code == again.exit_code, again.output
    a, b = json.loads(direct.stdout), json.loads(again.stdout)
    assert b["spec"].pop("name") == "t" and a["spec"].pop("name") is None
    assert a == b


def test_the_title_names_token_ids_not_a_width():
    result = run("probe", "--layers", SHORT, "--batch", "4")
    assert result.stdout.splitlines()[0].startswith("seq=8,vocab=50 → 8×50 (16 layers) · gelu · he_normal")


# --- presets and framework defaults, on the sampled weights -------------------------------------------


def test_gpt2_scales_only_the_two_residual_outputs_by_one_over_sqrt_2L():
    L, d = 3, 64
    w = weights(stack(f"transformer:d={d},heads=4,blocks={L},seq=8,vocab=100", init="gpt2"))
    for block in ("block1", "block3"):
        std_close(w[f"{block}.attn.W_o"], 0.02 / math.sqrt(2 * L))
        std_close(w[f"{block}.mlp.W_out"], 0.02 / math.sqrt(2 * L))
        for key in ("attn.W_q", "attn.W_k", "attn.W_v", "mlp.W_in"):
            std_close(w[f"{block}.{key}"], 0.02)
        assert not w[f"{block}.attn.b_q"].any() and not w[f"{block}.mlp.b_out"].any()
    std_close(w["emb1.W"], 0.02)
    std_close(w["emb1.pos.P"], 0.02, rel=0.1)
    std_close(w["unembed1.W"], 0.02)
    w = weights(stack(f"transformer:d={d},heads=4,blocks={L},seq=8,vocab=100", init="gpt2:std=0.05"))
    std_close(w["block2.attn.W_o"], 0.05 / math.sqrt(2 * L))


@pytest.mark.parametrize("causal", [True, False])
def test_t_fixup_constants(causal):
    N, d = 4, 64
    w = weights(stack(f"transformer:d={d},heads=4,blocks={N},seq=8,vocab=300,norm=none,causal={causal}".lower(),
                      init="t_fixup"))  # fmt: skip
    c = (9 * N) ** -0.25 if causal else 0.67 * N**-0.25
    xavier = lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out))  # noqa: E731
    std_close(w["block1.attn.W_q"], xavier(d, d))
    std_close(w["block1.attn.W_v"], c * xavier(d, d))
    std_close(w["block1.attn.W_o"], c * xavier(d, d))
    std_close(w["block1.mlp.W_in"], c * xavier(d, 4 * d))
    std_close(w["block1.mlp.W_out"], c * xavier(4 * d, d))
    std_close(w["emb1.W"], d**-0.5 * (9 * N) ** -0.25)  # both: as the authors' code
    assert np.abs(w["block1.attn.W_v"]).max() <= c * math.sqrt(6 / (2 * d))  # uniform


def test_deepnet_beta_on_branch_weights_and_alpha_on_the_shortcut():
    N, d = 2, 64
    spec = stack(f"transformer:d={d},heads=4,blocks={N},seq=8,vocab=300,norm=deepnorm", init="deepnet")
    w = weights(spec)
    beta = (8 * N) ** -0.25
    std_close(w["block2.attn.W_q"], math.sqrt(2 / (2 * d)))
    std_close(w["block2.attn.W_v"], beta * math.sqrt(2 / (2 * d)))
    std_close(w["block2.mlp.W_out"], beta * math.sqrt(2 / (5 * d)))
    std_close(w["emb1.W"], d**-0.5)
    plan = _plan(spec, "float64")
    rows = [row for row in plan.graph.rows if row.block == "block1"]
    block = token_build.make_block(
        rows, {r.index: token_build.sample(plan.draws[r.index], 0, 0, r.index) for r in rows}, np.float64, N
    )
    assert block.alpha == pytest.approx((2 * N) ** 0.25)
    x = np.random.default_rng(0).normal(size=(2, 8, d))
    block.forward(x)  # the add is alpha * x + branch
    add = block.attn_add
    np.testing.assert_allclose(add.z, (2 * N) ** 0.25 * x + add.branch)


def test_small_init_emb():
    w = weights(stack("transformer:d=64,heads=4,blocks=2,seq=8,vocab=300", init="small_init_emb"))
    assert np.abs(w["emb1.W"]).max() <= 1e-4
    std_close(w["emb1.W"], 1e-4 / math.sqrt(3))
    assert not w["emb1.pos.P"].any()
    std_close(w["block1.attn.W_q"], 0.02)


def test_torch_default_is_what_pytorch_modules_draw():
    d, heads = 64, 4
    w = weights(stack(f"transformer:d={d},heads={heads},blocks=1,seq=8,vocab=300", init="torch_default"))
    std_close(w["emb1.W"], 1.0)  # nn.Embedding: N(0, 1)
    bound = math.sqrt(6 / (d + 3 * d))  # xavier_uniform_ on the fused (3d, d) in_proj_weight
    for key in ("W_q", "W_k", "W_v"):
        assert np.abs(w[f"block1.attn.{key}"]).max() <= bound
        std_close(w[f"block1.attn.{key}"], bound / math.sqrt(3))
        assert not w[f"block1.attn.b_{key[-1]}"].any()
    std_close(w["block1.attn.W_o"], 1 / math.sqrt(3 * d))  # out_proj: nn.Linear's ...
    assert not w["block1.attn.b_o"].any()  # ... with a zero bias
    std_close(w["block1.mlp.W_in"], 1 / math.sqrt(3 * d))
    assert w["block1.mlp.b_in"].std() == pytest.approx(1 / math.sqrt(3 * d), rel=0.15)  # a Linear's bias
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mha, emb = torch.nn.MultiheadAttention(d, heads), torch.nn.Embedding(300, d)
    theirs = mha.in_proj_weight.detach().numpy()
    assert np.std(theirs) == pytest.approx(np.std(w["block1.attn.W_q"]), rel=0.05)
    assert np.abs(theirs).max() <= bound and not mha.in_proj_bias.detach().numpy().any()
    assert not mha.out_proj.bias.detach().numpy().any()
    assert np.std(mha.out_proj.weight.detach().numpy()) == pytest.approx(
        np.std(w["block1.attn.W_o"]), rel=0.05
    )
    assert np.std(emb.weight.detach().numpy()) == pytest.approx(1.0, rel=0.02)


def test_keras_default_is_what_keras_layers_draw():
    d, heads = 64, 4
    w = weights(stack(f"transformer:d={d},heads={heads},blocks=1,seq=8,vocab=300", init="keras_default"))
    assert np.abs(w["emb1.W"]).max() <= 0.05  # Embedding: RandomUniform(-0.05, 0.05)
    std_close(w["emb1.W"], 0.05 / math.sqrt(3))
    # MultiHeadAttention: glorot_uniform on a (d, heads, head_dim) kernel, fans (heads*d, head_dim*d)
    std_close(w["block1.attn.W_q"], math.sqrt(2 / (d * (heads + d // heads))))
    std_close(w["block1.attn.W_o"], math.sqrt(2 / (d + d * heads)))  # (heads, head_dim, d)


def test_flax_default_embedding_is_var_one_over_d():
    w = weights(stack("transformer:d=64,heads=4,blocks=1,seq=8,vocab=300", init="flax_default"))
    std_close(w["emb1.W"], 64**-0.5)


ROLES_SPEC = """\
input_shape = "seq=8,vocab=300"

[defaults]
init = "gpt2"

[init]
qkv = "normal:0.05"
out_proj = "normal:0.07"
mlp_in = "uniform:0.3"
mlp_out = "normal:0.11"
embedding = "normal:1.5"

[[layers]]
kind = "embedding"
d = 64

[[layers]]
kind = "transformer"
heads = 4
blocks = 2
act = "swiglu"

[[layers]]
kind = "layernorm"

[[layers]]
kind = "unembedding"
"""


def test_per_role_overrides_land_on_their_weights(tmp_path):
    path = tmp_path / "roles.toml"
    path.write_text(ROLES_SPEC)
    w = weights(load_spec(path).stack.resolve())
    for block in ("block1", "block2"):
        for key in ("W_q", "W_k", "W_v"):
            std_close(w[f"{block}.attn.{key}"], 0.05)
        std_close(w[f"{block}.attn.W_o"], 0.07)
        std_close(w[f"{block}.mlp.W_in"], 0.3 / math.sqrt(3))
        std_close(w[f"{block}.mlp.W_linear"], 0.3 / math.sqrt(3))  # a gated MLP's other half
        std_close(w[f"{block}.mlp.W_out"], 0.11)
    std_close(w["emb1.W"], 1.5)
    std_close(w["emb1.pos.P"], 0.02, rel=0.1)  # not overridden: gpt2's
    std_close(w["unembed1.W"], 0.02)
    result = run("probe", "-c", path, "-f", "json", "--batch", "4")
    rows = {x["name"]: x for x in json.loads(result.stdout)["layers"]}
    assert rows["block1.attn"]["init"] == "qkv=normal:0.05, out_proj=normal:0.07"
    assert rows["emb1"]["weight_std"] == pytest.approx(np.std(w["emb1.W"]), rel=1e-4)


def test_an_unknown_role_is_one_line_at_its_line(tmp_path):
    path = tmp_path / "roles.toml"
    path.write_text(ROLES_SPEC.replace("qkv =", "qvk ="))
    result = run("probe", "-c", path)
    assert result.exit_code == 2
    assert result.output == f"initdiag: error: {path}:7: init: unknown key 'qvk'; did you mean 'qkv'?\n"


# --- memory -----------------------------------------------------------------------------------------


def test_memory_estimate_counts_the_score_matrices_and_bounds_the_peak():
    import tracemalloc

    spec = stack("transformer:d=32,heads=8,blocks=1,seq=128,vocab=50")
    short = stack("transformer:d=32,heads=8,blocks=1,seq=64,vocab=50")
    batch = 8
    scores = batch * 8 * 128 * 128 * 4  # one float32 (batch, heads, seq, seq) array
    growth = estimate_memory(spec, batch, "float32").total - estimate_memory(short, batch, "float32").total
    assert growth >= scores - scores // 4  # the scores, softmax in place (backward: a chunk at a time)
    initdiag.probe(short, batch=1)  # the modules a transformer probe imports are not its arrays
    tracemalloc.start()
    try:
        initdiag.probe(spec, batch=batch)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    need = estimate_memory(spec, batch, "float32").total
    fixed = 8 * (1 << 20) * (1 + (os.cpu_count() or 1))  # float64 chunks of statistics and draws
    assert peak <= need and need - fixed <= 2.5 * peak, (peak, need, fixed)


def test_a_stack_that_does_not_fit_is_refused_with_the_estimate():
    text = "transformer:d=64,heads=8,blocks=2,seq=1024,vocab=50"
    need = estimate_memory(stack(text), 64, "float32").total
    result = run("probe", "--layers", text, "--batch", "64", env={"INITDIAG_MAX_MEMORY": str(need // 2)})
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and line.startswith("initdiag: error: this stack needs about ")
    assert f"{need / 2**30:.1f} GiB" in line or f"{need / 2**20:.0f} MiB" in line, (line, need)


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--layers", "transformer:d=64,heads=5,seq=8"], "heads = 5 does not divide d = 64"),
        (["--layers", "transformer:d=64,heads=4"], "a transformer needs seq"),
        (["--layers", "transformer:d=64,heads=4,seq=8,foo=1"], "unknown key 'foo'"),
        (["--layers", "transformer:d=64,heads=4,seq=8,norm=prenorm"], "did you mean 'deepnorm'?"),
        (["--layers", "transformer:d=64,heads=4,seq=8,blocks=0"], "blocks must be a positive integer"),
        (["--layers", "transformer:d=64,heads=4,seq=8,vocab=1"], "vocab must be at least 2"),
        (["--layers", "transformer:d=64,heads=4,seq=8,vocab=50,positions=rope"], "unknown positions 'rope'"),
        (["--layers", "transformer:d=64,heads=4,seq=8,tied=true"], "tied go with vocab"),
        (["--layers", "transformer:d=64,heads=4,seq=8,act=foo"], "unknown activation 'foo'"),
        (["--layers", "transformer:d=64,heads=4,seq=8,norm=post,sandwich=true"], "sandwich norms go with"),
        (["--layers", "transformer:d=64,heads=4,seq=8,alpha=2"], "alpha is deepnorm's shortcut scale"),
        (
            ["--layers", "transformer:d=64,heads=4,seq=8", "--norm", "layer"],
            "--norm shapes a dense shorthand",
        ),
        (["--layers", "transformer:d=64,heads=4,seq=8,vocab=40", "--init", "lsuv"], "lsuv rescales"),
        (["--layers", "transformer:d=64,heads=4,seq=8,vocab=40", "--init", "gpt2:std=0"], "std must be > 0"),
    ],
)
def test_bad_transformer_input_is_one_line_exit_2(args, words):
    result = run("probe", *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("initdiag: error: ") and words in lines[0], lines


def test_token_ids_from_a_file(tmp_path):
    ids = np.random.default_rng(1).integers(0, 50, size=(3, 8))
    np.save(tmp_path / "ids.npy", ids)
    result = initdiag.probe(SHORT, input=f"tokens:{tmp_path / 'ids.npy'}")
    assert result.settings.batch == 3
    np.save(tmp_path / "bad.npy", ids + 50)
    result = run("probe", "--layers", SHORT, "--input", f"tokens:{tmp_path / 'bad.npy'}")
    assert result.exit_code == 2 and "token ids must be in [0, 50)" in result.output


# --- what the backward gain means on a residual stream --------------------------------------------------


def _gains(result):
    return {x.name: x.backward_gain for x in result.layers}


def test_stream_backward_gains_do_not_depend_on_the_stream_scale(tmp_path):
    """In a Pre-LN stack with a final norm every read of the stream is through a norm, so the loss does
    not change when the whole stream is rescaled, and its gradient is 1/scale times larger: the plain
    ratio of gradients would call a small stream 'exploding'. Drawing the embedding, the positions and
    the two projections that add to the stream 10x smaller (the same draws, scaled: the whole stream
    scaled) leaves the scale-free backward gains as they were, while the plain gradient grew 100x."""
    base = ROLES_SPEC.replace('act = "swiglu"\n', "").split("[init]")[0]
    layers = ROLES_SPEC.split('embedding = "normal:1.5"\n')[1].replace('act = "swiglu"\n', "")
    results = []
    for c in (1.0, 0.1):  # (0.01 would bring the stream's variance near the norms' eps, 1e-5)
        path = tmp_path / f"s{c}.toml"
        roles = "".join(f'{role} = "normal:{std * c:g}"\n' for role, std in
                        (("embedding", 1), ("positions", 1), ("out_proj", 0.05), ("mlp_out", 0.05)))  # fmt: skip
        path.write_text(f"{base}[init]\n{roles}{layers}")
        results.append(initdiag.probe(load_spec(path).stack, batch=16, dtype="float64"))
    big, small = (_gains(r) for r in results)
    for name in ("emb1.pos", "block1.attn_add", "block1.mlp_add", "block2.attn_add", "block2.mlp_add", "ln1"):
        assert small[name] == pytest.approx(big[name], rel=1e-3), name
    plain_big, plain = ({x.name: x.grad_input_var for x in r.layers} for r in results)
    for name in ("emb1.pos", "block1.attn_add", "block2.mlp_add"):
        assert plain[name] / plain_big[name] == pytest.approx(100, rel=1e-3)
    assert results[1].summary.verdict == results[0].summary.verdict


def test_a_textbook_gpt2_pre_ln_stack_is_not_called_exploding():
    result = initdiag.probe("transformer:d=64,heads=4,blocks=6,seq=16,vocab=200", init="gpt2", batch=16)
    assert result.summary.verdict == "ok", [(x.name, x.flags) for x in result.layers if x.flags]
    stream = [x.backward_gain for x in result.layers if x.kind == "stream_add"]
    assert all(0.5 < g < 2 for g in stream), stream
