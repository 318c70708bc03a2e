"""The hook the forward and backward passes call at every row: it takes the row's statistics as the
pass goes (and frees the row's caches), and does LSUV's rescaling before a row runs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..core.stats import Moments, dead_fraction, distinct_columns, moments, saturated_fraction
from ..core.token_stats import entropy_share, entropy_sums, frobenius, logit_std, logit_sums, token_cosine
from ..network.kinds import POOL_KINDS
from .blocks import TOKEN_STAT_KEYS, token_rows
from .gains import backward_references, input_rows, ratio, scale_free_rows
from .result import STAT_KEYS
from .token_build import distinct_units

# rows whose distinct units are counted on their output, before its last bias (`distinct_units`)
_TOKEN_WEIGHTED = ("embedding", "attention", "mlp", "token_dense", "unembedding")

# per-row numbers the gains need besides the reported ones
_RAW_EXTRA = ("preact_sq", "grad_input_sq", "input_sq", "grad_output_sq", "grad_weight_sq", "bias_spread")

if TYPE_CHECKING:  # for annotations only: the probe builds on this module
    from .plan import _Plan


_RECENT = 4  # forward arrays whose moments are remembered

# the per-row second moments that decide a layer gets no signal or no gradient (means over trials)
_ZERO_KEYS = ("preact_sq", "grad_input_sq", "grad_weight_sq")


class Recorder:
    """The hook `run_forward` / `run_backward` call: takes each row's statistics as the pass goes
    (then lets go of what only they needed, `Layer.drop_outputs`, unless *keep_outputs*; and frees
    the row's caches after the backward pass), and does LSUV's rescaling before a row runs."""

    def __init__(self, plan: _Plan, weight_moments: dict, keep_outputs: bool = False):
        self.plan = plan
        self.keep_outputs = keep_outputs  # else each row's outputs go once their statistics are taken
        self._recent: list[tuple[np.ndarray, Moments]] = []  # `_moments` of the last few arrays
        self._attention_sums: dict[int, tuple[dict, dict]] = {}  # row -> its chunks' logit, entropy sums
        self.index = {row.name: row.index for row in plan.graph.rows}
        self.weight_moments = weight_moments
        n = len(plan.graph.rows)
        self.raw = {key: np.full(n, np.nan) for key in (*STAT_KEYS, *_RAW_EXTRA, *TOKEN_STAT_KEYS)}
        self.raw["grad_norms"] = {}  # row -> {weight: |dL/dW|} for the rows of several weights
        self.token_rows = token_rows(plan.graph)  # what a transformer's rows take (`analysis.blocks`)
        self.forward_finite = True
        # rows whose E[x^2] going in is needed: a pooling row's own factor, a row at the data's gain
        self.input_needed = {row.index for row in plan.graph.rows if row.kind in POOL_KINDS}
        self.input_needed |= input_rows(plan.graph)
        free = scale_free_rows(plan.graph)  # a transformer's stream: its backward gain is scale-free
        references = backward_references(plan.graph)
        self.input_needed |= free | {references[i] for i in free}

    def _moments(self, array: np.ndarray) -> Moments:
        """`moments` of a forward array, once: a row's output comes back as the next row's input, a
        transformer branch's output as its add's ``branch``, the stream as the next norm's input. (No
        layer changes an array in place once it has returned it.)"""
        for seen, found in self._recent:
            if seen is array:
                return found
        found = moments(array)
        self._recent = [*self._recent[-(_RECENT - 1) :], (array, found)]
        return found

    def before_forward(self, layer, x):
        """LSUV (Mishkin & Matas 2015): rescale the row's weights to unit pre-activation variance on
        the input it actually gets. Then a weighted row is asked for x @ W before its bias."""
        i = self.index[layer.name]
        init = self.plan.inits[i]
        if layer.kind in ("dense", "conv2d"):
            layer.unbiased_hook = self.unbiased
        if layer.kind == "attention":  # its logits and weights, chunk by chunk (the softmax runs in place)
            logits, weights = self._attention_sums[i] = ({}, {})
            layer.logits_hook = lambda k, chunk, allowed: logits.__setitem__(k, logit_sums(chunk, allowed))
            layer.probs_hook = lambda k, chunk, allowed: weights.__setitem__(k, entropy_sums(chunk, allowed))
        if init is None or not init.data_driven:
            return
        layer.unbiased_hook = None  # not while LSUV tries the weights
        for _ in range(init.max_iter):
            var = moments(layer.transform(x)).var
            if not math.isfinite(var) or var == 0 or abs(var - 1.0) < init.tol:
                break
            layer.weight *= layer.weight.dtype.type(1.0 / math.sqrt(var))
        self.weight_moments[i] = moments(layer.weight)
        layer.unbiased_hook = self.unbiased

    def unbiased(self, layer, zw):
        """x @ W of a weighted row, before its bias: its distinct columns are its distinct units
        (units whose incoming weights are equal count once, whatever their biases)."""
        i = self.index[layer.name]
        units = zw.reshape(-1, zw.shape[-1])  # channels-last: a unit is a feature or a channel
        self.raw["distinct_units"][i] = distinct_columns(units)
        self.raw["bias_spread"][i] = float(np.ptp(layer.b)) if layer.b is not None and layer.b.size else 0.0

    def forward(self, layer):
        i, raw = self.index[layer.name], self.raw
        z, a = layer.z, layer.a
        zm = self._moments(z)
        am = zm if a is z else self._moments(a)
        weight = self.weight_moments.get(i)
        if weight is None and layer.weight is not None:  # a token row's weight, a norm's gamma
            weight = self.weight_moments[i] = moments(layer.weight)  # (the backward pass reads it too)
        if weight is not None:
            raw["weight_std"][i], raw["weight_rms"][i] = weight.std, math.sqrt(weight.second)
        raw["preact_mean"][i], raw["preact_var"][i], raw["preact_sq"][i] = zm
        raw["act_mean"][i], raw["act_var"][i] = am.mean, am.var
        if i in self.input_needed and layer.x.dtype.kind == "f":  # (token ids have no scale)
            raw["input_sq"][i] = self._moments(layer.x).second
        if layer.act.piecewise_linear:  # no saturation by definition: its flat side is "dead"
            raw["saturated_fraction"][i] = 0.0
        if math.isfinite(zm.second) and math.isfinite(am.second):
            units = z.reshape(-1, z.shape[-1])  # channels-last: a unit is a feature or a channel
            raw["dead_fraction"][i] = dead_fraction(units) if layer.act.relu_family else 0.0
            # symmetry is the weights' (counted before the bias, `unbiased`); later layers inherit it
            if layer.kind in _TOKEN_WEIGHTED:
                raw["distinct_units"][i] = distinct_units(layer)
            hidden_act = getattr(layer, "hidden_act", None)  # an MLP: its hidden units die, not its output
            if hidden_act is not None:
                raw["saturated_fraction"][i] = 0.0 if hidden_act.piecewise_linear else np.nan
                if hidden_act.relu_family:
                    raw["dead_fraction"][i] = dead_fraction(layer.hidden_pre.reshape(-1, layer.hidden_size))
        else:  # overflowed: counting dead or equal units of inf/nan means nothing
            raw["distinct_units"][i] = np.nan
            self.forward_finite = False
        self.transformer_forward(i, layer)
        if not self.keep_outputs:
            layer.drop_outputs()

    def transformer_forward(self, i: int, layer) -> None:
        """A transformer's statistics of row *i* (`analysis.blocks`), from what its live layer
        computed: an attention's ``logits``, ``probs`` and ``allowed`` mask, an add's ``branch`` (the
        branch's output before the add), a row's output ``a`` (the stream)."""
        take = self.token_rows.get(i)
        if not take:
            return
        raw = self.raw
        if "attention" in take:  # the chunks' sums, added in the chunks' order
            logits, weights = self._attention_sums.pop(i)
            raw["attn_logit_std"][i] = logit_std([logits[k] for k in sorted(logits)])
            raw["attn_entropy"][i] = entropy_share([weights[k] for k in sorted(weights)])
        if "branch" in take:
            raw["branch_var"][i] = self._moments(layer.branch).var
        if "stream" in take:
            raw["residual_sq"][i] = self._moments(layer.a).second
            raw["token_cosine"][i] = token_cosine(layer.a)

    def backward(self, layer, da, dx):
        i, raw = self.index[layer.name], self.raw
        self._recent = []  # the forward pass's arrays may go
        if dx is None:  # an embedding: token ids have no gradient (the row shows none, never nan)
            dxm = None
        else:
            dxm = moments(dx)
            raw["grad_input_var"][i], raw["grad_input_sq"][i] = dxm.var, dxm.second
        if self.plan.graph.rows[i].kind in POOL_KINDS:
            raw["grad_output_sq"][i] = moments(da).second
        if layer.dweight is not None:
            dwm = moments(layer.dweight)
            wm = self.weight_moments.get(i) or moments(layer.weight)
            raw["grad_weight_var"][i], raw["grad_weight_sq"][i] = dwm.var, dwm.second
            raw["grad_weight_rms"][i] = math.sqrt(dwm.second)
            raw["grad_weight_ratio"][i] = ratio(math.sqrt(dwm.second), math.sqrt(wm.second))
        if not layer.act.piecewise_linear:
            raw["saturated_fraction"][i] = saturated_fraction(layer.dact, layer.act.max_derivative)
        params = self.plan.graph.rows[i].params
        if params:  # every weight of a row of several: |dL/dW|
            raw["grad_norms"][i] = {p.key: frobenius(getattr(layer, "d" + p.key)) for p in params}
        hidden_act = getattr(layer, "hidden_act", None)
        if hidden_act is not None and not hidden_act.piecewise_linear and layer.hidden_dact is not None:
            raw["saturated_fraction"][i] = saturated_fraction(layer.hidden_dact, hidden_act.max_derivative)
        layer.free()  # what is no longer needed
