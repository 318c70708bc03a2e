"""initdiag train: datasets as scikit-learn and CS231n define them, the batched training loop's
gradients against finite differences, and the classic results of the initialization experiment."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from finite_differences import central_difference
from typer.testing import CliRunner

from initdiag.analysis.batched import Network, Optimizer, loss_and_grad
from initdiag.analysis.toy_data import make_circles, make_moons, make_spiral
from initdiag.analysis.train import TrainSettings, _fit, _widths, estimate_memory, train
from initdiag.cli import app
from initdiag.core.activations import get_activation
from initdiag.errors import InitdiagError

runner = CliRunner()


def test_circles_and_moons_as_scikit_learn():
    rng = np.random.default_rng(0)
    X, y = make_circles(300, 0.0, rng)
    radius = np.hypot(X[:, 0], X[:, 1])
    assert np.allclose(radius[y == 0], 1.0) and np.allclose(radius[y == 1], 0.8)
    assert (y == 0).sum() == 150 and (y == 1).sum() == 150
    angles = np.sort(np.arctan2(X[y == 0, 1], X[y == 0, 0]) % (2 * np.pi))
    assert np.allclose(np.diff(angles), 2 * np.pi / 150)  # evenly spaced, endpoint excluded
    noisy, _ = make_circles(20000, 0.05, np.random.default_rng(1))
    clean, _ = make_circles(20000, 0.0, np.random.default_rng(1))
    assert np.std(noisy - clean) == pytest.approx(0.05, rel=0.02)
    X, y = make_moons(100, 0.0, rng)
    assert np.allclose(np.hypot(X[y == 0, 0], X[y == 0, 1]), 1.0)
    assert np.allclose(np.hypot(X[y == 1, 0] - 1, X[y == 1, 1] - 0.5), 1.0)


def test_spiral_as_cs231n():
    X, y = make_spiral(300, 0.0, np.random.default_rng(0))
    assert sorted(np.bincount(y)) == [100, 100, 100]
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.min() == 0 and r.max() == pytest.approx(1.0)
    k = y[np.argmax(r)]  # at r = 1 the angle is 4(k + 1): x = sin t, y = cos t
    t = 4.0 * (k + 1)
    assert X[np.argmax(r)] == pytest.approx([math.sin(t), math.cos(t)])


@pytest.mark.parametrize(("classes", "act"), [(2, "tanh"), (2, "relu"), (3, "gelu")])
def test_batched_gradients_match_finite_differences(classes, act):
    rng = np.random.default_rng(5)
    R, N, widths = 3, 7, [2, 4, 3, 1 if classes == 2 else 3]
    Ws = [rng.normal(size=(R, o, i)) for i, o in itertools.pairwise(widths)]
    bs = [rng.normal(size=(R, o, 1)) * 0.1 for o in widths[1:]]
    net = Network(Ws, bs, get_activation(act))
    X = rng.normal(size=(R, 2, N))
    labels = rng.integers(0, classes, size=(R, N))
    Y = labels[:, None, :].astype(float) if classes == 2 else np.stack([np.eye(3)[lab].T for lab in labels])
    logits, work = net.forward(X)
    _, dlogits = loss_and_grad(logits, Y, classes)
    grads = net.backward(dlogits, work)
    dWs, dbs = [g[:, :, :-1] for g in grads], [g[:, :, -1:] for g in grads]

    def total() -> float:
        return float(loss_and_grad(net.forward(X)[0], Y, classes)[0].sum())  # runs are independent

    for params, grads in ((net.Ws, dWs), (net.bs, dbs)):  # views: writing them perturbs the network
        for p, g in zip(params, grads, strict=True):
            for index in [(0, 0, 0), (R - 1, p.shape[1] - 1, p.shape[2] - 1), (1, p.shape[1] // 2, 0)]:
                assert g[index] == pytest.approx(central_difference(total, p, index), rel=1e-6, abs=1e-9)


def test_zeros_start_at_ln2_and_never_break_symmetry():
    report = train(["zeros"], TrainSettings(iters=500))
    zeros = report.results[0]
    assert zeros.initial_loss[0] == math.log(2)  # sigmoid(0) = 1/2 for every point, exactly
    assert bool(zeros.symmetric[0])
    for W, b in zeros.models[0][:-1]:  # every hidden unit has the same incoming weights and bias
        assert np.all(W[:, :1] == W) and np.all(b == b[0])
    assert zeros.verdict.startswith("never broke symmetry")
    assert zeros.test_accuracy[0] == pytest.approx(0.5, abs=0.05)


def test_he_learns_circles_across_seeds_and_huge_weights_start_far_worse():
    report = train(["he", "normal:10"], TrainSettings(iters=15000, trials=4))
    he, huge = report.results
    assert np.all(he.test_accuracy >= 0.9), he.test_accuracy
    assert he.verdict.startswith("learned")
    assert np.all(huge.initial_loss > 10 * he.initial_loss)  # saturated logits: BCE grows like |z|
    assert np.mean(huge.initial_loss) > 100 * np.mean(he.initial_loss)
    assert not huge.verdict.startswith("learned")


def test_adam_rescues_a_tiny_init_that_sgd_leaves_stalled():
    sgd = train(["normal:0.1"], TrainSettings(iters=3000)).results[0]
    adam = train(["normal:0.1"], TrainSettings(iters=3000, optimizer="adam")).results[0]
    assert sgd.verdict.startswith("stalled") and sgd.test_accuracy[0] < 0.6
    assert adam.test_accuracy[0] >= 0.9


def test_runs_train_the_same_alone_or_batched_or_on_processes():
    settings = TrainSettings(iters=300, trials=2)
    together = train(["he", "xavier", "normal:0.5"], settings)
    for result in together.results:
        alone = train([result.label], TrainSettings(iters=300, trials=2, jobs=1)).results[0]
        np.testing.assert_allclose(result.loss_curve, alone.loss_curve, rtol=1e-12)
        assert np.array_equal(result.test_accuracy, alone.test_accuracy)
    threaded = train(["he", "xavier", "normal:0.5"], TrainSettings(iters=300, trials=2, jobs=2))
    np.testing.assert_allclose(threaded.results[2].loss_curve, together.results[2].loss_curve, rtol=1e-12)


def _one_step(optimizer: str, grad: float, steps: int = 1, **keys) -> np.ndarray:
    p = np.full((2, 1, 1), 1.0)
    opt = Optimizer(TrainSettings(optimizer=optimizer, lr=0.1, **keys), [p])
    for t in range(1, steps + 1):
        opt.step([np.full_like(p, grad)], t)
    return p


def test_optimizers_follow_their_definitions():
    assert _one_step("sgd", 2.0)[0, 0, 0] == pytest.approx(1 - 0.1 * 2)
    # momentum (torch.optim.SGD): v1 = g, v2 = 0.9 g + g
    assert _one_step("momentum", 2.0, steps=2)[0, 0, 0] == pytest.approx(1 - 0.1 * 2 - 0.1 * (0.9 * 2 + 2))
    # Adam's first step is lr * sign(g) (bias-corrected m / sqrt(v) = g / |g|)
    assert _one_step("adam", 5.0)[0, 0, 0] == pytest.approx(1 - 0.1 * 5 / (5 + 1e-8))
    # warm-up: step 1 of 4 uses lr / 4
    assert _one_step("sgd", 2.0, warmup=4)[0, 0, 0] == pytest.approx(1 - 0.1 / 4 * 2)
    # clipping is per run, over all its parameters
    p, q = np.full((2, 1, 2), 1.0), np.full((2, 1, 1), 1.0)
    opt = Optimizer(TrainSettings(lr=1.0, clip=1.0), [p, q])
    opt.step([np.array([[[3.0, 0.0]], [[0.3, 0.0]]]), np.array([[[4.0]], [[0.4]]])], 1)
    assert p[0, 0, 0] == pytest.approx(1 - 3 / 5) and q[0, 0, 0] == pytest.approx(1 - 4 / 5)
    assert p[1, 0, 0] == pytest.approx(1 - 0.3) and q[1, 0, 0] == pytest.approx(1 - 0.4)  # norm 0.5: as is


def _tiny_net(act: str = "relu", seed: int = 3, runs: int = 2):
    rng = np.random.default_rng(seed)
    widths = [2, 4, 3, 1]
    Ws = [rng.normal(size=(runs, o, i)).astype(np.float32) for i, o in itertools.pairwise(widths)]
    bs = [rng.normal(size=(runs, o, 1)).astype(np.float32) * 0.1 for o in widths[1:]]
    X = rng.normal(size=(runs, 2, 9)).astype(np.float32)
    Y = (rng.random((runs, 1, 9)) > 0.5).astype(np.float32)
    return Network(Ws, bs, get_activation(act)), X, Y


def test_a_reused_workspace_computes_what_a_fresh_one_does():
    net, X, Y = _tiny_net()
    logits, work = net.forward(X)
    grads = net.backward(loss_and_grad(logits, Y, 2)[1], work)
    for p, g in zip(net.params, grads, strict=True):
        p -= 0.5 * g  # a step, then the same buffers again
    logits, _ = net.forward(work=work)
    reused = [g.copy() for g in net.backward(loss_and_grad(logits, Y, 2)[1], work)]
    fresh_logits, fresh = net.forward(X)
    assert np.array_equal(logits, fresh_logits)
    for a, b in zip(reused, net.backward(loss_and_grad(fresh_logits, Y, 2)[1], fresh), strict=True):
        assert np.array_equal(a, b)


def test_relus_fast_path_trains_as_the_generic_one():
    relu = train(["he", "normal:1"], TrainSettings(iters=500, act="relu")).results
    generic = train(["he", "normal:1"], TrainSettings(iters=500, act="leaky_relu:0")).results
    for a, b in zip(relu, generic, strict=True):
        np.testing.assert_allclose(a.loss_curve, b.loss_curve, rtol=1e-6)


def test_weight_decay_applies_to_weights_not_biases():
    settings = TrainSettings(iters=1, lr=0.5, weight_decay=0.1)
    plain, X, Y = _tiny_net()
    decayed, _, _ = _tiny_net()
    start = [p.copy() for p in plain.params]
    _fit(plain, X, Y, TrainSettings(iters=1, lr=0.5), 2, [0, 1])
    _fit(decayed, X, Y, settings, 2, [0, 1])
    for p0, a, b in zip(start, plain.params, decayed.params, strict=True):  # one SGD step: -lr * wd * W
        np.testing.assert_allclose(
            b[:, :, :-1] - a[:, :, :-1], -0.5 * 0.1 * p0[:, :, :-1], rtol=1e-4, atol=1e-7
        )
        assert np.array_equal(b[:, :, -1], a[:, :, -1])


@pytest.mark.parametrize(
    ("inits", "keys"),
    [
        (["he", "xavier"], {"layers": "2,256,256,1", "trials": 2}),
        (["he"], {"layers": "2,256,256,1", "act": "tanh", "optimizer": "adam", "trials": 3}),
        (["orthogonal", "lsuv"], {"layers": "2,512,64,1", "optimizer": "momentum", "trials": 2}),
        (["he"], {"dataset": "spiral", "layers": "2,512,3", "trials": 2, "n_test": 1000}),
    ],
)
def test_the_memory_estimate_bounds_the_measured_peak(inits, keys):
    import tracemalloc

    settings = TrainSettings(iters=3, jobs=1, **keys)
    runs = len(inits) * settings.trials
    weights, activations = estimate_memory(settings, _widths(settings), runs, orthogonal="lsuv" in inits)
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        train(inits, settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= weights + activations <= 2.5 * peak + (8 << 20)


def test_a_training_that_will_not_fit_is_refused_with_the_estimate(monkeypatch):
    monkeypatch.setenv("INITDIAG_MAX_MEMORY", "1MiB")
    result = runner.invoke(app, ["train", "--trials", "10"])
    assert result.exit_code == 2
    assert result.stderr.startswith("initdiag: error: training 60 runs of 2,10,5,1 needs about 13.2 MiB")
    assert result.stderr.count("\n") == 1 and "use fewer initializers or --trials" in result.stderr


def test_weight_decay_pulls_weights_toward_zero():
    free = train(["he"], TrainSettings(iters=2000)).results[0]
    decayed = train(["he"], TrainSettings(iters=2000, weight_decay=0.1)).results[0]
    norm = [sum(float(np.sum(W**2)) for W, _ in r.models[0]) for r in (free, decayed)]
    assert norm[1] < 0.8 * norm[0]


def test_spiral_trains_with_softmax():
    report = train(["he"], TrainSettings(dataset="spiral", layers="2,100,3", iters=2000, lr=0.5))
    assert report.results[0].initial_loss[0] == pytest.approx(math.log(3), rel=0.5)
    assert report.results[0].test_accuracy[0] > 0.8


def test_json_has_the_contract_keys():
    result = runner.invoke(
        app, ["train", "--init", "he,zeros", "--iters", "200", "--trials", "2", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["init"] for r in data["results"]] == ["he_normal", "zeros"]
    keys = {"init", "final_loss", "train_accuracy", "test_accuracy", "loss_curve", "final_loss_sd",
            "train_accuracy_sd", "test_accuracy_sd", "initial_loss", "verdict"}  # fmt: skip
    assert keys <= set(data["results"][0])
    assert len(data["results"][0]["loss_curve"]) == len(data["results"][0]["loss_curve_iters"]) == 101
    assert data["settings"]["dataset"] == "circles" and data["settings"]["noise"] == 0.05


def test_table_and_boundary():
    result = runner.invoke(app, ["train", "--init", "zeros,he", "--iters", "3000", "--plot-boundary"],
                           env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("train · circles (300 train, 100 test, noise 0.05) · 2 → 10 → 5 → 1 · relu")
    assert "never broke symmetry" in out
    assert "zeros: 50% test" in out and "he: " in out
    assert out.count("o") > 100 and "x" in out  # the points of both classes are drawn


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "blobs"], "--dataset 'blobs' is not one of circles, moons, spiral"),
        (["--out-act", "tanh"], "circles trains a sigmoid output with binary cross-entropy; use sigmoid"),
        (["--layers", "3,10,1"], "the toy sets are 2-D, so the input width must be 2"),
        (["--layers", "2,10,2"], "circles needs one sigmoid output, so the last width must be 1"),
        (["--dataset", "spiral", "--layers", "2,10,1"], "spiral needs 3 outputs"),
        (["--lr", "0"], "--lr must be a positive number, got 0"),
        (["--optimizer", "rmsprop"], "--optimizer 'rmsprop' is not one of sgd, momentum, adam"),
        (["--iters", "0"], "--iters must be a positive integer, got 0"),
        (["--jobs", "0"], "--jobs must be a positive integer, got 0"),
        (["--init", "he,hee"], "unknown initializer 'hee'; did you mean 'he'?"),
        (["--save-plot", "curves.svg"], "--save-plot 'curves.svg': write a .png file"),
    ],
)
def test_bad_input_is_one_line(args, message):
    result = runner.invoke(
        app, ["train", "--iters", "10", *args] if "--iters" not in args else ["train", *args]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_save_plot_without_matplotlib_says_how_to_get_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = runner.invoke(app, ["train", "--iters", "10", "--save-plot", "out.png"])
    assert result.exit_code == 2
    assert "--save-plot needs matplotlib: pip install 'initdiag[plot]'" in result.stderr


def test_train_settings_are_checked():
    with pytest.raises(InitdiagError, match=r"^clip must be a positive number"):
        train(["he"], TrainSettings(clip=0.0))
    with pytest.raises(InitdiagError, match="train needs at least one initializer"):
        train([], TrainSettings())


def test_float64_and_float32_train_alike():
    f32 = train(["he"], TrainSettings(iters=2000)).results[0]
    f64 = train(["he"], TrainSettings(iters=2000, dtype="float64")).results[0]
    assert f32.initial_loss[0] == pytest.approx(f64.initial_loss[0], rel=1e-6)
    assert f32.final_loss[0] == pytest.approx(f64.final_loss[0], rel=1e-3)
    assert f32.test_accuracy[0] == f64.test_accuracy[0]
    assert f32.models[0][0][0].dtype == np.float32 and f64.models[0][0][0].dtype == np.float64


def test_a_loss_that_grows_is_diverged_not_stalled():
    """The review's `initdiag train --lr 1e10 --iters 100 --init he` said `stalled: loss 0.852 ->
    1.54e+09`: a loss that grows (or stops being a number) is `diverged`."""
    args = ["train", "--lr", "1e10", "--iters", "100", "--init", "he", "--jobs", "1"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "diverged: loss 0.852 -> 1.54e+9, 50% test" in result.stdout
    assert "stalled" not in result.stdout
    grown = train(["he"], TrainSettings(iters=100, lr=1e10, jobs=1)).results[0]
    assert grown.final_loss[0] > grown.initial_loss[0] and grown.verdict.startswith("diverged: loss")
    flat = train(["zeros"], TrainSettings(iters=100, jobs=1)).results[0]  # ln 2 to ln 2: not diverged
    assert not flat.verdict.startswith("diverged")
