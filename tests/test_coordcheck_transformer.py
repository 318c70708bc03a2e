"""coordcheck of a transformer: the numpy decoder's training against the same training written in
PyTorch (F.scaled_dot_product_attention, F.layer_norm, torch.optim.Adam/SGD with a parameter group
per tensor), its gradient against central differences, each tensor's init and learning rate
against Tensor Programs V's Table 3, and the coordinate check's verdicts: μP flat, SP growing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from initdiag.analysis.coordcheck import CoordSettings, coordcheck
from initdiag.analysis.coordtransformer import (
    Model,
    batch,
    initial_state,
    parse_transformer,
    run_transformer,
    softmax_xent,
    tensors,
)
from initdiag.cli import app
from initdiag.core.init_parser import get_initializer
from initdiag.core.parametrizations import get_parametrization

runner = CliRunner()
TINY = "transformer:d=W,heads=2,blocks=2,seq=8,vocab=32"


def job(text=TINY, n=32, base=16, param="mup", init="he", seed=0, **settings):
    options = {"layers": text, "widths": [base, n], "batch": 4, "steps": 3, "dtype": "float64", **settings}
    return {
        "stack": parse_transformer(text),
        "n": n,
        "base": base,
        "param": get_parametrization(param),
        "seed": seed,
        "init": get_initializer(init),
        "settings": CoordSettings(**options),
    }


# --- against PyTorch ------------------------------------------------------------------------------


def torch_run(the_job):
    """The same run in PyTorch, float64: the records (l1 of emb, each block's attention and MLP
    branch and stream, the logits) at every step, and the losses."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    stack, n, s = the_job["stack"], the_job["n"], the_job["settings"]
    values, lrs, epss, attn_scale = initial_state(the_job)
    ids, labels = (torch.from_numpy(a) for a in batch(stack, s))
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in values.items()}
    groups = [{"params": [P[k]], "lr": lrs[k], "eps": epss[k]} for k in P]
    if s.optimizer == "adam":
        opt = torch.optim.Adam(groups, betas=(0.9, 0.999))
    else:
        opt = torch.optim.SGD(groups, momentum=0.9 if s.optimizer == "momentum" else 0.0)
    d, heads = stack.d(n), stack.heads
    act = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh}[s.act]

    def ln(x, key):
        return F.layer_norm(x, (d,), P[key + ".gamma"], P[key + ".beta"], eps=1e-5)

    def attention(x, p):
        qkv = x @ P[p + "attn.W_qkv"] + P[p + "attn.b_qkv"]
        q, k, v = (t.reshape(*x.shape[:2], heads, d // heads).transpose(1, 2) for t in qkv.split(d, dim=-1))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=attn_scale)
        return o.transpose(1, 2).reshape(x.shape) @ P[p + "attn.W_o"] + P[p + "attn.b_o"]

    def mlp(x, p):
        return act(x @ P[p + "mlp.W_in"] + P[p + "mlp.b_in"]) @ P[p + "mlp.W_out"] + P[p + "mlp.b_out"]

    records, losses, first = [], [], None
    for t in range(s.steps + 1):
        x = P["emb.W"][ids] + P["pos.P"][: stack.seq]
        out = [x]
        for b in range(1, stack.blocks + 1):
            p = f"block{b}."
            if stack.norm == "pre":
                a = attention(ln(x, p + "ln1"), p)
                x = x + a
                m = mlp(ln(x, p + "ln2"), p)
                x = x + m
            else:
                a = attention(x, p)
                x = ln(x + a, p + "ln1")
                m = mlp(x, p)
                x = ln(x + m, p + "ln2")
            out += [a, m, x]
        logits = (ln(x, "ln_f") if stack.norm == "pre" else x) @ P["unembed.W"]
        out.append(logits)
        now = [o.detach().numpy() for o in out]
        first = first or now
        records.append(
            [(np.mean(np.abs(o)), np.std(o), np.mean(np.abs(o - f))) for o, f in zip(now, first, strict=True)]
        )
        loss = F.cross_entropy(logits.reshape(-1, stack.vocab), labels.reshape(-1))
        losses.append(float(loss.detach()))
        if t < s.steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return np.array(records).transpose(2, 1, 0), np.array(losses)  # (l1|std|delta, layers, steps + 1)


@pytest.mark.parametrize(
    ("param", "optimizer", "norm", "act"),
    [("mup", "adam", "pre", "relu"), ("sp", "adam", "post", "gelu"), ("mup", "sgd", "pre", "tanh"),
     ("ntk", "momentum", "post", "relu"), ("mup:readout=normal", "adam", "pre", "gelu")],
)  # fmt: skip
def test_training_matches_pytorch(param, optimizer, norm, act):
    text = TINY + f",norm={norm}"
    the_job = job(text, param=param, optimizer=optimizer, act=act, lr=0.01 if optimizer == "adam" else 0.1)
    expected, expected_loss = torch_run(the_job)
    l1, std, delta, loss = run_transformer(the_job)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-10)
    np.testing.assert_allclose(np.stack([l1, std, delta]), expected, rtol=1e-8, atol=1e-12)
    assert loss[-1] < loss[0]  # it trains


# --- the gradient ---------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_the_gradient_is_the_loss_slope(norm):
    """Model.backward against central differences on a few entries of every tensor (float64)."""
    the_job = job(TINY + f",norm={norm}", n=16, param="sp", act="tanh")
    values, _, _, scale = initial_state(the_job)
    for key in values:
        if key.endswith("gamma"):
            values[key] += np.random.default_rng(1).normal(0, 0.1, values[key].shape)
    stack, s = the_job["stack"], the_job["settings"]
    ids, labels = batch(stack, s)
    model = Model(stack, 16, values, scale, "tanh")
    logits, _ = model.forward(ids)
    grads = model.backward(softmax_xent(logits, labels)[1])
    rng = np.random.default_rng(0)
    for key, value in values.items():
        for flat in rng.choice(value.size, size=min(3, value.size), replace=False):
            index = np.unravel_index(flat, value.shape)
            old, h = value[index], 1e-6
            value[index] = old + h
            up = softmax_xent(model.forward(ids)[0], labels)[0]
            value[index] = old - h
            down = softmax_xent(model.forward(ids)[0], labels)[0]
            value[index] = old
            assert grads[key][index] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9), key


# --- the rules ------------------------------------------------------------------------------------


def test_each_tensor_starts_and_steps_by_table_3():
    """At width n = 4 x base: μP's hidden weights have 1/4 of He's variance at base fans (so He's at
    their own), embeddings and positions keep theirs, the readout and the query start at 0, LayerNorm
    gains at 1; Adam's learning rate is lr/4 on hidden and output weights, lr on the rest. The
    attention logits are scaled by sqrt(head_dim_0)/head_dim (1/head_dim up to the base's constant);
    SP's by 1/sqrt(head_dim)."""
    the_job = job(n=64, base=16, lr=1e-3, optimizer="adam")
    values, lrs, _, scale = initial_state(the_job)
    d = 64
    assert np.std(values["block1.mlp.W_in"]) == pytest.approx(math.sqrt(2 / d), rel=0.03)
    assert np.std(values["block1.attn.W_qkv"][:, d:]) == pytest.approx(math.sqrt(2 / d), rel=0.03)
    assert not values["block1.attn.W_qkv"][:, :d].any() and not values["unembed.W"].any()
    assert np.std(values["emb.W"]) == pytest.approx(math.sqrt(2 / 32), rel=0.03)  # He at (vocab, d): 2/vocab
    assert np.all(values["ln_f.gamma"] == 1) and np.all(values["block2.ln1.beta"] == 0)
    roles = {t.key: t.role for t in tensors(the_job["stack"], d)}
    for key, role in roles.items():
        assert lrs[key] == pytest.approx(1e-3 / 4 if role in ("hidden", "output") else 1e-3), key
    head_dim, base_head_dim = d // 2, 16 // 2
    assert scale == pytest.approx(math.sqrt(base_head_dim) / head_dim)
    assert initial_state(job(n=16, base=16))[3] == pytest.approx(
        1 / math.sqrt(base_head_dim)
    )  # μP = SP at base
    assert initial_state(job(n=64, base=16, param="sp"))[3] == pytest.approx(1 / math.sqrt(head_dim))
    sp_values, sp_lrs, _, _ = initial_state(job(n=64, base=16, param="sp"))
    assert np.std(sp_values["unembed.W"]) == pytest.approx(math.sqrt(2 / d), rel=0.05)
    assert set(sp_lrs.values()) == {1e-3}


# --- the check ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report():
    settings = CoordSettings(layers=TINY, widths=[32, 64, 128], params=["sp", "mup"], steps=3, seeds=3, batch=8,
                             lr=3e-3, jobs=1)  # fmt: skip
    return coordcheck(settings)


def test_mup_keeps_a_transformer_flat_and_sp_does_not(report):
    """TP5 / mup's transformer coord check: under μP (zero readout and query, 1/head_dim attention,
    Table 3's Adam rates) every recorded output stays flat at every step; under SP the blocks and the
    logits grow with width after the first Adam step."""
    sp, mup = report.results
    names = [layer.name for layer in mup.layers]
    assert names == ["emb", "block1.attn", "block1.mlp", "block1", "block2.attn", "block2.mlp", "block2",
                     "logits"]  # fmt: skip
    assert mup.verdict == "ok", mup.reasons
    assert all(v == "stable" for layer in sp.layers for v in layer.verdicts[:1])  # init: width-stable
    assert sp.verdict == "fail" and "grows" in sp.flags
    assert sp.layers[-1].slope[2] > 0.2 and sp.layers[-2].slope[2] > 0.2


def test_the_command_line(tmp_path):
    args = [
        "coordcheck",
        "--layers",
        TINY,
        "--widths",
        "16,32",
        "--steps",
        "1",
        "--seeds",
        "1",
        "--batch",
        "4",
    ]
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["stack"].startswith("transformer d=W · 2 heads · 2 blocks")
    assert [layer["name"] for layer in data["results"][1]["layers"]][-1] == "logits"
    table = runner.invoke(app, args, env={"COLUMNS": "120"})
    assert table.exit_code == 0 and "block2.attn" in table.stdout


@pytest.mark.parametrize(
    ("layers", "extra", "message"),
    [
        ("transformer:d=W,heads=2,blocks=1,seq=8", [], "give vocab"),
        ("transformer:d=64,heads=2,blocks=1,seq=8,vocab=8", [], "d must be W or a multiple of it"),
        ("transformer:d=W,heads=3,blocks=1,seq=8,vocab=8", [], "is not a multiple of heads = 3"),
        ("transformer:d=W,heads=2,blocks=0,seq=8,vocab=8", [], "blocks must be an integer >= 1"),
        ("transformer:d=W,heads=2,blocks=1,seq=8,vocab=8,norm=sandwich", [], "norm must be pre or post"),
        ("transformer:d=W,heads=2,blocks=1,seq=8,vocab=8,head=2", [], "unknown key 'head'; did you mean 'heads'"),
        (TINY, ["--loss", "mse"], "--data random and --loss xent"),
        (TINY, ["--widths", "64,8192"], "would take about"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(layers, extra, message, monkeypatch):
    monkeypatch.setenv("INITDIAG_MAX_SECONDS", "60")
    result = runner.invoke(app, ["coordcheck", "--layers", layers, "--widths", "16,32", *extra])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_random_query_makes_mup_attention_shrink_with_width_at_init():
    """mup:readout=normal keeps the query random: with logits scaled by 1/head_dim, attention is more
    uniform at wide widths and its output (an average over more tokens) smaller: the docs' slope."""
    settings = CoordSettings(layers="transformer:d=W,heads=2,blocks=2,seq=16,vocab=64", widths=[64, 128, 256],
                             params=["mup:readout=normal"], steps=1, seeds=3, batch=8, jobs=1)  # fmt: skip
    attn = coordcheck(settings).results[0].layers[1]
    assert attn.name == "block1.attn" and attn.slope[0] == pytest.approx(-0.17, abs=0.05)
