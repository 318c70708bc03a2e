"""Probing a PyTorch module (`initdiag probe --model`, `initdiag.torch.probe_module`).

The independent truths: a spec probe of the same stack (the module is built from the spec and
re-initialised from the same streams, so every statistic must agree to rounding), the closed form
of PyTorch's default Linear init (variance 1/(3 fan_in), so a ReLU layer keeps 1/6 of E[z^2]),
and the module run out of place (in-place activations must not change a number).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip(
    "torch", reason="the torch extra is not installed (pip install 'initdiag[torch]')"
)

import initdiag  # noqa: E402
from initdiag.adapters.torch_build import build_module  # noqa: E402
from initdiag.cli import app  # noqa: E402
from initdiag.errors import InitdiagError  # noqa: E402
from initdiag.network.specfile import load_spec  # noqa: E402
from initdiag.torch import probe_module  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "torch" / "models.py"
runner = CliRunner()

PARITY_SPEC = """
input_shape = [3, 8, 8]
[defaults]
act = "relu"
init = "he_normal"
[[layers]]
kind = "conv2d"
channels = 8
[[layers]]
kind = "batchnorm"
[[layers]]
kind = "residual"
  [[layers.layers]]
  kind = "conv2d"
  channels = 8
  act = "tanh"
  [[layers.layers]]
  kind = "layernorm"
  act = "silu"
[[layers]]
kind = "maxpool2d"
[[layers]]
kind = "flatten"
[[layers]]
kind = "dropout"
rate = 0.25
[[layers]]
units = 32
[[layers]]
kind = "layernorm"
act = "gelu"
[[layers]]
units = 10
act = "linear"
"""


def run(*args: str, cwd: Path | None = None):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def parity_stack(tmp_path_factory):
    path = tmp_path_factory.mktemp("parity") / "stack.toml"
    path.write_text(PARITY_SPEC)
    return load_spec(path).stack


def _torch_name(spec_name: str) -> str:
    """res1.conv1 (a spec row inside a block) is res1.branch.conv1 in the built module."""
    block, dot, rest = spec_name.partition(".")
    return f"{block}.branch.{rest}" if dot else spec_name


@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-9), ("float32", 2e-4)])
def test_a_module_built_from_a_spec_gives_the_spec_probes_numbers(parity_stack, dtype, rtol):
    """Linear/ReLU/Conv2d/BatchNorm2d/LayerNorm/Dropout/residual: every statistic of every row."""
    spec = initdiag.probe(parity_stack, batch=16, dtype=dtype, seed=3)
    module, streams = build_module(parity_stack, batch=16, dtype=dtype, seed=3)
    ours = probe_module(module, "3x8x8", init="he_normal", batch=16, dtype=dtype, seed=3, row_streams=streams)
    rows = {row.name: row for row in ours.layers}
    compared = 0
    for row in spec.layers:
        if row.kind == "residual":  # the sum is not a module; the next row's input shows it
            continue
        name = _torch_name(row.name)
        twin = rows[name]
        # a spec row computes its activation itself; the module has it in the next leaf
        after = rows.get(f"{name}_act", twin)
        for key, theirs in (
            ("preact_var", twin.preact_var),
            ("preact_mean", twin.preact_mean),
            ("act_var", after.act_var),
            ("act_mean", after.act_mean),
            ("grad_input_var", twin.grad_input_var),
        ):
            mine = getattr(row, key)
            # a mean near 0 (after a norm) is compared on the scale of its std
            scale = math.sqrt(row.preact_var) * (1e-12 if dtype == "float64" else 1e-6)
            assert theirs == pytest.approx(mine, rel=rtol, abs=scale), (row.name, key, mine, theirs)
        if row.kind in ("dense", "conv2d"):
            assert twin.weight_std == pytest.approx(row.weight_std, rel=rtol)
            assert twin.grad_weight_var == pytest.approx(row.grad_weight_var, rel=rtol)
            assert twin.fan_in == row.fan_in and twin.fan_out == row.fan_out
            assert twin.distinct_units == row.distinct_units
        compared += 1
    assert compared == 10
    assert ours.summary.verdict == spec.summary.verdict


def test_pytorch_default_linear_init_loses_five_sixths_per_relu_layer():
    """Closed form: U(+-1/sqrt(fan_in)) has variance 1/(3 fan_in); through ReLU E[z^2] falls 6x a
    layer (bias-free, so nothing holds a floor). The probe must say vanishing and fail."""
    torch.manual_seed(0)
    layers = []
    for _ in range(6):
        layers += [torch.nn.Linear(512, 512, bias=False), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(512, 10, bias=False))
    result = probe_module(net, "512", batch=256)
    dense = [row for row in result.layers if row.kind == "dense"]
    for k, row in enumerate(dense[:-1]):
        assert row.forward_gain == pytest.approx(6.0**-k, rel=0.15), (row.name, row.forward_gain)
    assert "vanishing" in dense[3].flags
    assert result.summary.verdict == "fail"
    he = probe_module(net, "512", batch=256, init="he")
    assert he.summary.verdict == "ok"
    assert [row.forward_gain for row in he.layers if row.kind == "dense"][-2] == pytest.approx(1, rel=0.25)


def test_in_place_activations_give_the_same_numbers():
    def net(inplace):
        torch.manual_seed(1)
        return torch.nn.Sequential(
            torch.nn.Linear(32, 32), torch.nn.ReLU(inplace=inplace), torch.nn.Linear(32, 4)
        )

    a = probe_module(net(True), "32", batch=16)
    b = probe_module(net(False), "32", batch=16)
    assert [r.grad_input_var for r in a.layers] == [r.grad_input_var for r in b.layers]
    assert [r.act_var for r in a.layers] == [r.act_var for r in b.layers]


def test_tokens_attention_and_embedding_rows():
    sys.path.insert(0, str(MODELS.parent))
    try:
        from models import TokenClassifier
    finally:
        sys.path.remove(str(MODELS.parent))
    result = probe_module(TokenClassifier, "seq=12,vocab=1000", batch=8)
    kinds = {row.name: row.kind for row in result.layers}
    assert kinds == {"embed": "embedding", "attn": "attention", "norm": "layernorm", "head": "dense"}
    embed = result.layers[0]
    assert embed.grad_input_var is None  # token ids have no gradient; not a nonfinite number
    assert "nonfinite" not in embed.flags
    assert embed.weight_std == pytest.approx(1.0, rel=0.02)  # nn.Embedding's default N(0, 1)
    assert result.layers[1].weight_std is not None  # attention: its in_proj_weight
    assert result.layers[1].output_shape == (12, 64)
    # forward() adds x + h before norm and averages over tokens before head: no hook sees either
    (note,) = [n for n in result.summary.notes if n.startswith("hooks see modules")]
    assert "norm (E[x²]" in note and "head (E[x²]" in note and "attn" in note
    assert "embed" not in note.split("the input of")[1].split("after")[0]


def test_no_unseen_note_for_a_plain_sequential():
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8, 2)
    )
    assert not [n for n in probe_module(net, "8").summary.notes if n.startswith("hooks see")]


def test_keep_is_reproducible_and_the_seed_matters():
    factory = lambda: torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh())  # noqa: E731
    a = probe_module(factory, "16", batch=8, seed=5)
    b = probe_module(factory, "16", batch=8, seed=5)
    c = probe_module(factory, "16", batch=8, seed=6)
    assert a.to_dict()["layers"] == b.to_dict()["layers"]
    assert a.layers[0].weight_std != c.layers[0].weight_std


def test_trials_rebuild_the_model_and_report_a_spread():
    factory = lambda: torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))  # noqa: E731
    result = probe_module(factory, "16", batch=8, trials=3)
    assert result.layers[0].sd["weight_std"] > 0  # three constructions, three weight draws


def test_the_api_returns_a_probe_result_like_initdiag_probe():
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    result = probe_module(net, input_shape="64", init="he", batch=16)
    assert type(result) is type(initdiag.probe("64,64,10", batch=16))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["spec"]["input_shape"] == "64"
    assert [layer["name"] for layer in data["layers"]] == ["0", "1", "2"]


# -- the command line -------------------------------------------------------------------------------


def test_cli_probe_of_a_model_file():
    result = run("probe", "--model", f"{MODELS}:SmallCNN", "--input-shape", "3x16x16", "--batch", "8")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "features.0" in out and "head" in out
    assert "✔ ok" in out


def test_cli_probe_fails_pytorch_default_mlp_and_he_fixes_it():
    fail = run("probe", "--model", f"{MODELS}:mlp", "--model-arg", "depth=8", "--input-shape", "784",
               "--batch", "64", "--fail-on", "vanishing")  # fmt: skip
    assert fail.exit_code == 1, fail.output
    assert "vanishing" in fail.stdout
    ok = run("probe", "--model", f"{MODELS}:mlp", "--model-arg", "depth=8", "--input-shape", "784",
             "--batch", "64", "--init", "he", "--fail-on", "vanishing")  # fmt: skip
    assert ok.exit_code == 0, ok.output


def test_cli_compare_keep_against_initdiag_inits():
    result = run("compare", "--model", f"{MODELS}:mlp", "--input-shape", "784", "--init", "keep,he,xavier",
                 "--batch", "64", "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["spec"]["init"] for r in data["results"]] == ["keep", "he_normal", "xavier_uniform"]
    verdicts = {r["spec"]["init"]: r["summary"]["verdict"] for r in data["results"]}
    assert verdicts["keep"] == "fail" and verdicts["he_normal"] == "ok"


def test_check_gates_a_model_spec_file():
    result = run("check", str(ROOT / "examples" / "torch" / "mlp_default.toml"))
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.stdout and "vanishing" in result.stdout


def test_a_spec_file_names_a_model_relative_to_itself(tmp_path):
    (tmp_path / "nets.py").write_text(
        "import torch\n"
        "def net(width=32):\n"
        "    return torch.nn.Sequential(torch.nn.Linear(16, width), torch.nn.Tanh(), torch.nn.Linear(width, 2))\n"
    )
    spec = tmp_path / "net.toml"
    spec.write_text('model = "nets.py:net"\nmodel_args = { width = 48 }\ninput_shape = "16"\n')
    result = run("probe", "-c", str(spec), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["layers"][0]["fan_out"] == 48


# -- bad input: one line, exit 2 --------------------------------------------------------------------


@pytest.fixture
def bad_models(tmp_path):
    (tmp_path / "bad.py").write_text(
        textwrap.dedent(
            """
            import torch
            def raises():
                raise ValueError("bad config\\nsecond line")
            def not_a_module():
                return 42
            def wants_3d():
                return torch.nn.Conv2d(3, 4, 3)
            def needs_arg(width):
                return torch.nn.Linear(width, width)
            NUMBER = 5
            """
        )
    )
    (tmp_path / "broken.py").write_text("import torch\nraise RuntimeError('import-time failure')\n")
    return tmp_path


@pytest.mark.parametrize(
    ("model", "extra", "expected"),
    [
        ("nope.py:net", [], "file not found"),
        ("bad.py:missing", [], "has no 'missing'"),
        ("bad.py:NUMBER", [], "is not a class or function"),
        ("bad.py:raises", [], "ValueError: bad config"),
        ("bad.py:not_a_module", [], "nn.Module"),
        ("bad.py:wants_3d", [], "does not take input"),
        ("bad.py:needs_arg", ["--model-arg", "depth=3"], "depth"),
        ("broken.py:net", [], "import-time failure"),
        ("no_such_package.models:net", [], "no module named 'no_such_package'"),
        ("bad.py", [], "PATH.py:FACTORY"),
    ],
)
def test_bad_models_get_one_line_and_exit_2(bad_models, model, extra, expected):
    path = model if ".py" not in model else str(bad_models / model)
    shape = "16" if "wants_3d" in model else "8"
    result = run("probe", "--model", path, "--input-shape", shape, *extra)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--input-shape", "3x0x4"], "input-shape"),
        (["--input-shape", "seq=8"], "vocab"),
        (["--device", "tpu"], "cpu, cuda, mps"),
        (["--model-arg", "width"], "key=value"),
        (["--layers", "8,8"], "--model"),
        ([], "--input-shape"),
    ],
)
def test_bad_model_options(args, expected):
    base = ["probe", "--model", f"{MODELS}:mlp"]
    if "--input-shape" not in args and args != []:
        base += ["--input-shape", "784"]
    result = run(*base, *args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr, result.stderr


def test_a_model_too_big_for_memory_is_refused_before_it_is_built():
    result = runner.invoke(
        app,
        ["probe", "--model", f"{MODELS}:mlp", "--model-arg", "width=4096", "--input-shape", "784"],
        env={"COLUMNS": "200", "INITDIAG_MAX_MEMORY": "1MiB"},
    )
    assert result.exit_code == 2, result.output
    assert "needs about" in result.stderr and "available" in result.stderr


def test_without_torch_the_model_path_says_how_to_install_it(tmp_path):
    """A fresh interpreter where `import torch` fails: one line naming the extra, exit 2; the core
    commands still work and never import torch."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # import torch -> ImportError
        from typer.testing import CliRunner
        from initdiag.cli import app
        r = CliRunner().invoke(app, ["probe", "--model", {str(MODELS)!r} + ":mlp", "--input-shape", "784"])
        print(r.exit_code); print(r.stderr.strip())
        r = CliRunner().invoke(app, ["probe", "--layers", "8,8,2"])
        print(r.exit_code)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    code, message, core = out.strip().splitlines()
    assert code == "2" and core == "0"
    assert "pip install 'initdiag[torch]'" in message


def test_importing_initdiag_and_its_cli_does_not_import_torch():
    script = "import initdiag, initdiag.cli, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_python_api_errors_use_the_keyword_names():
    with pytest.raises(InitdiagError, match="batch"):
        probe_module(torch.nn.Linear(4, 4), "4", batch=0)
    with pytest.raises(InitdiagError, match="LSUV"):
        probe_module(torch.nn.Linear(4, 4), "4", init="lsuv")
    assert math.isfinite(probe_module(torch.nn.Linear(4, 4), "4").summary.forward_gain)
    assert np.isfinite(probe_module(torch.nn.Linear(4, 4), [4]).layers[0].preact_var)
