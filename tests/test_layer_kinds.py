"""Layer kinds beyond dense (conv2d, pooling, flatten, normalization, dropout, activation, residual
blocks): gradients against finite differences, and the published behaviour each is known for."""

from __future__ import annotations

import math

import numpy as np
import pytest
from finite_differences import central_difference

import initdiag
from initdiag.analysis.probe import _build, _plan, _sample_layer, channels_last
from initdiag.core.layers import run_backward, run_forward
from initdiag.errors import InitdiagError
from initdiag.network.kinds import LayerSpec
from initdiag.network.settings import ProbeSettings
from initdiag.network.shorthand import parse_layers
from initdiag.network.stack import StackSpec


def conv(channels, **keys):
    return LayerSpec(kind="conv2d", channels=channels, **keys)


def kind(name, **keys):
    return LayerSpec(kind=name, **keys)


# A stack that mixes every kind: a strided conv residual block with a 1x1 projection, batch and
# layer normalization, pooling, dropout, a standalone activation, flatten, and a dense residual
# block with a dense projection. Smooth activations, so central differences are exact enough.
MIXED = StackSpec(
    input_shape=(2, 7, 6),
    layers=(
        conv(3, kernel=3, padding="same", act="tanh"),
        kind("batchnorm", act="gelu"),
        kind(
            "residual",
            scale=0.7,
            layers=(conv(4, kernel=3, stride=2, padding=1, act="linear"), kind("layernorm", act="silu")),
        ),
        kind("maxpool2d", size=2),
        kind("dropout", rate=0.25),
        kind("activation", act="tanh"),
        kind("flatten"),
        kind("residual", layers=(LayerSpec(units=5, act="sigmoid"), kind("dropout", rate=0.5))),
        LayerSpec(units=6, act="elu"),
        kind("layernorm"),
        LayerSpec(units=3),
    ),
    init="xavier_normal",
    bias_init="normal:0.1",
)


def _network(spec, seed=3, batch=5):
    settings = ProbeSettings(batch=batch, seed=seed, dtype="float64")
    plan = _plan(spec.resolve(), "float64")
    weighted = [i for i, ctx in enumerate(plan.contexts) if ctx is not None]
    sampled = {i: _sample_layer(plan, seed, 0, i) for i in weighted}
    return plan, _build(plan, sampled, settings, 0), sampled


def test_mixed_stack_gradients_match_finite_differences():
    _, nodes, _ = _network(MIXED)
    rng = np.random.default_rng(0)
    X = channels_last(rng.normal(size=(5, 2, 7, 6)))
    out_shape = run_forward(nodes, X).shape
    G = rng.normal(size=out_shape)

    def loss():
        return float(np.sum(run_forward(nodes, X) * G))

    h = run_forward(nodes, X)
    assert h.shape == (5, 3)
    dX = run_backward(nodes, G.copy())
    layers = {}

    def collect(items):
        for node in items:
            if hasattr(node, "branch"):
                collect(node.branch)
                layers[node.add.name] = node.add
            else:
                layers[node.name] = node

    collect(nodes)
    grads = {name: layer.dweight.copy() for name, layer in layers.items() if layer.dweight is not None}
    # every parameter kind: conv W, the 1x1 projection, gamma of both norms, dense W, dense projection
    assert {"conv1", "res1.conv1", "res1", "bn1", "res1.ln1", "res2", "res2.dense1", "dense1", "ln1"} <= set(
        grads
    )
    for index in [(0, 0, 0, 0), (1, 3, 2, 1), (4, 6, 5, 0), (2, 4, 1, 1)]:
        assert dX[index] == pytest.approx(central_difference(loss, X, index), rel=1e-6, abs=1e-9)
    for name, grad in grads.items():
        weight = layers[name].weight
        for flat in np.random.default_rng(1).choice(weight.size, size=min(4, weight.size), replace=False):
            index = np.unravel_index(flat, weight.shape)
            assert grad[index] == pytest.approx(
                central_difference(loss, weight, index), rel=1e-5, abs=1e-9
            ), name


def test_rows_of_the_mixed_stack():
    result = initdiag.run_probe(MIXED.resolve(), ProbeSettings(batch=16, dtype="float64"))
    names = [layer.name for layer in result.layers]
    assert names == ["conv1", "bn1", "res1.conv1", "res1.ln1", "res1", "maxpool1", "dropout1", "act1",
                     "flatten1", "res2.dense1", "res2.dropout1", "res2", "dense1", "ln1", "dense2"]  # fmt: skip
    res1 = result.layer("res1")
    assert res1.output_shape == (4, 4, 3) and res1.units == 4
    assert (res1.fan_in, res1.fan_out) == (3, 4)  # the 1x1 projection's fans
    assert result.layer("res1.conv1").depth == 1 and res1.depth == 0
    assert result.layer("flatten1").output_shape == (8,)
    assert result.layer("res2").fan_in == 8 and result.layer("res2").fan_out == 5
    for name in ("maxpool1", "dropout1", "act1", "flatten1"):
        layer = result.layer(name)
        assert layer.weight_std is None and layer.grad_weight_ratio is None and layer.distinct_units is None
        assert layer.fan_in is None and "nonfinite" not in layer.flags
    assert result.layer("bn1").weight_std == 0  # gamma starts at exactly 1
    data = initdiag.to_json(result)
    assert '"output_shape": [\n        4,\n        4,\n        3\n      ]' in data


def _second(layer):
    return layer.act_var + layer.act_mean**2


def _pre_second(layer):
    return layer.preact_var + layer.preact_mean**2


def test_he_conv_stack_keeps_twice_the_input_second_moment():
    """He et al. 2015: with fan_in = in_ch*kh*kw and std sqrt(2/fan_in), E[z_l^2] = 2 E[x_l^2], for
    conv layers as for dense ones (valid padding: every output sees a full window)."""
    layers = tuple(conv(64, kernel=3, padding="valid") for _ in range(10))
    spec = StackSpec((16, 28, 28), layers, init="he_normal")
    result = initdiag.run_probe(spec.resolve(), ProbeSettings(batch=16, trials=3))
    assert _pre_second(result.layers[0]) == pytest.approx(2.0, rel=0.05)  # E[x^2] = 1
    ratios = []
    for before, layer in zip(result.layers, result.layers[1:], strict=False):
        ratios.append(_pre_second(layer) / (2 * _second(before)))
        assert ratios[-1] == pytest.approx(1, rel=0.2), layer.name
    assert np.exp(np.mean(np.log(ratios))) == pytest.approx(1, abs=0.06)
    assert result.layers[-1].output_shape == (64, 8, 8)
    assert result.summary.verdict == "ok"


def test_batchnorm_stops_the_forward_explosion_and_its_gradient_explodes_as_published():
    """256,256x20,10 with N(0, 1) weights explodes (each layer x128); with batch normalization the
    forward pass stays put, and the backward pass grows by pi/(pi-1) per layer in E[g^2], the
    gradient explosion of batch-normalized relu nets at init (Yang et al. 2019, ICLR)."""
    plain = initdiag.probe("256,256x20,10", init="normal:1")
    assert plain.summary.forward_gain > 1e30 and "exploding" in plain.summary.flags
    normed = initdiag.probe("256,256x20,10", init="normal:1", norm="batch")
    dense = [x for x in normed.layers if x.kind == "dense"]
    # each hidden dense layer's x128 is erased by the norm after it: its forward gain is not judged
    assert all(not x.gain_judged[0] for x in dense[:-1])
    # the logits are measured from the last norm: 256 * Var(W) * E[relu(bn)^2] = 256 * 1 / 2
    assert normed.summary.forward_gain_from == "bn20" and dense[-1].forward_reference == "bn20"
    assert dense[-1].forward_gain == pytest.approx(128, rel=0.5) and dense[-1].gain_judged[0]
    for layer in normed.layers:
        if layer.kind == "batchnorm":
            assert layer.preact_mean == pytest.approx(0, abs=1e-6)
            assert layer.preact_var == pytest.approx(1, abs=1e-3)
            assert layer.act == "relu" and layer.dead_fraction == 0
    rate = (dense[2].backward_gain / dense[18].backward_gain) ** (1 / 16)
    assert rate == pytest.approx(math.pi / (math.pi - 1), rel=0.06)


def test_layernorm_keeps_every_sample_at_unit_scale():
    result = initdiag.probe("128,128x6,10", init="normal:1", norm="layer")
    for layer in result.layers:
        if layer.kind == "layernorm":
            assert _pre_second(layer) == pytest.approx(1, abs=1e-3)
            assert layer.forward_gain == 1.0
    # only the logits' scale reaches the output: N(0, 1) weights on 128 normalized inputs
    assert [x.name for x in result.layers if x.gain_judged[0]] == ["dense7"]
    assert result.summary.forward_gain_from == "ln6" and result.summary.forward_gain > 10


def test_residual_he_grows_like_two_to_the_depth_and_scaled_stays_bounded():
    """Pre-activation blocks x + s W relu(x) with He W: E[out^2] = (1 + s^2) E[x^2] per block, so 2^L
    for s = 1 and (1 + 1/L)^L < e for s = 1/sqrt(L)."""
    plain = initdiag.probe("256,256x50,10", residual=True)
    sums = [x for x in plain.layers if x.kind == "residual"]
    assert len(sums) == 50
    rate = (sums[40].forward_gain / sums[10].forward_gain) ** (1 / 30)
    assert rate == pytest.approx(2.0, rel=0.05)
    assert plain.summary.verdict == "fail"
    scaled = initdiag.probe("256,256x50,10", residual=True, residual_scale=50**-0.5)
    sums = [x for x in scaled.layers if x.kind == "residual"]
    assert sums[-1].forward_gain == pytest.approx((1 + 1 / 50) ** 50, rel=0.15)
    assert all(x.forward_gain < 3.5 for x in sums)
    assert scaled.summary.verdict != "fail"


def test_pooling_factors_are_divided_out_of_the_gains():
    """A 2x2 max pool passes each gradient to one of four inputs: E[dx^2] = E[dz^2] / 4 exactly; its
    own forward factor E[pool(a)^2] / E[a^2] is divided out of the next layers' forward gains."""
    spec = StackSpec((4, 16, 16), (conv(8), kind("maxpool2d"), conv(8), kind("flatten"), LayerSpec(units=5)))
    result = initdiag.run_probe(spec.resolve(), ProbeSettings(batch=8))
    conv1, pool, conv2 = result.layers[:3]
    pool_grad = pool.grad_input_var  # gradients have mean ~0 here; compare second moments
    assert pool_grad == pytest.approx(conv2.grad_input_var / 4, rel=0.02)
    own = _pre_second(pool) / _second(conv1)
    assert conv2.forward_gain == pytest.approx(_pre_second(conv2) / _pre_second(conv1) / own, rel=1e-6)


def test_dropout_multiplies_the_second_moment_by_one_over_keep():
    result = initdiag.probe("512,512,512,10", dropout=0.3, batch=512)
    dense1, dropout1 = result.layers[:2]
    assert dropout1.kind == "dropout"
    assert _pre_second(dropout1) == pytest.approx(_second(dense1) / 0.7, rel=0.03)
    # its own stream: the rate changes the mask, not any layer's weights
    other = initdiag.probe("512,512,512,10", dropout=0.5, batch=512)
    assert other.layers[0].weight_std == result.layers[0].weight_std
    assert other.layer("dense2").weight_std == result.layer("dense2").weight_std
    again = initdiag.probe("512,512,512,10", dropout=0.3, batch=512)
    assert again.layers[1].preact_var == dropout1.preact_var


def test_shorthand_shapes():
    spec = parse_layers("64,64x2,10", norm="batch", dropout=0.1, residual=True, residual_scale=0.5).resolve()
    kinds = [(layer.name, layer.kind) for layer in spec.walk()]
    assert kinds == [
        ("res1", "residual"), ("res1.bn1", "batchnorm"), ("res1.act1", "activation"), ("res1.dense1", "dense"),
        ("res1.dropout1", "dropout"), ("res2", "residual"), ("res2.bn1", "batchnorm"),
        ("res2.act1", "activation"), ("res2.dense1", "dense"), ("res2.dropout1", "dropout"), ("dense1", "dense"),
    ]  # fmt: skip
    acts = {layer.name: str(layer.act) for layer in spec.walk()}
    assert acts["res1.bn1"] == "linear" and acts["res1.act1"] == "relu" and acts["res1.dense1"] == "linear"
    plain = parse_layers("784,256,10", norm="layer").resolve()
    assert [(x.name, str(x.act)) for x in plain.layers] == [
        ("dense1", "linear"),
        ("ln1", "relu"),
        ("dense2", "linear"),
    ]


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ((conv(4, kernel=9, padding="valid"),), "layer conv1: kernel 9x9 is larger than its 8x8 input"),
        ((LayerSpec(units=4),), "layer dense1: a dense layer needs a flat input but gets (3, 8, 8)"),
        ((kind("maxpool2d", size=9),), "pooling window 9x9 is larger than its 8x8 input"),
        ((kind("residual"),), "a residual block needs at least one layer"),
        ((kind("dropout", rate=1.0),), "rate must be a number in [0, 1), got 1.0"),
        ((kind("dropout"),), "a dropout layer needs 'rate'"),
        ((kind("batchnorm", init="he"),), "a batchnorm layer takes no 'init'"),
        ((kind("conv3d"),), "unknown kind 'conv3d'; did you mean 'conv2d'?"),
        (
            (kind("residual", layers=(kind("flatten"),)),),
            "residual block res1: its branch maps (3, 8, 8) to (192,)",
        ),
    ],
)
def test_impossible_layers_are_one_clear_error(layers, message):
    with pytest.raises(InitdiagError, match=None) as info:
        StackSpec((3, 8, 8), layers).resolve()
    assert message in str(info.value)


def test_conv_on_a_flat_input_and_channels_of_an_input_file(tmp_path):
    with pytest.raises(InitdiagError, match=r"needs a \(channels, height, width\) input but gets \(64,\)"):
        StackSpec((64,), (conv(4),)).resolve()
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 1, 8, 8)))
    spec = StackSpec((3, 8, 8), (conv(4), kind("flatten"), LayerSpec(units=2))).resolve()
    with pytest.raises(InitdiagError, match="1 channels where the stack has 3"):
        initdiag.run_probe(spec, ProbeSettings(input=str(path)))
    np.save(path, np.random.default_rng(0).normal(size=(4, 3, 8, 8)))
    result = initdiag.run_probe(spec, ProbeSettings(input=str(path)))
    assert result.settings.batch == 4


def test_conv_weights_from_a_file_in_pytorch_layout(tmp_path):
    path = tmp_path / "w.npz"
    W = np.random.default_rng(0).normal(size=(4, 3, 3, 3)) * 0.1
    np.savez(path, conv1=W, **{"conv1.bias": np.full(4, 0.5)})
    spec = StackSpec((3, 8, 8), (conv(4, init=f"file:{path}"), kind("global_avgpool"), LayerSpec(units=2)))
    result = initdiag.run_probe(spec.resolve(), ProbeSettings(batch=4))
    assert result.layers[0].weight_std == pytest.approx(W.std(), rel=1e-6)
    path = tmp_path / "w2.npz"  # (archives are cached by path)
    np.savez(path, conv1=np.zeros((4, 2, 3, 3)))
    spec = StackSpec((3, 8, 8), (conv(4, init=f"file:{path}"), kind("global_avgpool"), LayerSpec(units=2)))
    with pytest.raises(InitdiagError, match="its 2 input channels do not match the layer's 3"):
        initdiag.run_probe(spec.resolve(), ProbeSettings(batch=4))


def test_a_conv_stack_that_will_not_fit_is_refused_with_the_estimate(monkeypatch):
    monkeypatch.setenv("INITDIAG_MAX_MEMORY", "256MB")
    spec = StackSpec((3, 224, 224), (conv(64), conv(64), kind("global_avgpool"), LayerSpec(units=10)))
    with pytest.raises(
        InitdiagError, match=r"this stack needs about 8\.\d GiB .* but 244\.1 MiB is available"
    ):
        initdiag.run_probe(spec.resolve(), ProbeSettings(batch=64))
