"""A PyTorch model's own code, where no hook looks: what forward() returns (a scalar, token ids, a
tuple, a dict, logits per position), what it computes before the first module and between modules
(a raw parameter, a pooling), and what the probe makes of numbers that are not numbers.

The independent truths: the same loss and gradients computed here with torch alone (targets drawn
from the probe's streams), the module form of a pooling (`nn.AdaptiveAvgPool2d`), a batch norm's
gradient against its eps, and hand arithmetic on E[x^2].
"""

from __future__ import annotations

import collections
import json
import math
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip(
    "torch", reason="the torch extra is not installed (pip install 'initdiag[torch]')"
)
nn = torch.nn
F = torch.nn.functional

from initdiag.analysis.inputs import stream  # noqa: E402
from initdiag.cli import app  # noqa: E402
from initdiag.torch import probe_module  # noqa: E402

runner = CliRunner()

MODELS = """
import collections
import torch, torch.nn as nn, torch.nn.functional as F

class Scalar(nn.Module):
    def __init__(self):
        super().__init__(); self.fc1 = nn.Linear(32, 1)
    def forward(self, x): return self.fc1(x).sum()

class IntOut(nn.Module):
    def __init__(self):
        super().__init__(); self.fc = nn.Linear(32, 4)
    def forward(self, x): return self.fc(x).argmax(-1)

class Detached(nn.Module):
    def __init__(self):
        super().__init__(); self.fc = nn.Linear(32, 4)
    def forward(self, x): return self.fc(x).detach()

class IntsInADict(nn.Module):
    def __init__(self):
        super().__init__(); self.fc = nn.Linear(32, 4)
    def forward(self, x): return {"labels": self.fc(x).argmax(-1), "loss": self.fc(x).sum()}

class TupleOut(nn.Module):
    def __init__(self):
        super().__init__(); self.fc1 = nn.Linear(32, 64); self.fc2 = nn.Linear(64, 10); self.aux = nn.Linear(64, 1)
    def forward(self, x):
        h = torch.relu(self.fc1(x)); return self.fc2(h), self.aux(h)

class DictOut(nn.Module):
    def __init__(self):
        super().__init__(); self.fc1 = nn.Linear(32, 64); self.fc2 = nn.Linear(64, 10)
    def forward(self, x):
        h = torch.relu(self.fc1(x)); return {'logits': self.fc2(h), 'hidden': h}

class WithIds(nn.Module):
    def __init__(self):
        super().__init__(); self.fc1 = nn.Linear(32, 64); self.fc2 = nn.Linear(64, 10)
    def forward(self, x):
        y = self.fc2(torch.relu(self.fc1(x))); return y, y.argmax(-1)

class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(64, 256) * 0.01)   # raw parameter, F.linear
        self.fc = nn.Linear(256, 10)
    def forward(self, x): return self.fc(F.relu(F.linear(x, self.w1.t())))

class NanModel(nn.Module):
    def __init__(self):
        super().__init__(); self.fc1 = nn.Linear(32, 64); self.fc2 = nn.Linear(64, 10)
        with torch.no_grad(): self.fc1.weight[0, 0] = float('inf')
    def forward(self, x): return self.fc2(torch.relu(self.fc1(x)))

class LM(nn.Module):
    def __init__(self, V=50, d=16):
        super().__init__(); self.emb = nn.Embedding(V, d); self.head = nn.Linear(d, V)
    def forward(self, ids): return self.head(self.emb(ids))
"""


@pytest.fixture(scope="module")
def mods(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mods")
    (folder / "mods.py").write_text(MODELS)
    namespace: dict = {}
    exec(compile(MODELS, str(folder / "mods.py"), "exec"), namespace)
    namespace["path"] = folder / "mods.py"
    return namespace


def run(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "400"})


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("initdiag: error: "), result.stderr
    assert "Traceback" not in result.output and "internal error" not in result.output
    return lines[0]


def built(factory, seed=0, trial=0):
    """The module a probe with init keep builds: torch's generator seeded as the probe seeds it."""
    torch.manual_seed(int(np.random.SeedSequence(seed, spawn_key=(trial, 6)).generate_state(1)[0]))
    return factory()


def data(shape, batch, seed=0):
    return torch.as_tensor(stream(seed, 0, 0).standard_normal((batch, *shape)).astype("float32"))


def target(k, shape, seed=0):
    rng = stream(seed, 0, 1) if k == 0 else stream(seed, 0, 1, k)
    return torch.as_tensor(rng.standard_normal(shape).astype("float32"))


# -- 1. what the model returns must be something a loss can reach ----------------------------------


@pytest.mark.parametrize(
    ("model", "returned"),
    [
        ("Scalar", "returned a scalar (a 0-d float32 tensor)"),
        ("IntOut", "returned an int64 tensor of shape (16,), which has no gradient"),
        ("Detached", "returned a float32 tensor of shape (16, 4) that does not require grad"),
        (
            "IntsInADict",
            "returned a dict with no tensor the loss can reach (labels: an int64 tensor of shape (16,)",
        ),
    ],
)
def test_an_output_no_loss_can_reach_is_bad_input(mods, model, returned):
    line = one_line_error(
        run("probe", "--model", f"{mods['path']}:{model}", "--input-shape", "32", "--batch", "16")
    )
    assert returned in line, line
    assert "needs a floating-point tensor that requires grad with one row per sample (batch, ...)" in line


# -- 2. every output gets the loss ------------------------------------------------------------------


def test_each_output_of_a_tuple_gets_its_own_loss(mods):
    """The probe's loss is the sum of each output's unit loss with its own target: the loss and aux's
    gradient equal torch's on that loss; the backward gains are measured against what both heads
    send back (the sum of their E[(dL/dx)^2]), each head against its own."""
    result = probe_module(mods["TupleOut"], "32", batch=64)
    net = built(mods["TupleOut"])
    x = data((32,), 64).requires_grad_(True)
    grads = {}
    for name in ("fc1", "fc2", "aux"):
        getattr(net, name).register_full_backward_hook(lambda m, gi, go, n=name: grads.__setitem__(n, gi[0]))
    y, a = net(x)
    loss = (y * target(0, (64, 10))).sum() / 64 + (a * target(1, (64, 1))).sum() / 64
    loss.backward()
    rows = {row.name: row for row in result.layers}
    assert result.summary.loss == pytest.approx(float(loss.detach()), rel=1e-5)
    assert rows["aux"].grad_weight_var == pytest.approx(
        float(net.aux.weight.grad.var(unbiased=False)), rel=1e-4
    )
    assert rows["aux"].flags == [] and result.summary.verdict != "fail"
    sq = {name: float((g.double() ** 2).mean()) for name, g in grads.items()}
    assert rows["fc1"].backward_gain == pytest.approx(sq["fc1"] / (sq["fc2"] + sq["aux"]), rel=1e-4)
    assert rows["fc2"].backward_gain == rows["aux"].backward_gain == 1
    note = next(n for n in result.summary.notes if n.startswith("the model returns"))
    assert note.startswith(
        "the model returns 2 outputs, [0] (10), [1] (1): the loss is the sum of each one's unit"
    )
    out = run("probe", "--model", f"{mods['path']}:TupleOut", "--input-shape", "32", "--batch", "64")
    assert "mods.py:TupleOut · 32 → [0] 10, [1] 1 (3 modules)" in out.stdout


def test_a_dict_output_is_probed_and_named(mods):
    out = run("probe", "--model", f"{mods['path']}:DictOut", "--input-shape", "32", "--batch", "64")
    assert out.exit_code == 0, out.output
    assert "mods.py:DictOut · 32 → logits 10, hidden 64 (2 modules)" in out.stdout
    result = probe_module(mods["DictOut"], "32", batch=64)
    net = built(mods["DictOut"])
    got = net(data((32,), 64))
    loss = (got["logits"] * target(0, (64, 10))).sum() / 64 + (got["hidden"] * target(1, (64, 64))).sum() / 64
    assert result.summary.loss == pytest.approx(float(loss.detach()), rel=1e-5)
    mse = probe_module(mods["DictOut"], "32", batch=64, loss="mse")
    loss = F.mse_loss(got["logits"], target(0, (64, 10))) + F.mse_loss(got["hidden"], target(1, (64, 64)))
    assert mse.summary.loss == pytest.approx(float(loss.detach()), rel=1e-5)


def test_tensors_no_loss_can_reach_are_named_in_a_note(mods):
    result = probe_module(mods["WithIds"], "32", batch=16)
    assert "no loss on [1]: an int64 tensor of shape (16,), which has no gradient" in " ".join(
        result.summary.notes
    )
    assert result.spec.outputs == (("[0]", (10,)),)
    out = run("probe", "--model", f"{mods['path']}:WithIds", "--input-shape", "32", "--batch", "16")
    assert "mods.py:WithIds · 32 → 10 (2 modules)" in out.stdout


def test_outputs_are_found_in_nested_structures_and_model_outputs():
    from initdiag.adapters.torch_outputs import flatten

    class ModelOutput(collections.OrderedDict):  # Hugging Face's is an OrderedDict, unset fields absent
        pass

    Pair = collections.namedtuple("Pair", "left right")
    t = torch.ones(2, 3, requires_grad=True)
    value = ModelOutput(logits=t, hidden_states=(t, [t, None]), pair=Pair(t, 3))
    names = [out.name for out in flatten(value)]
    assert names == ["logits", "hidden_states[0]", "hidden_states[1][0]", "hidden_states[1][1]", "pair.left",
                     "pair.right"]  # fmt: skip

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 3)

        def forward(self, x):
            h = self.a(x)
            return ModelOutput(logits=self.b(h), hidden_states=(h,), loss=None)

    result = probe_module(Net(), "8", batch=16)
    assert result.spec.outputs == (("logits", (3,)), ("hidden_states[0]", (8,)))
    assert all(row.flags == [] or "vanishing" not in row.flags for row in result.layers)


def test_the_backward_reference_is_the_row_that_made_the_output():
    """A module run after the output was made (and not used) is no reference for the backward
    gains: the head is (its own gain 1), and the unused module is the one without gradient."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.unused = nn.Linear(16, 32), nn.Linear(32, 4), nn.Linear(32, 2)

        def forward(self, x):
            h = torch.relu(self.fc1(x))
            out = self.fc2(h)
            self.unused(h)
            return out

    result = probe_module(Net(), "16", batch=32, init="he")
    rows = {row.name: row for row in result.layers}
    assert rows["fc2"].backward_gain == 1 and math.isfinite(rows["fc1"].backward_gain)
    assert rows["unused"].gradient_stop is not None and rows["fc2"].flags == []


# -- 3. code in forward() before the first module ---------------------------------------------------


def test_code_before_the_first_module_counts_in_its_gain_from_the_data(mods):
    """A raw parameter of std 0.01 applied with F.linear before the first module: the first module's
    gain is judged from the data (E[z^2] of fc over E[x^2] of the data, by hand here), not from
    its own input, so the stack fails as the same stack written as a spec does."""
    result = probe_module(mods["Functional"], "64", batch=256)
    net = built(mods["Functional"])
    x = data((64,), 256).double()
    z = net.fc.double()(F.relu(x @ net.w1.double()))
    fc = result.layers[0]
    assert fc.data_gain == pytest.approx(float((z**2).mean().detach() / (x**2).mean()), rel=1e-4)
    assert fc.data_gain < 1e-2 and "vanishing" in fc.flags and result.summary.verdict == "fail"
    reason = result.summary.reasons[0]
    assert reason.startswith(
        f"layer fc multiplies the data's E[x^2] by {fc.data_gain:.3g} (vanishing: < 1/100)"
    )
    assert "what reaches fc is not the data but what forward() made of it" in reason
    notes = " ".join(result.summary.notes)
    h = F.relu(x @ net.w1.double())
    assert (
        f"the input of fc (E[x²] {float((h**2).mean().detach()):.3g}, "
        f"after the data's {float((x**2).mean()):.3g})" in notes
    )
    rms = float(net.w1.detach().double().pow(2).mean().sqrt())
    assert f"parameters of no module: w1 (64×256, rms {rms:.3g})" in notes
    spec = run("probe", "--layers", "64,256,10", "--act", "relu", "--init", "normal:0.01", "--batch", "256")
    assert "✘ fail" in spec.stdout


def test_no_note_when_the_first_module_takes_the_data():
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    notes = probe_module(net, "8").summary.notes
    assert not [n for n in notes if "hooks see" in n or "parameters of no module" in n]


# -- 4. numbers that are not numbers ----------------------------------------------------------------


def test_a_nonfinite_weight_is_reported_as_nonfinite_and_nothing_leaks(mods):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = probe_module(mods["NanModel"], "32", batch=16)
    assert not caught, [str(w.message) for w in caught]
    for row in result.layers:
        assert "nonfinite" in row.flags and "vanishing" not in row.flags and row.gradient_stop is None
        assert math.isnan(row.grad_weight_var) and math.isnan(row.grad_input_var)
    assert result.summary.reasons[0] == (
        "layer fc1: the forward pass overflows (inf/nan), so the loss and every gradient are not numbers"
    )
    out = run("probe", "--model", f"{mods['path']}:NanModel", "--input-shape", "32", "-f", "json")
    layers = json.loads(out.stdout)["layers"]
    assert layers[0]["grad_weight_var"] is None and layers[1]["grad_input_var"] is None  # null: not a number
    script = textwrap.dedent(
        f"""
        import sys
        from initdiag.cli import app
        sys.argv = ["initdiag", "probe", "--model", {str(mods["path"])!r} + ":NanModel", "--input-shape", "32"]
        app()
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "nonfinite" in done.stdout and "no-grad" not in done.stdout


# -- 5. a pooling in forward() ----------------------------------------------------------------------


class _Convs(nn.Module):
    def __init__(self, pool_module: bool):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()) if pool_module else None
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = self.c2(F.relu(self.bn(self.c1(x))))
        return self.fc(self.pool(h) if self.pool is not None else h.mean((2, 3)))


def test_a_pooling_in_forward_is_divided_out_as_a_pooling_module_is():
    """x.mean((2, 3)) in forward() and nn.AdaptiveAvgPool2d give every row the same gains, and the
    model passes with He; the mean over P = 256 positions passes each 1/P of the gradient, so
    c2's backward gain is (E[(dL/dx_c2)^2] / E[(dL/dx_fc)^2]) * P^2, by hand from torch's gradients."""
    functional = probe_module(lambda: _Convs(False), "3x16x16", init="he", batch=16)
    # the same weights: fc is drawn from the stream of its place among the leaves (3, not 5)
    module = probe_module(lambda: _Convs(True), "3x16x16", init="he", batch=16, row_streams={"fc": 3})
    ours, theirs = ({row.name: row for row in r.layers} for r in (functional, module))
    for name in ("c1", "bn", "c2", "fc"):
        assert ours[name].forward_gain == pytest.approx(theirs[name].forward_gain, rel=1e-5), name
        assert ours[name].backward_gain == pytest.approx(theirs[name].backward_gain, rel=1e-5), name
    assert functional.summary.verdict == module.summary.verdict == "ok"
    assert "fc reads c2's output pooled in forward() (16×16×16 → 16 per sample)" in " ".join(
        functional.summary.notes
    )

    net = _Convs(False)
    probe_module(net, "3x16x16", init="he", batch=16)  # the same weights, re-drawn in place
    grads = {}
    for name in ("c2", "fc"):
        getattr(net, name).register_full_backward_hook(lambda m, gi, go, n=name: grads.__setitem__(n, gi[0]))
    x = data((3, 16, 16), 16).requires_grad_(True)
    ((net(x) * target(0, (16, 10))).sum() / 16).backward()
    sq = {name: float((g.double() ** 2).mean()) for name, g in grads.items()}
    assert ours["c2"].backward_gain == pytest.approx(sq["c2"] / sq["fc"] * 256**2, rel=1e-4)


def test_a_raw_parameter_that_narrows_the_signal_is_no_pooling():
    """Fewer values per sample made with a parameter of forward()'s own (h @ w, w 64x32 of std 0.01)
    is not a pooling: its scale stays in the next module's gain, and the model fails."""

    class Mid(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 64), nn.Linear(32, 10)
            self.w = nn.Parameter(torch.randn(64, 32) * 0.01)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)) @ self.w)

    result = probe_module(Mid, "64", init="he", batch=64)
    assert result.summary.verdict == "fail" and "vanishing" in result.layers[1].flags
    notes = " ".join(result.summary.notes)
    assert "pooled in forward()" not in notes and "parameters of no module: w (64×32" in notes


# -- 6. a batch norm over 2 values ------------------------------------------------------------------


def test_the_gradient_behind_a_batch_norm_over_two_values_is_its_eps():
    """At batch 2 the first layer's gradient is what the norm's eps leaves: it shrinks with eps, in
    proportion once eps is below (x1 - x2)^2 / 4 of every feature. The row is flagged no-grad and
    the reason shows its ∂W rms as that."""

    def net(eps=1e-5):
        return nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32, eps=eps), nn.ReLU(), nn.Linear(32, 4))

    result = probe_module(net, "16", batch=2)
    row = result.layers[0]
    assert row.flag_sources == {"vanishing": ["no-grad"]} and row.gradient_stop == "1"
    assert (
        f"(its ∂W rms {row.grad_weight_rms:.3g} is that, and shrinks as eps does)"
        in result.summary.reasons[0]
    )
    smaller = probe_module(lambda: net(1e-7), "16", batch=2)
    smallest = probe_module(lambda: net(1e-9), "16", batch=2)
    assert smaller.layers[0].grad_weight_rms < row.grad_weight_rms / 50
    assert smallest.layers[0].grad_weight_rms == pytest.approx(
        smaller.layers[0].grad_weight_rms / 100, rel=0.02
    )
    # the head's gradient does not pass the norm's backward pass: eps leaves it alone
    assert smaller.layers[3].grad_weight_rms == pytest.approx(result.layers[3].grad_weight_rms, rel=0.02)


# -- 7. cross-entropy at every position -------------------------------------------------------------


def test_xent_takes_language_model_logits_at_every_position(mods):
    """(batch, seq, vocab) logits: F.cross_entropy on the logits flattened to (batch*seq, vocab)
    with labels from the probe's target stream; the head's gradient is torch's."""
    result = probe_module(mods["LM"], "seq=6,vocab=50", batch=8, loss="xent")
    net = built(mods["LM"])
    ids = torch.as_tensor(stream(0, 0, 0).integers(0, 50, size=(8, 6)))
    logits = net(ids)
    labels = torch.as_tensor(stream(0, 0, 1).integers(0, 50, size=48))
    loss = F.cross_entropy(logits.reshape(48, 50), labels)
    loss.backward()
    assert result.summary.loss == pytest.approx(float(loss.detach()), rel=1e-6)
    head = result.layers[1]
    assert head.grad_weight_var == pytest.approx(
        float(net.head.weight.grad.double().var(unbiased=False)), rel=1e-4
    )
    out = run("probe", "--model", f"{mods['path']}:LM", "--input-shape", "seq=6,vocab=50", "--loss", "xent")
    assert out.exit_code == 0, out.output


def test_xent_takes_a_convolutions_classes_on_axis_1():
    net = nn.Conv2d(3, 5, 1)
    result = probe_module(net, "3x4x4", batch=2, loss="xent")
    torch.manual_seed(0)
    x = data((3, 4, 4), 2)
    labels = torch.as_tensor(stream(0, 0, 1).integers(0, 5, size=32)).reshape(2, 4, 4)
    assert result.summary.loss == pytest.approx(float(F.cross_entropy(net(x), labels).detach()), rel=1e-6)


def test_xent_refuses_an_output_of_one_class(mods):
    line = one_line_error(
        run("probe", "--model", f"{mods['path']}:TupleOut", "--input-shape", "32", "--loss", "xent")
    )
    assert "--loss xent needs logits of at least 2 classes" in line and "[1] has shape (256, 1)" in line


# -- siblings ---------------------------------------------------------------------------------------


def test_probing_a_module_twice_gives_the_same_numbers_and_leaves_its_grads():
    """The probe's gradients are its own: none accumulated from an earlier probe, the user's kept."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    first = probe_module(net, "16", batch=8)
    assert all(p.grad is None for p in net.parameters())
    mine = torch.full_like(net[0].weight, 7.0)
    net[0].weight.grad = mine
    second = probe_module(net, "16", batch=8)
    assert [r.grad_weight_var for r in first.layers] == [r.grad_weight_var for r in second.layers]
    assert net[0].weight.grad is mine
