"""initdiag audit: which rule drew each tensor, and the flags.

Independent truths: tensors drawn by PyTorch's own ``torch.nn.init`` functions (or, for the
truncated normals of Keras and JAX, by rejection sampling in numpy), the Marchenko–Pastur edge of a
random matrix, and state dicts with faults planted at known tensors.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from initdiag.analysis.audit import audit, fans_of, infer_role
from initdiag.analysis.init_rules import best_rule, families, weight_rules
from initdiag.cli import app

runner = CliRunner()
OUT, IN = 384, 256  # fan_in 256, fan_out 384: every variance-scaling preset has its own std


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def truncated(rng, std: float, shape) -> np.ndarray:
    """Keras/JAX's truncated normal of variance std^2: N(0, s) cut at +-2s, s = std / 0.8796."""
    s = std / 0.87962566103423978
    out = rng.normal(0, s, size=int(np.prod(shape)) * 2)
    return out[np.abs(out) < 2 * s][: int(np.prod(shape))].reshape(shape)


def test_the_truncated_family_matches_its_closed_form():
    """Kurtosis of N(0,1) cut at +-2: E[x^4]/E[x^2]^2 - 3 with E[x^2] = 1 - 2a phi(a)/Z and
    E[x^4] = 3 - (2a^3 + 6a) phi(a)/Z (a = 2, Z = Phi(2) - Phi(-2))."""
    a, z = 2.0, math.erf(2 / math.sqrt(2))
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    m2 = 1 - 2 * a * phi / z
    m4 = 3 - (2 * a**3 + 6 * a) * phi / z
    assert families()["truncated"].kurtosis == pytest.approx(m4 / m2**2 - 3, rel=1e-6)
    assert families()["uniform"].kurtosis == pytest.approx(-1.2)
    assert families()["normal"].kurtosis_se == pytest.approx(math.sqrt(24))


def _torch_draws():
    torch = pytest.importorskip(
        "torch", reason="the torch extra is not installed (pip install 'initdiag[torch]')"
    )
    init = torch.nn.init

    def draw(fn):
        def make(seed):
            torch.manual_seed(seed)
            w = torch.empty(OUT, IN, dtype=torch.float64)
            fn(w)
            return w.numpy()

        return make

    return {
        "torch_default": draw(lambda w: init.kaiming_uniform_(w, a=math.sqrt(5))),
        "normal:0.02": draw(lambda w: init.normal_(w, 0, 0.02)),
        "he_normal": draw(lambda w: init.kaiming_normal_(w, nonlinearity="relu")),
        "he_uniform": draw(lambda w: init.kaiming_uniform_(w, nonlinearity="relu")),
        "he_normal:mode=fan_out": draw(
            lambda w: init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
        ),
        "xavier_normal": draw(init.xavier_normal_),
        "xavier_uniform": draw(init.xavier_uniform_),
        "lecun_normal": draw(lambda w: init.kaiming_normal_(w, nonlinearity="linear")),
        "lecun_uniform": draw(lambda w: init.kaiming_uniform_(w, nonlinearity="linear")),
        "orthogonal": draw(init.orthogonal_),
        "trunc_normal:0.02": draw(
            lambda w: init.trunc_normal_(
                w, std=0.02 / 0.87962566103423978, a=-0.04 / 0.87962566103423978, b=0.04 / 0.87962566103423978
            )
        ),
    }


def _numpy_draws():
    def keras(std):
        return lambda seed: truncated(np.random.default_rng(seed), std, (OUT, IN))

    return {
        "he_normal:distribution=truncated_normal": keras(math.sqrt(2 / IN)),
        "lecun_normal:distribution=truncated_normal": keras(math.sqrt(1 / IN)),
        "xavier_normal:distribution=truncated_normal": keras(math.sqrt(2 / (IN + OUT))),
        "zeros": lambda seed: np.zeros((OUT, IN)),
        "ones": lambda seed: np.ones((OUT, IN)),
        "constant:0.1": lambda seed: np.full((OUT, IN), 0.1),
    }


@pytest.mark.parametrize("seed", range(3))
def test_every_rule_drawn_by_pytorch_is_identified(seed):
    for expected, draw in _torch_draws().items():
        t = audit({"layer.weight": draw(seed)}).tensors[0]
        assert t.rule == expected, (expected, t.rule, t.fit, t.alike)
        assert t.fit >= 1e-3


@pytest.mark.parametrize("seed", range(3))
def test_truncated_and_constant_rules_are_identified(seed):
    for expected, draw in _numpy_draws().items():
        t = audit({"layer.weight": draw(seed)}).tensors[0]
        assert t.rule == expected, (expected, t.rule, t.fit)


def test_gpt2_residual_rule_needs_the_block_count():
    rng = np.random.default_rng(0)
    blocks = 12
    state = {
        f"h.{i}.mlp.c_proj.weight": rng.normal(0, 0.02 / math.sqrt(2 * blocks), (768, 768))
        for i in range(blocks)
    }
    result = audit(state)
    assert {t.rule for t in result.tensors} == {f"normal:{0.02 / math.sqrt(24):.4g}"}
    assert any("GPT-2's residual" in note for note in result.summary.notes)


def test_pytorch_default_is_told_from_normal_002_every_time():
    """768 x 768: 0.02083 (uniform) against 0.02 (normal), 4% apart with a 0.09% sampling error."""
    rng = np.random.default_rng(7)
    bound = 1 / math.sqrt(768)
    for _ in range(15):
        a = audit({"w.weight": rng.uniform(-bound, bound, (768, 768))}).tensors[0]
        b = audit({"w.weight": rng.normal(0, 0.02, (768, 768))}).tensors[0]
        assert (a.rule, b.rule) == ("torch_default", "normal:0.02")
        # without the shape, the std alone still separates them by tens of standard errors
        assert abs(a.std / 0.02 - 1) > 30 * math.sqrt(1 / (2 * 768 * 768))


def test_a_std_no_rule_names_is_reported_by_family_and_roundest_std():
    rng = np.random.default_rng(1)
    t = audit({"pos.weight": rng.normal(0, 0.01, (128, 256))}).tensors[0]
    assert t.rule == "normal:0.01" and "no named rule" in t.rule_note
    heavy = rng.standard_t(3, size=(256, 256)) * 0.02  # heavy tails: no init draws this
    t = audit({"trained.weight": heavy}).tensors[0]
    assert t.fit < 1e-3
    notes = audit({"trained.weight": heavy}).summary.notes
    assert "1 tensor matches no init rule" in " ".join(notes)


def test_fans_follow_pytorch_and_keras_layouts():
    assert fans_of((64, 3, 5, 5), "torch") == (75, 1600)
    assert fans_of((5, 5, 3, 64), "keras") == (75, 1600)
    assert fans_of((10, 784), "torch") == (784, 10)
    assert fans_of((784, 10), "keras") == (784, 10)
    rng = np.random.default_rng(0)
    he = rng.normal(0, math.sqrt(2 / 75), (5, 5, 3, 64))
    assert audit({"conv.kernel": he}, layout="keras").tensors[0].rule == "he_normal"
    assert audit({"conv.weight": he.transpose(3, 2, 0, 1)}).tensors[0].rule == "he_normal"


def test_matrices_are_weights_by_name_and_others_are_not():
    shapes = {"fc.w": (8, 8), "mlp/~/linear_0/w": (8, 8), "dense/kernel:0": (8, 8), "attn.in_proj_weight": (24, 8),
              "gru.weight_hh_l0": (24, 8), "w1": (8, 8), "cls_token": (1, 1, 8), "A_log": (8, 8)}  # fmt: skip
    roles = {name: infer_role(name, shape, shapes) for name, shape in shapes.items()}
    assert roles == {
        **{name: "weight" for name in list(shapes)[:6]},
        "cls_token": "embedding",
        "A_log": "other",
    }


def test_roles_from_names():
    shapes = {"ln.weight": (8,), "ln.bias": (8,), "fc.weight": (8, 8), "fc.bias": (8,), "emb.weight": (10, 8)}
    roles = {name: infer_role(name, shape, shapes) for name, shape in shapes.items()}
    assert roles == {"ln.weight": "norm_weight", "ln.bias": "norm_bias", "fc.weight": "weight", "fc.bias": "bias",
                     "emb.weight": "embedding"}  # fmt: skip


# -- flags ------------------------------------------------------------------------------------------


def gpt2_state(rng, d=256, blocks=6, vocab=1000):
    """A GPT-2-shaped state dict as GPT-2's _init_weights leaves it."""
    state = {"wte.weight": rng.normal(0, 0.02, (vocab, d)), "wpe.weight": rng.normal(0, 0.01, (128, d))}
    residual = 0.02 / math.sqrt(2 * blocks)
    for i in range(blocks):
        p = f"h.{i}."
        state |= {
            p + "ln_1.weight": np.ones(d), p + "ln_1.bias": np.zeros(d),
            p + "attn.c_attn.weight": rng.normal(0, 0.02, (3 * d, d)), p + "attn.c_attn.bias": np.zeros(3 * d),
            p + "attn.c_proj.weight": rng.normal(0, residual, (d, d)), p + "attn.c_proj.bias": np.zeros(d),
            p + "ln_2.weight": np.ones(d), p + "ln_2.bias": np.zeros(d),
            p + "mlp.c_fc.weight": rng.normal(0, 0.02, (4 * d, d)), p + "mlp.c_fc.bias": np.zeros(4 * d),
            p + "mlp.c_proj.weight": rng.normal(0, residual, (d, 4 * d)), p + "mlp.c_proj.bias": np.zeros(d),
        }  # fmt: skip
    state |= {"ln_f.weight": np.ones(d), "ln_f.bias": np.zeros(d)}
    state["lm_head.weight"] = state["wte.weight"]
    return state


def test_a_clean_gpt2_state_dict_is_ok():
    result = audit(gpt2_state(np.random.default_rng(2)))
    assert result.summary.verdict == "ok", result.summary.reasons
    assert all(t.fit >= 1e-3 for t in result.tensors)


@pytest.mark.parametrize("seed", range(3))
def test_planted_faults_are_flagged_at_exactly_those_tensors(seed):
    """One LayerNorm gamma drawn from N(0, 0.02), and block 4 re-initialised with PyTorch's default."""
    rng = np.random.default_rng(seed)
    state = gpt2_state(rng)
    state["h.2.ln_2.weight"] = rng.normal(0, 0.02, 256)
    reinit = set()
    for name in list(state):
        if name.startswith("h.4.") and state[name].ndim == 2:
            bound = 1 / math.sqrt(state[name].shape[1])
            state[name] = rng.uniform(-bound, bound, state[name].shape)
            bias = name.replace("weight", "bias")
            state[bias] = rng.uniform(-bound, bound, state[bias].shape)
            reinit |= {name, bias}
    result = audit(state)
    flagged = {t.name: set(t.flags) for t in result.tensors if t.flags}
    assert flagged == {
        "h.2.ln_2.weight": {"norm", "sibling"},
        **{name: {"sibling", "block"} for name in reinit},
    }
    assert result.summary.verdict == "warn"
    assert sum("block h.4 stands apart" in r for r in result.summary.reasons) == 1


def test_a_depth_scaled_init_is_not_called_a_sibling():
    rng = np.random.default_rng(3)
    state = {f"layers.{i}.fc.weight": rng.normal(0, 0.02 / math.sqrt(i + 1), (256, 256)) for i in range(8)}
    assert audit(state).summary.flags == []


def test_an_untied_head_with_another_std_is_flagged():
    rng = np.random.default_rng(4)
    state = {
        "embed.weight": rng.normal(0, 0.02, (500, 128)),
        "lm_head.weight": rng.normal(0, 0.05, (500, 128)),
    }
    (head,) = [t for t in audit(state).tensors if t.name == "lm_head.weight"]
    assert head.flags == ["sibling"] and "untied" in head.reasons[0]
    state["lm_head.weight"] = state["embed.weight"]
    assert audit(state).summary.flags == []


def test_norm_bias_and_a_zero_readout():
    state = {"norm.weight": np.ones(64), "norm.bias": np.full(64, 0.1), "fc.weight": np.zeros((64, 64))}
    result = audit(state)
    flags = {t.name: t.flags for t in result.tensors}
    assert flags == {"norm.weight": [], "norm.bias": ["norm"], "fc.weight": []}
    assert result.summary.verdict == "warn"
    assert "zero readout" in result.tensors[2].rule_note


def test_nonfinite_values_are_reported():
    w = np.random.default_rng(0).normal(0, 0.02, (64, 64))
    w[0, 0] = np.nan
    t = audit({"fc.weight": w}).tensors[0]
    assert "nonfinite" in t.flags and math.isfinite(t.std)
    assert t.reasons == ["fc.weight: 1 of 4096 values is nan or inf"]


@pytest.mark.parametrize(
    ("shape", "draw"),
    [
        ((768, 768), "normal"),
        ((3072, 768), "uniform"),
        ((64, 576), "normal"),
        ((1000, 64), "truncated"),
        ((32, 32), "normal"),
    ],
)
def test_random_matrices_stay_inside_the_marchenko_pastur_edge(shape, draw):
    rng = np.random.default_rng(11)
    for _ in range(10 if min(shape) < 512 else 4):
        w = {"normal": lambda: rng.normal(0, 0.05, shape), "uniform": lambda: rng.uniform(-1, 1, shape),
             "truncated": lambda: truncated(rng, 0.05, shape)}[draw]()  # fmt: skip
        t = audit({"m.weight": w}).tensors[0]
        assert "spectrum" not in t.flags, t.spectrum_ratio
        if min(shape) >= 512:
            assert 0.98 < t.spectrum_ratio < 1.01  # the edge itself, for a large matrix


def test_a_spike_beyond_the_edge_is_flagged():
    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.02, (512, 512))
    u, v = rng.normal(size=512), rng.normal(size=512)
    spike = 1.5 * 0.02 * (2 * math.sqrt(512)) * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v))
    t = audit({"m.weight": w + spike}).tensors[0]
    assert "spectrum" in t.flags and t.spectrum_outliers == 1 and t.spectrum_ratio > 1.2


# -- files and the command line --------------------------------------------------------------------


def test_cli_audits_an_npz_and_fails_on_a_flag(tmp_path):
    rng = np.random.default_rng(0)
    state = gpt2_state(rng, d=128, blocks=4, vocab=300)
    state["h.1.ln_1.weight"] = rng.normal(0, 0.02, 128)
    path = tmp_path / "gpt.npz"
    np.savez(path, **state)
    table = run("audit", str(path))
    assert table.exit_code == 0, table.output
    assert "h.1.ln_1.weight" in table.stdout and "norm" in table.stdout and "! warn" in table.stdout
    failing = run("audit", str(path), "--fail-on", "norm")
    assert failing.exit_code == 1
    data = json.loads(run("audit", str(path), "--format", "json").stdout)
    assert data["summary"]["flags"] == ["norm", "sibling"]
    assert {"name", "shape", "fan_in", "fan_out", "mean", "std", "rule", "fit", "flags"} <= set(
        data["tensors"][0]
    )
    csv = run("audit", str(path), "--format", "csv").stdout.splitlines()
    assert csv[0].startswith("name,shape,role") and len(csv) == len(state)  # lm_head is wte, listed once
    assert run("audit", str(path), "--format", "markdown").stdout.startswith("**initdiag audit**")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nope.npz"], "file not found"),
        (["x.txt"], "unknown weights format"),
        ([], "give a weights file or --model"),
        (["w.npz", "--fail-on", "dead"], "unknown flag 'dead'"),
        (["w.npz", "--layout", "jax"], "--layout 'jax' is not one of torch, keras"),
        (["w.npz", "--model-arg", "a=1"], "--model-arg goes with --model"),
        (["corrupt.npz"], "not a readable .npz"),
        (["ints.npz"], "no floating-point tensors"),
    ],
)
def test_bad_audit_input_is_one_line_and_exit_2(tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    np.savez("w.npz", a=np.zeros((4, 4)))
    np.savez("ints.npz", steps=np.arange(3))
    (tmp_path / "x.txt").write_text("x")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    result = run("audit", *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr


# -- PyTorch files and modules ----------------------------------------------------------------------


@pytest.fixture
def torch():
    return pytest.importorskip(
        "torch", reason="the torch extra is not installed (pip install 'initdiag[torch]')"
    )


def test_pt_safetensors_and_npz_give_the_same_audit(torch, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.LayerNorm(256), torch.nn.Linear(256, 10))
    state = model.state_dict()
    torch.save(state, tmp_path / "m.pt")
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "ckpt.pth")
    save_file(state, tmp_path / "m.safetensors")
    np.savez(tmp_path / "m.npz", **{k: v.numpy() for k, v in state.items()})
    outputs = []
    for name in ("m.pt", "ckpt.pth", "m.safetensors", "m.npz"):
        result = run("audit", str(tmp_path / name), "--format", "json")
        assert result.exit_code == 0, result.output
        outputs.append(sorted((t["name"], t["rule"], t["std"]) for t in json.loads(result.stdout)["tensors"]))
    assert all(o == outputs[0] for o in outputs)
    assert [rule for _, rule, _ in outputs[0]] == ["torch_default", "torch_default", "zeros", "ones",
                                                   "torch_default", "torch_default"]  # fmt: skip


def test_bfloat16_safetensors_are_read(torch, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file({"fc.weight": (torch.randn(512, 512) * 0.02).bfloat16()}, tmp_path / "bf16.safetensors")
    result = run("audit", str(tmp_path / "bf16.safetensors"), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tensors"][0]["std"] == pytest.approx(0.02, rel=0.01)


def test_a_pickle_with_code_and_a_corrupt_safetensors_are_refused(torch, tmp_path):
    torch.save(torch.nn.Linear(4, 4), tmp_path / "module.pt")  # a pickled module, not a state dict
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    for name, expected in (
        ("module.pt", "weights_only=True"),
        ("bad.safetensors", "not a readable .safetensors"),
    ):
        result = run("audit", str(tmp_path / name))
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], result.stderr


def test_audit_of_a_module_takes_roles_from_its_types(torch, tmp_path):
    """A wrapper that draws every parameter from N(0, 0.02), LayerNorm gains included (a common bug)."""
    (tmp_path / "nets.py").write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self, width=256):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(width, width)\n"
        "        self.scale = torch.nn.LayerNorm(width)  # a name that does not say norm\n"
        "        for p in self.parameters():\n"
        "            torch.nn.init.normal_(p, 0, 0.02)\n"
    )
    result = run("audit", "--model", f"{tmp_path / 'nets.py'}:Net", "--format", "json")
    assert result.exit_code == 0, result.output
    tensors = {t["name"]: t for t in json.loads(result.stdout)["tensors"]}
    assert tensors["scale.weight"]["role"] == "norm_weight" and tensors["scale.weight"]["flags"] == ["norm"]
    assert tensors["scale.bias"]["flags"] == ["norm"]
    assert tensors["fc.weight"]["rule"] == "normal:0.02"
    from initdiag.torch import audit_module

    assert audit_module(torch.nn.Linear(300, 300)).tensors[0].rule == "torch_default"


def test_rule_fit_probabilities_are_calibrated():
    """For true draws the fit is uniform on [0, 1]: about 10% of draws fall below 0.1."""
    rng = np.random.default_rng(9)
    fits = [best_rule(rng.normal(0, 0.02, 4096), weight_rules(64, 64, None)).fit for _ in range(300)]
    assert 0.04 < np.mean(np.array(fits) < 0.1) < 0.18


# -- zeros and constants: information, unless nothing can tell the units apart ----------------------


def _mlp(torch, fill=None, readout=None, bias=None, dropout=0.0):
    """Linear(32, 64), ReLU, [Dropout], Linear(64, 10): torch's default, with the weights, the readout
    or the biases set to a constant when asked."""
    torch.manual_seed(0)
    layers = [torch.nn.Linear(32, 64), torch.nn.ReLU()]
    layers += [torch.nn.Dropout(dropout)] if dropout else []
    model = torch.nn.Sequential(*layers, torch.nn.Linear(64, 10))
    first, last = model[0], model[len(model) - 1]
    with torch.no_grad():
        if fill is not None:
            first.weight.fill_(fill)
        if readout is not None:
            last.weight.fill_(readout)
        if bias is not None:
            first.bias.fill_(bias)
            last.bias.fill_(bias)
    return model


def _distinct_rows_after_steps(torch, model, steps=3):
    """How many distinct rows the first Linear's weight has after a few SGD steps on cross-entropy
    (the independent truth: do its units separate?)."""
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 32, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return len(torch.unique(model[0].weight.detach(), dim=0))


def test_a_zero_readout_is_information_and_trains(torch):
    from initdiag.torch import audit_module

    model = _mlp(torch, readout=0.0)
    with torch.no_grad():
        model[2].bias.zero_()
    result = audit_module(model)
    head = result.tensors[2]
    assert result.summary.verdict == "ok" and head.flags == [] and head.rule == "zeros"
    assert "zero readout" in head.rule_note and any("zero init: 2.weight" in n for n in result.summary.notes)
    # the truth: its units (and the hidden ones below it) separate within a few steps
    assert _distinct_rows_after_steps(torch, model) == 64
    assert len(torch.unique(model[2].weight.detach(), dim=0)) == 10


def test_constant_weights_with_nothing_random_fail_and_cannot_train(torch):
    from initdiag.torch import audit_module

    for fill in (0.1, 0.0):
        model = _mlp(torch, fill=fill, readout=0.05, bias=0.0)
        result = audit_module(model)
        flags = {t.name: t.flags for t in result.tensors}
        assert flags["0.weight"] == ["symmetric"] and flags["2.weight"] == [], flags
        assert result.summary.verdict == "fail"
        assert "unless dropout" not in result.summary.reasons[0]  # the module has none: it is shown
        assert _distinct_rows_after_steps(torch, model, steps=5) == 1  # its 64 units stay one


def test_a_constant_layer_that_others_can_separate_is_a_warning(torch):
    from initdiag.torch import audit_module

    for model in (_mlp(torch, fill=0.1), _mlp(torch, fill=0.1, readout=0.05, bias=0.0, dropout=0.5)):
        result = audit_module(model)
        assert result.tensors[0].flags == ["constant"] and result.summary.verdict == "warn"
    model = _mlp(torch, fill=0.1)  # the random readout and biases tell the units apart
    assert _distinct_rows_after_steps(torch, model) == 64


def test_zeros_that_are_not_weight_matrices_are_named():
    rng = np.random.default_rng(0)
    state = {
        "cls_token": np.zeros((1, 1, 192)),
        "pos_embed": rng.normal(0, 0.02, (1, 197, 192)),
        **{f"blocks.{i}.norm1.weight": np.ones(192) for i in range(3)},
        **{f"blocks.{i}.ls1.gamma": np.full(192, 1e-5) for i in range(3)},
        **{f"blocks.{i}.rezero_alpha": np.zeros(()) for i in range(3)},
        **{f"blocks.{i}.fc.weight": rng.normal(0, 0.02, (192, 192)) for i in range(3)},
        "head.weight": np.zeros((1000, 192)),
    }
    result = audit(state)
    assert result.summary.verdict == "ok", result.summary.reasons
    by_name = {t.name: t for t in result.tensors}
    assert by_name["cls_token"].rule == "zeros" and "cls_token" in by_name["cls_token"].rule_note
    assert (
        by_name["blocks.0.ls1.gamma"].role == "other"
        and by_name["blocks.0.ls1.gamma"].rule == "constant:1e-05"
    )
    assert (by_name["pos_embed"].fan_in, by_name["pos_embed"].fan_out) == (192, 197)
    assert "zero readout" in by_name["head.weight"].rule_note


def test_zero_init_residual_gains_are_named_and_other_zero_gains_flagged():
    def bottleneck(i, last_gain):
        p = f"layer1.{i}."
        return {p + "bn1.weight": np.ones(64), p + "bn1.bias": np.zeros(64), p + "bn3.weight": last_gain,
                p + "bn3.bias": np.zeros(64)}  # fmt: skip

    state = {**bottleneck(0, np.zeros(64)), **bottleneck(1, np.zeros(64)), **bottleneck(2, np.zeros(64))}
    state |= {"final.norm.weight": np.zeros(64)}
    result = audit(state)
    by_name = {t.name: t for t in result.tensors}
    assert (
        by_name["layer1.0.bn3.weight"].flags == []
        and "zero_init_residual" in by_name["layer1.0.bn3.weight"].rule_note
    )
    assert by_name["final.norm.weight"].flags == ["norm"]


def test_norm_roles_come_from_norm_names_or_types(torch):
    shapes = {"ls1.gamma": (8,), "blocks.0.gamma": (8,), "ln_f.weight": (8,), "norm1.weight": (8,),
              "bn3.weight": (8,), "1.weight": (8,), "1.bias": (8,), "input_layernorm.weight": (8,)}  # fmt: skip
    roles = {
        name: infer_role(name, shape, shapes, [*shapes, "1.running_mean"]) for name, shape in shapes.items()
    }
    assert roles == {"ls1.gamma": "other", "blocks.0.gamma": "other", "ln_f.weight": "norm_weight",
                     "norm1.weight": "norm_weight", "bn3.weight": "norm_weight", "1.weight": "norm_weight",
                     "1.bias": "norm_bias", "input_layernorm.weight": "norm_weight"}  # fmt: skip
    from initdiag.adapters.torch_audit import roles_of

    class LayerScale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gamma = torch.nn.Parameter(torch.full((8,), 1e-5))

    class RMSNorm(torch.nn.Module):  # a custom norm, as LLaMA's
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(8))

    model = torch.nn.ModuleDict({"norm": LayerScale(), "rms": RMSNorm()})  # a misleading name
    assert roles_of(model) == {"norm.gamma": "other", "rms.weight": "norm_weight"}


# -- two blocks, ties, output layers ---------------------------------------------------------------


def test_two_blocks_that_differ_are_both_flagged():
    rng = np.random.default_rng(0)

    def block(i, draw):
        return {f"h.{i}.fc.weight": draw((1024, 256)), f"h.{i}.proj.weight": draw((256, 1024)),
                f"h.{i}.ln.weight": np.ones(256)}  # fmt: skip

    gpt = lambda shape: rng.normal(0, 0.02, shape)  # noqa: E731
    default = lambda shape: rng.uniform(-1, 1, shape) / math.sqrt(shape[1])  # noqa: E731
    result = audit({**block(0, gpt), **block(1, default)})
    flagged = {t.name: t.flags for t in result.tensors if t.flags}
    assert flagged == {name: ["sibling", "block"] for name in
                       ("h.0.fc.weight", "h.0.proj.weight", "h.1.fc.weight", "h.1.proj.weight")}  # fmt: skip
    assert result.summary.reasons[0].startswith("blocks h.0 and h.1 differ in 2 of their tensors")
    assert len(result.summary.reasons) == 1 and "which one cannot be told" in result.summary.reasons[0]
    assert audit({**block(0, gpt), **block(1, gpt)}).summary.flags == []


def test_sequential_indices_are_siblings_only_with_the_same_role(torch):
    from initdiag.torch import audit_module

    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(64, 64, 3), nn.Conv2d(64, 64, 3), nn.Conv2d(64, 64, 3),
                          nn.Conv2d(64, 64, 3, groups=64), nn.BatchNorm2d(64))  # fmt: skip
    result = audit_module(model)
    # 4.bias is a BatchNorm's and 3.bias a depthwise conv's: neither is a sibling of 0.bias
    assert result.summary.flags == [], result.summary.reasons
    mlp = nn.Sequential(*[nn.Linear(256, 256) for _ in range(4)])
    with torch.no_grad():
        nn.init.normal_(mlp[2].weight, 0, 0.02)
    flagged = {t.name: t.flags for t in audit_module(mlp).tensors if t.flags}
    assert flagged == {"2.weight": ["sibling"]}


def _tied_model(torch, std):
    class Tied(torch.nn.Module):
        def __init__(self, vocab=512, d=128):
            super().__init__()
            self.wte = torch.nn.Embedding(vocab, d)
            self.ln_f = torch.nn.LayerNorm(d)
            self.lm_head = torch.nn.Linear(d, vocab, bias=False)
            if std is not None:
                torch.nn.init.normal_(self.wte.weight, 0, std)
            self.lm_head.weight = self.wte.weight

        def forward(self, ids):
            return self.lm_head(self.ln_f(self.wte(ids)))

    torch.manual_seed(0)
    return Tied()


def test_a_tied_head_is_listed_once_and_its_logit_scale_checked(torch):
    from initdiag.torch import audit_module

    for std, flagged in ((None, True), (0.02, False)):  # nn.Embedding's N(0, 1), GPT-2's N(0, 0.02)
        model = _tied_model(torch, std)
        result = audit_module(model)
        assert [t.name for t in result.tensors] == ["wte.weight", "ln_f.weight", "ln_f.bias"]
        wte = result.tensors[0]
        assert wte.tied == ["lm_head.weight"]
        assert "lm_head.weight is wte.weight (the same tensor), listed once" in result.summary.notes
        # the truth: the std of the logits the head computes from inputs of unit scale (a final norm's)
        with torch.no_grad():
            unit = model.ln_f(torch.randn(4096, 128, generator=torch.Generator().manual_seed(2)))
            assert float(unit.square().mean()) == pytest.approx(1, rel=1e-3)
            logits = model.lm_head(unit)
        assert wte.logit_std == pytest.approx(float(logits.std()), rel=0.02)
        assert ("logits" in wte.flags) is flagged
        if flagged:
            assert "lm_head.weight" in result.summary.reasons[0] and "untie" in result.summary.reasons[0]


def test_tied_tensors_saved_twice_are_listed_once(tmp_path):
    rng = np.random.default_rng(0)
    table = rng.normal(0, 1, (300, 64))
    np.savez(tmp_path / "tied.npz", **{"emb.weight": table, "fc.bias": np.zeros(300), "head.weight": table.copy(),
                                      "fc.weight": rng.normal(0, 0.02, (300, 64)), "other.bias": np.zeros(300)})  # fmt: skip
    data = json.loads(run("audit", str(tmp_path / "tied.npz"), "--format", "json").stdout)
    names = [t["name"] for t in data["tensors"]]
    assert names == ["emb.weight", "fc.bias", "fc.weight", "other.bias"]  # zeros are alike, not tied
    emb = data["tensors"][0]
    assert emb["tied"] == ["head.weight"] and emb["flags"] == ["logits"]
    assert emb["logit_std"] == pytest.approx(math.sqrt(np.mean(table**2) * 64), rel=1e-9)
    assert (
        "head.weight is emb.weight (the same values: tied, saved twice), listed once"
        in data["summary"]["notes"]
    )


# -- recurrent layers -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(2))
def test_pytorch_rnn_defaults_are_named(torch, seed, tmp_path):
    from initdiag.torch import audit_module

    nn = torch.nn
    torch.manual_seed(seed)
    models = {"gru": nn.GRU(64, 128, num_layers=2), "lstm": nn.LSTM(64, 96, bidirectional=True),
              "rnn": nn.RNN(48, 128), "proj": nn.LSTM(64, 128, proj_size=32), "cell": nn.GRUCell(64, 128)}  # fmt: skip
    for label, model in models.items():
        result = audit_module(model)
        hidden = model.hidden_size
        for t in result.tensors:
            assert t.rule == "torch_rnn_default" and t.fit >= 1e-3, (label, t.name, t.rule)
            assert t.rule_std == pytest.approx(1 / math.sqrt(3 * hidden))  # U(±1/√hidden)
        assert any(
            f"hidden_size {hidden} (--init uniform:{1 / math.sqrt(hidden):.4g}" in n
            for n in result.summary.notes
        )
        # the same from a file, where only the names say it is an RNN
        np.savez(tmp_path / "rnn.npz", **{k: v.numpy() for k, v in model.state_dict().items()})
        data = json.loads(run("audit", str(tmp_path / "rnn.npz"), "--format", "json").stdout)
        assert {t["rule"] for t in data["tensors"]} == {"torch_rnn_default"}


# -- polish -----------------------------------------------------------------------------------------


def test_a_narrow_terminal_never_cuts_a_tensor_name(tmp_path):
    rng = np.random.default_rng(0)
    state = {f"blocks.{i}.ln1.weight": np.ones(256) for i in range(3)}
    state |= {f"blocks.{i}.fc1.weight": rng.normal(0, 0.02, (256, 256)) for i in range(3)}
    state["encoder.layers_long.attention.q.weight"] = rng.normal(0, 0.02, (64, 64))
    np.savez(tmp_path / "w.npz", **state)
    for columns in ("60", "40", "200"):
        result = runner.invoke(app, ["audit", str(tmp_path / "w.npz")], env={"COLUMNS": columns})
        assert result.exit_code == 0, result.output
        words = set(result.stdout.split())
        assert set(state) <= words, (columns, result.stdout)


def test_counts_are_singular_when_one():
    result = audit({"fc.weight": np.random.default_rng(0).normal(0, 0.02, (64, 64)), "steps": np.arange(3)})
    from initdiag.render.audit import verdict_text

    assert verdict_text(result).startswith("✔ ok: 1 tensor (1 normal:0.02)")
    assert "not audited: 1 tensor that is a buffer or holds integers (steps)" in result.summary.notes


@pytest.mark.parametrize("suffix", [".pt", ".npz", ".npy", ".safetensors"])
def test_a_text_file_says_what_it_is_not_and_what_is_allowed(tmp_path, suffix):
    if suffix == ".pt":
        pytest.importorskip(
            "torch", reason="the torch extra is not installed (pip install 'initdiag[torch]')"
        )
    path = tmp_path / f"notes{suffix}"
    path.write_text("hello\nworld\n")
    result = run("audit", str(path))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "is not a" in lines[0] and "it is text ('hello')" in lines[0] and "allowed: " in lines[0]
    assert "pickled" not in lines[0] and "…" not in lines[0]


def test_a_pickled_module_is_refused_without_escape_codes(torch, tmp_path):
    torch.save(torch.nn.Linear(4, 4), tmp_path / "module.pt")
    result = run("audit", str(tmp_path / "module.pt"))
    assert result.exit_code == 2
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert "holds a pickled torch.nn.modules.linear.Linear" in line and "state_dict()" in line
    assert "\x1b" not in line and "\\x1b" not in line
