"""The probe: published results, an independent re-computation of every statistic, determinism,
and the classic failures."""

from __future__ import annotations

import itertools
import json
import math
import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import initdiag
from initdiag.analysis.result import FLAGS, format_number
from initdiag.errors import InitdiagError
from initdiag.network.kinds import LayerSpec
from initdiag.network.shorthand import parse_layers
from initdiag.network.stack import StackSpec
from initdiag.render.probe import to_json


def ratios(values):
    return [b / a for a, b in itertools.pairwise(values)]


# --- published results --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, second_moment", [("normal", 1.0), ("uniform", 1.0), ("normal:2", 4.0), ("uniform:0.5", 1 / 12)]
)
def test_he_relu_keeps_preact_variance_at_twice_the_input_second_moment(source, second_moment):
    # He et al. 2015: Var(z_l) = fan_in Var(W) E[x_{l-1}^2] = 2 E[x^2] at every layer, for zero-mean
    # input (a large common mean correlates the samples and the finite-width drift grows)
    r = initdiag.probe("1024,1024x10", act="relu", init="he_normal", batch=512, input=source)
    for layer in r.layers[:-1]:
        second = layer.preact_var + layer.preact_mean**2
        assert second == pytest.approx(2 * second_moment, rel=0.2), layer.name
    assert r.summary.verdict == "ok"


def test_xavier_relu_halves_per_layer():
    # Var(W) = 2/(n+n) = 1/n, and relu keeps half the second moment: z^2 halves per layer
    r = initdiag.probe("1024,1024x8", act="relu", init="xavier_normal", batch=512)
    second = [layer.preact_var + layer.preact_mean**2 for layer in r.layers[:-1]]
    for ratio in ratios(second):
        assert ratio == pytest.approx(0.5, rel=0.15)


def test_tanh_with_torch_default_shrinks_by_a_third_in_the_linear_regime():
    # Glorot & Bengio 2010: U(-1/sqrt n, 1/sqrt n) has Var(W) = 1/(3n); tanh is linear near 0,
    # so each layer multiplies the variance by about 1/3
    r = initdiag.probe("1024,1024x8", act="tanh", init="torch_default", bias_init="zeros", batch=512)
    var = [layer.preact_var for layer in r.layers[:-1]]
    for ratio in ratios(var)[2:]:  # after two layers the signal is small enough to be linear
        assert ratio == pytest.approx(1 / 3, rel=0.1)
    assert ratios(var)[0] < 1 / 3  # tanh is sub-linear away from 0: the first step shrinks more


def test_backward_variance_is_the_mirror_image():
    # fan_out mode preserves the gradient's second moment backward (He et al. 2015, eq. 14)
    r = initdiag.probe("1024,1024x8,1024", act="relu", init="he_normal:mode=fan_out", batch=512)
    for layer in r.layers:
        assert layer.backward_gain == pytest.approx(1.0, rel=0.25), layer.name


# --- every statistic, recomputed independently ----------------------------------------------------


def independent_probe(widths, acts, seed, batch, loss):
    """Plain-numpy re-implementation using the documented random streams."""
    rng_x = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, 0)))
    X = rng_x.standard_normal((batch, widths[0]), dtype=np.float64)
    Ws, bs = [], []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, 2, i)))
        Ws.append(rng.standard_normal((n_in, n_out), dtype=np.float64) * math.sqrt(2.0 / n_in))
        bs.append(np.zeros(n_out))
    fns = {
        "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0) * 1.0),
        "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
        "linear": (lambda z: z, lambda z: np.ones_like(z)),
    }
    xs, zs, as_ = [], [], []
    h = X
    for W, b, act in zip(Ws, bs, acts, strict=True):
        xs.append(h)
        z = h @ W + b
        h = fns[act][0](z)
        zs.append(z)
        as_.append(h)
    rng_t = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, 1)))
    if loss == "unit":
        G = rng_t.standard_normal(h.shape, dtype=np.float64)
        grad = G / batch
    else:
        T = rng_t.standard_normal(h.shape, dtype=np.float64)
        grad = 2 * (h - T) / h.size
    out = {}
    for i in range(len(Ws) - 1, -1, -1):
        dz = grad * fns[acts[i]][1](zs[i])
        dW = xs[i].T @ dz
        grad = dz @ Ws[i].T
        out[i] = {
            "weight_std": Ws[i].std(),
            "preact_mean": zs[i].mean(),
            "preact_var": zs[i].var(),
            "act_mean": as_[i].mean(),
            "act_var": as_[i].var(),
            "grad_input_var": grad.var(),
            "grad_weight_var": dW.var(),
            "grad_weight_ratio": np.linalg.norm(dW) / np.linalg.norm(Ws[i]),
            "dead_fraction": np.mean(np.all(zs[i] <= 0, axis=0)) if acts[i] == "relu" else 0.0,
            "distinct_units": len({tuple(col) for col in zs[i].T}),
            "_z2": np.mean(zs[i] ** 2),
            "_dx2": np.mean(grad**2),
        }
    for i in out:
        out[i]["forward_gain"] = out[i]["_z2"] / out[0]["_z2"]
        out[i]["backward_gain"] = out[i]["_dx2"] / out[len(Ws) - 1]["_dx2"]
    return out


@pytest.mark.parametrize("loss", ["unit", "mse"])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_every_statistic_matches_an_independent_computation(act, loss):
    widths = [20, 30, 25, 8]
    acts = [act, act, "linear"]
    r = initdiag.probe("20,30,25,8", act=act, init="he_normal", seed=11, batch=40, loss=loss, dtype="float64")
    truth = independent_probe(widths, acts, seed=11, batch=40, loss=loss)
    for i, layer in enumerate(r.layers):
        for key, expected in truth[i].items():
            if not key.startswith("_"):
                assert getattr(layer, key) == pytest.approx(expected, rel=1e-9, abs=1e-15), (layer.name, key)


@pytest.mark.parametrize("init", ["xavier_uniform", "he_normal", "trunc_normal:0.05", "orthogonal", "lsuv"])
def test_float32_and_float64_probe_the_same_weights(init):
    # draws are made in float64 and cast: the dtypes differ only in arithmetic precision
    a = initdiag.probe("64,128,128,10", act="tanh", init=init, dtype="float32", loss="mse")
    b = initdiag.probe("64,128,128,10", act="tanh", init=init, dtype="float64", loss="mse")
    for la, lb in zip(a.layers, b.layers, strict=True):
        for key in ("weight_std", "preact_var", "act_var", "grad_input_var", "grad_weight_var"):
            assert getattr(la, key) == pytest.approx(getattr(lb, key), rel=1e-4), (la.name, key)


# --- determinism ------------------------------------------------------------------------------------


def test_same_seed_same_json():
    a = to_json(initdiag.probe("100,64,64,10", act="gelu", init="lecun_normal", seed=5, trials=2))
    b = to_json(initdiag.probe("100,64,64,10", act="gelu", init="lecun_normal", seed=5, trials=2))
    assert a == b
    c = to_json(initdiag.probe("100,64,64,10", act="gelu", init="lecun_normal", seed=6, trials=2))
    assert a != c


def test_changing_layer_three_leaves_layers_one_and_two_alone():
    def spec(third_init):
        layers = (LayerSpec(64), LayerSpec(64), LayerSpec(64, init=third_init), LayerSpec(10))
        return StackSpec(input_shape=(32,), layers=layers, init="he_normal")

    a = initdiag.probe(spec("he_normal"))
    b = initdiag.probe(spec("normal:0.5"))
    for key in ("weight_std", "preact_mean", "preact_var", "act_var", "distinct_units"):
        assert getattr(a.layers[0], key) == getattr(b.layers[0], key)
        assert getattr(a.layers[1], key) == getattr(b.layers[1], key)
    assert a.layers[2].weight_std != b.layers[2].weight_std
    assert a.layers[3].weight_std == b.layers[3].weight_std  # layer 4 draws from its own stream too


def test_first_trial_is_the_single_run_and_trials_report_spread():
    one = initdiag.probe("50,40,10", seed=3)
    three = initdiag.probe("50,40,10", seed=3, trials=3)
    assert one.layers[0].weight_std != three.layers[0].weight_std  # a mean over three draws
    assert three.layers[0].sd["weight_std"] > 0
    d = three.to_dict()
    assert "preact_var_sd" in d["layers"][0] and "forward_gain_sd" in d["summary"]
    # the mean over trials is the mean of per-trial values: trial 0 is the single run
    two = initdiag.probe("50,40,10", seed=3, trials=2)
    trial1 = 2 * two.layers[0].weight_std - one.layers[0].weight_std
    assert two.layers[0].sd["weight_std"] == pytest.approx(
        abs(trial1 - one.layers[0].weight_std) / math.sqrt(2)
    )


# --- the classic failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["zeros", "constant:0.5"])
def test_constant_init_is_symmetric(init):
    r = initdiag.probe("784,256,256,10", act="relu", init=init)
    for layer in r.layers:
        assert layer.distinct_units == 1
        assert "symmetric" in layer.flags
    assert r.summary.verdict == "fail"


def test_zeros_is_also_dead_and_the_gains_are_undefined_not_overflowed():
    r = initdiag.probe("784,256,256,10", act="relu", init="zeros")
    assert r.layers[0].dead_fraction == 1.0
    assert "nonfinite" not in r.summary.flags
    assert math.isnan(r.summary.forward_gain)


def test_sigmoid_with_huge_weights_saturates():
    r = initdiag.probe("784,256,256,10", act="sigmoid", init="normal:10")
    for layer in r.layers[:-1]:
        assert layer.saturated_fraction > 0.9
        assert "saturated" in layer.flags


def test_deep_relu_with_xavier_vanishes_in_the_deep_layers():
    r = initdiag.probe("256,256x30,10", act="relu", init="xavier_normal")
    assert r.layers[0].forward_gain == 1.0
    assert all(layer.forward_gain < 0.1 and "vanishing" in layer.flags for layer in r.layers[5:])
    # and the gradient vanishes towards the input: layer 1's is the smallest; it is the gradient of
    # the data, so it is not judged, but the next layer's (what dense1's weights get) is
    assert r.layers[0].backward_gain < 1e-6 and not r.layers[0].gain_judged[1]
    assert r.layers[1].backward_gain < 1e-6 and "vanishing" in r.layers[1].flags
    assert r.summary.forward_gain < 1e-6
    assert any("forward gain" in reason and "(vanishing)" in reason for reason in r.summary.reasons)


def test_deep_relu_with_he_does_not_vanish():
    r = initdiag.probe("256,256x30,10", act="relu", init="he_normal")
    assert not {"vanishing", "exploding"} & set(r.summary.flags)


def test_overflow_is_reported_not_raised():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning may leak
        r = initdiag.probe("256,256x60,10", act="relu", init="normal:1")
    assert "nonfinite" in r.summary.flags
    assert "exploding" in r.summary.flags
    text = to_json(r)
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert data["summary"]["forward_gain"] is None
    last = data["layers"][-1]
    assert last["preact_var"] is None and "nonfinite" in last["flags"]
    assert r.summary.reasons[0].endswith("so the loss and every gradient are not numbers")


def test_lsuv_reaches_unit_variance_within_tolerance():
    r = initdiag.probe("200,300,300,300,10", act="relu", init="lsuv", batch=512)
    for layer in r.layers:
        assert abs(layer.preact_var - 1) < 0.1, layer.name
    r = initdiag.probe("200,300,300,10", act="tanh", init="lsuv:tol=0.01", batch=512, bias_init="normal:0.3")
    for layer in r.layers:
        assert abs(layer.preact_var - 1) < 0.01, layer.name


# --- inputs and files -----------------------------------------------------------------------------


def test_input_file(tmp_path):
    X = np.random.default_rng(0).normal(3.0, 2.0, (64, 20))
    path = tmp_path / "x.npy"
    np.save(path, X)
    r = initdiag.probe("20,50,5", init="he_normal", input=str(path), dtype="float64")
    assert r.settings.batch == 64
    # z = X W: E[z^2] = fan_in Var(W) E[x^2] = 2 (9 + 4) on average over units
    assert r.layers[0].preact_var + r.layers[0].preact_mean ** 2 == pytest.approx(26, rel=0.35)
    np.save(tmp_path / "bad.npy", X[:, :10])
    with pytest.raises(InitdiagError, match=r"has shape \(64, 10\) but the stack takes \(batch, 20\)"):
        initdiag.probe("20,50,5", input=str(tmp_path / "bad.npy"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InitdiagError, match="pickled Python objects, refused"):
        initdiag.probe("20,50,5", input=str(tmp_path / "obj.npy"))
    with pytest.raises(InitdiagError, match="file not found"):
        initdiag.probe("20,50,5", input=str(tmp_path / "missing.npy"))
    (tmp_path / "text.npy").write_text("1 2 3\n")
    with pytest.raises(InitdiagError, match=r"is not a numpy file \(\.npy or \.npz"):
        initdiag.probe("20,50,5", input=str(tmp_path / "text.npy"))
    (tmp_path / "spec.toml").write_text("x = 1\n")
    with pytest.raises(InitdiagError, match=r"input '.*spec\.toml': use normal, uniform"):
        initdiag.probe("20,50,5", input=str(tmp_path / "spec.toml"))


def test_weights_from_file(tmp_path):
    rng = np.random.default_rng(0)
    W1, W2 = rng.normal(0, 0.1, (10, 8)), rng.normal(0, 0.1, (8, 3))
    path = tmp_path / "w.npz"
    np.savez(path, dense1=W1, **{"dense2.weight": W2, "dense2.bias": np.full(3, 0.5)})
    r = initdiag.probe("10,8,3", init=f"file:{path}", dtype="float64")
    assert r.layers[0].weight_std == pytest.approx(W1.std(), rel=1e-12)
    assert r.layers[1].weight_std == pytest.approx(W2.std(), rel=1e-12)
    assert r.layers[1].preact_mean == pytest.approx(0.5, abs=0.2)  # the file's bias was used

    np.savez(tmp_path / "wrong.npz", dense1=W1, dense2=rng.normal(size=(8, 4)))
    with pytest.raises(InitdiagError) as info:
        initdiag.probe("10,8,3", init=f"file:{tmp_path / 'wrong.npz'}")
    assert "layer dense2 needs shape (8, 3) (fan_in, fan_out) but the file holds (8, 4)" in str(info.value)

    np.savez(tmp_path / "torch.npz", dense1=W1.T, dense2=W2)
    with pytest.raises(InitdiagError, match=r"PyTorch's \(out, in\) layout, save W\.T"):
        initdiag.probe("10,8,3", init=f"file:{tmp_path / 'torch.npz'}")

    np.savez(tmp_path / "partial.npz", dense1=W1)
    with pytest.raises(InitdiagError, match=r"no array for layer dense2 .* it holds: dense1"):
        initdiag.probe("10,8,3", init=f"file:{tmp_path / 'partial.npz'}")

    np.savez(tmp_path / "pickled.npz", dense1=np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(InitdiagError, match="pickled Python objects, refused"):
        initdiag.probe("10,8,3", init=f"file:{tmp_path / 'pickled.npz'}")

    with pytest.raises(InitdiagError, match="file not found"):
        initdiag.probe("10,8,3", init=f"file:{tmp_path / 'nope.npz'}")


# --- memory ---------------------------------------------------------------------------------------


def test_a_stack_too_big_is_refused_before_allocating():
    start = time.perf_counter()
    with pytest.raises(InitdiagError, match=r"needs about 7\.3 TiB .* is available"):
        initdiag.probe("1000000,1000000,10")
    assert time.perf_counter() - start < 1.0  # nothing was allocated


def test_memory_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("INITDIAG_MAX_MEMORY", "1MB")
    with pytest.raises(InitdiagError, match=r"needs about .* but 976\.6 KiB is available"):
        initdiag.probe("1000,1000,10")
    monkeypatch.setenv("INITDIAG_MAX_MEMORY", "lots")
    with pytest.raises(InitdiagError, match="not a size like 512MB"):
        initdiag.probe("10,10")


def test_memory_estimate_is_an_upper_bound_of_the_weights():
    from initdiag.analysis.probe import estimate_memory

    est = estimate_memory(parse_layers("784,256,256,10").resolve(), batch=256, dtype="float32")
    params = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert est.weights == 2 * 4 * params  # W and dW
    assert est.activations >= 256 * (784 + 2 * (256 + 256 + 10)) * 4


# --- result shape -------------------------------------------------------------------------------


def test_json_has_exactly_the_contract_keys():
    data = initdiag.probe("30,20,10").to_dict()
    assert list(data) == ["schema_version", "initdiag_version", "spec", "settings", "layers", "summary"]
    contract = {
        "name", "kind", "fan_in", "fan_out", "act", "init", "weight_std", "preact_mean", "preact_var",
        "act_mean", "act_var", "grad_input_var", "grad_weight_var", "grad_weight_ratio", "dead_fraction",
        "saturated_fraction", "distinct_units", "flags",
    }  # fmt: skip
    assert contract <= set(data["layers"][0])
    assert {"forward_gain", "backward_gain", "verdict", "flags"} <= set(data["summary"])
    assert set(data["summary"]["flags"]) <= set(FLAGS)
    assert data["spec"]["layers"][0] == {
        "kind": "dense", "name": "dense1", "units": 20, "act": "relu", "init": "he_normal",
    }  # fmt: skip


def test_spec_is_the_shorthand_resolved():
    spec = parse_layers("784,256x3,10", act="tanh", init="xavier").resolve()
    assert spec.widths == (784, 256, 256, 256, 10)
    # resolved once into objects: the probe never reads their text again
    from initdiag.core.activations import Activation
    from initdiag.core.initializers import Initializer

    assert all(isinstance(x.act, Activation) and isinstance(x.init, Initializer) for x in spec.layers)
    assert [str(layer.act) for layer in spec.layers] == ["tanh"] * 3 + ["linear"]
    assert {str(layer.init) for layer in spec.layers} == {"xavier_uniform"}
    assert spec.shorthand() == "784,256x3,10"


# --- verdict and reasons ----------------------------------------------------------------------------


def test_reasons_name_the_worst_layer_once_per_kind():
    r = initdiag.probe("256,256x30,10", act="relu", init="xavier_normal")
    assert r.summary.verdict == "fail"
    forward = [x for x in r.summary.reasons if "forward gain" in x]
    assert len(forward) == 1  # one sentence per kind, not one per layer
    worst = min(r.layers, key=lambda s: s.forward_gain)
    assert forward[0].startswith(f"layer {worst.name}: forward gain ")
    assert "< 1/10 (vanishing); " in forward[0] and forward[0].endswith("more layers too")
    n_vanishing = sum(1 for s in r.layers if s.forward_gain < 0.1)
    assert f"; {n_vanishing - 1} more layers too" in forward[0]


def test_deep_he_relu_warns_about_dead_units_without_failing():
    # the input-correlation collapse of deep relu MLPs (Lu et al. 2019): ~30% of units never fire
    # on the batch by depth 30, whatever the scale of the weights
    r = initdiag.probe("256,256x30,10", act="relu", init="he_normal")
    assert r.summary.verdict == "warn" and r.summary.flags == []
    assert len(r.summary.reasons) == 1 and "of units dead; " in r.summary.reasons[0]
    worst = max(r.layers, key=lambda s: s.dead_fraction)
    assert r.summary.worst_layer == worst.name
    assert 0.25 < worst.dead_fraction <= 0.5


def test_warn_band_is_three_quarters_of_the_way_to_the_limit():
    # Xavier (Var 1/256) on 256-wide relu layers halves E[z^2] per layer: dense3's forward gain is
    # about 1/4, inside [10^-0.75, 10^0.75] = [0.178, 5.62]: ok; with T = 6 it lies between 1/6
    # (fail) and 6^-0.75 = 0.261: warn; with T = 3 it is below 1/3: fail
    ok = initdiag.probe("256,256,256,256", init="xavier_normal")
    assert ok.summary.verdict == "ok"
    assert ok.summary.forward_gain == pytest.approx(0.25, rel=0.15)
    warn = initdiag.probe("256,256,256,256", init="xavier_normal", max_gain=6)
    assert warn.summary.verdict == "warn"
    gain = format_number(warn.summary.forward_gain)
    assert warn.summary.reasons == [f"layer dense3: forward gain {gain} is close to vanishing (limit 1/6)"]
    fail = initdiag.probe("256,256,256,256", init="xavier_normal", max_gain=3)
    assert fail.summary.verdict == "fail" and fail.summary.flags == ["vanishing"]


@given(
    st.integers(1, 6), st.integers(1, 12), st.integers(0, 2**32 - 1), st.sampled_from(["float32", "float64"])
)
@settings(max_examples=60, deadline=None)
def test_distinct_units_are_compared_exactly_column_by_column(batch, units, seed, dtype):
    """distinct_columns against a plain set of column tuples: duplicated columns, -0.0 equal to 0.0,
    a single sample, a single unit."""
    from initdiag.core.stats import distinct_columns

    rng = np.random.default_rng(seed)
    base = rng.integers(-1, 2, size=(batch, max(1, units // 2))).astype(dtype)
    z = base[:, rng.integers(0, base.shape[1], size=units)]  # columns repeated at random
    z[z == 0] = rng.choice([0.0, -0.0], size=int((z == 0).sum()))
    expected = len({tuple(float(v) + 0.0 for v in z[:, j]) for j in range(units)})
    assert distinct_columns(z) == expected
