"""The coordinate check of a transformer: ``initdiag coordcheck --layers
"transformer:d=W,heads=4,blocks=2,seq=16,vocab=64"``.

The model is a GPT-style decoder in numpy (`initdiag.core.transformer`): token embedding plus learned
positions, ``blocks`` blocks of causal self-attention and an MLP (``norm=pre``: x + f(LN(x)), GPT-2;
``norm=post``: LN(x + f(x))), a final LayerNorm with pre-norm, and an unembedding to ``vocab`` logits.
The width that scales is d (``d=W``, or ``d=2W``); the number of heads stays fixed, so head_dim scales
with d, as in the mup package's transformer example. Trained on one fixed batch of random token ids
with random next-token labels (softmax cross-entropy over every position).

Each tensor's role (Tensor Programs V, Table 3) follows from which of its dimensions scale: the
embedding and positions (vocab or seq -> d) are ``input`` weights, every projection of attention and
the MLP ``hidden``, the unembedding (d -> vocab) ``output``, LayerNorm gains and biases of length d
``bias`` (vector-like: Table 3 puts them with the input weights), the unembedding's bias ``fixed``.
μP also scales the attention logits by 1/head_dim instead of 1/sqrt(head_dim) (TP5 sec. 4,
"attention logit scaling"), written relative to the base width so that μP is SP there:
q.k * sqrt(head_dim_0) / head_dim. The other parametrizations keep 1/sqrt(head_dim).

Recorded at every step, as mup's coord check records module outputs: the embedding's output
(``emb``), each block's attention and MLP branch outputs before their adds (``block1.attn``,
``block1.mlp``) and the stream after the block (``block1``), and the logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InitdiagError, did_you_mean

PREFIX = "transformer:"
NORMS = ("pre", "post")
KEYS = ("d", "heads", "blocks", "seq", "vocab", "norm", "mult")
_WEIGHTS, _DATA = 2, 3  # stream purposes (as coordtrain: a layer's draws, the batch)
ADAM_EPS = 1e-8
ATTENTION_BYTES = 4  # logits, probabilities and their gradients per (batch, head, query, key), roughly


def is_transformer(text: str) -> bool:
    return str(text).strip().lower().startswith(PREFIX)


@dataclass(frozen=True)
class TransformerStack:
    """A decoder whose width d = ``mult_d`` * W scales (see the module doc)."""

    mult_d: int
    heads: int
    blocks: int
    seq: int
    vocab: int
    norm: str = "pre"
    mlp_mult: float = 4.0

    def d(self, n: int) -> int:
        return self.mult_d * n

    def head_dim(self, n: int) -> int:
        return self.d(n) // self.heads

    def label(self) -> str:
        d = "W" if self.mult_d == 1 else f"{self.mult_d}W"
        return (
            f"transformer d={d} · {self.heads} heads · {self.blocks} block{'s' if self.blocks > 1 else ''} · "
            f"seq {self.seq} · vocab {self.vocab} · {self.norm}-LN"
        )

    def layer_infos(self) -> list[tuple[str, str, str]]:
        """(name, shape, role) of each recorded output."""
        w = "W" if self.mult_d == 1 else f"{self.mult_d}W"
        infos = [("emb", f"{self.vocab} → {w}", "input")]
        for b in range(1, self.blocks + 1):
            infos += [
                (f"block{b}.attn", f"{w} → {w}", "hidden"),
                (f"block{b}.mlp", f"{w} → {w}", "hidden"),
                (f"block{b}", f"{w} → {w}", "hidden"),
            ]
        return [*infos, ("logits", f"{w} → {self.vocab}", "output")]

    def check_widths(self, widths: list[int]) -> None:
        for n in widths:
            if self.d(n) % self.heads:
                raise InitdiagError(
                    f"--widths: d = {self.d(n)} at W = {n} is not a multiple of heads = {self.heads}; "
                    "choose widths that the heads divide"
                )

    def madds(self, n: int, batch: int) -> float:
        """Multiply-adds of one forward pass at width n."""
        d, tokens = self.d(n), batch * self.seq
        hidden = round(self.mlp_mult * d)
        per_token = self.blocks * (4 * d * d + 2 * d * hidden + 2 * self.seq * d) + d * self.vocab
        return float(tokens * per_token)

    def run_bytes(self, n: int, batch: int, itemsize: int) -> int:
        """Bytes one run holds: parameters with their gradients and optimizer states (x 4), the
        cached activations and the attention's (batch, heads, seq, seq) arrays."""
        d, tokens = self.d(n), batch * self.seq
        hidden = round(self.mlp_mult * d)
        params = self.blocks * (4 * d * d + 2 * d * hidden) + 2 * self.vocab * d + self.seq * d
        acts = tokens * (self.blocks * (16 * d + 3 * hidden) + 2 * self.vocab)
        scores = self.blocks * batch * self.heads * self.seq * self.seq * ATTENTION_BYTES
        recorded = 2 * tokens * d * (3 * self.blocks + 1)  # each output now and at init
        return itemsize * (4 * params + acts + scores + recorded)


def parse_transformer(text: str) -> TransformerStack:
    """``transformer:d=W,heads=4,blocks=2,seq=16,vocab=64[,norm=pre|post][,mult=4]``; d is ``W`` or
    ``kW``, the rest integers (mult a number); one `InitdiagError` line for anything else."""
    shown = str(text).strip()
    values: dict[str, str] = {}
    for part in shown[len(PREFIX) :].split(","):
        key, sep, raw = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in KEYS:
            what = f"unknown key '{key}'" if sep else f"'{part.strip()}' is not key=value"
            hint = did_you_mean(key, KEYS) or f"; keys: {', '.join(KEYS)}"
            raise InitdiagError(f"--layers '{shown}': {what}{hint}")
        if key in values:
            raise InitdiagError(f"--layers '{shown}': {key} given twice")
        values[key] = raw.strip().lower()
    missing = [k for k in ("d", "heads", "blocks", "seq", "vocab") if k not in values]
    if missing:
        raise InitdiagError(
            f"--layers '{shown}': give {', '.join(missing)}, e.g. "
            "transformer:d=W,heads=4,blocks=2,seq=16,vocab=64"
        )
    d = values["d"]
    multiple = d[:-1] if d.endswith("w") else None
    if multiple is None or not (
        multiple == "" or (multiple.isascii() and multiple.isdigit() and int(multiple) > 0)
    ):
        raise InitdiagError(
            f"--layers '{shown}': d must be W or a multiple of it (2W): the width that scales"
        )

    def positive(key: str, low: int = 1) -> int:
        raw = values[key]
        if not (raw.isascii() and raw.isdigit()) or int(raw) < low:
            raise InitdiagError(f"--layers '{shown}': {key} must be an integer >= {low}, got '{raw}'")
        return int(raw)

    norm = values.get("norm", "pre")
    if norm not in NORMS:
        raise InitdiagError(f"--layers '{shown}': norm must be pre or post, got '{norm}'")
    try:
        mlp_mult = float(values.get("mult", "4"))
    except ValueError:
        mlp_mult = math.nan
    if not (mlp_mult > 0 and math.isfinite(mlp_mult)):
        raise InitdiagError(f"--layers '{shown}': mult must be a positive number, got '{values['mult']}'")
    return TransformerStack(
        int(multiple or 1), positive("heads"), positive("blocks"), positive("seq"), positive("vocab", 2),
        norm, mlp_mult,
    )  # fmt: skip


# --- one run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tensor:
    """One parameter: where it lives, its shape and role, and how it starts."""

    key: str  # "emb.W", "block1.attn.W_qkv", "ln_f.gamma", "unembed.W", ...
    shape: tuple[int, ...]
    role: str  # a `parametrizations.ROLES` entry
    fans_at: tuple[int, ...] | None  # None: a norm's gain or bias (ones or zeros, never drawn)
    fill: float = 0.0


def tensors(stack: TransformerStack, n: int) -> list[Tensor]:
    """Every parameter at width n, in a fixed order (its index is its random stream)."""
    d = stack.d(n)
    hidden = round(stack.mlp_mult * d)
    out = [
        Tensor("emb.W", (stack.vocab, d), "input", (stack.vocab, d)),
        Tensor("pos.P", (stack.seq, d), "input", (stack.seq, d)),
    ]
    for b in range(1, stack.blocks + 1):
        p = f"block{b}."
        out += [
            Tensor(p + "ln1.gamma", (d,), "bias", None, 1.0),
            Tensor(p + "ln1.beta", (d,), "bias", None),
            Tensor(p + "attn.W_qkv", (d, 3 * d), "hidden", (d, 3 * d)),
            Tensor(p + "attn.b_qkv", (3 * d,), "bias", None),
            Tensor(p + "attn.W_o", (d, d), "hidden", (d, d)),
            Tensor(p + "attn.b_o", (d,), "bias", None),
            Tensor(p + "ln2.gamma", (d,), "bias", None, 1.0),
            Tensor(p + "ln2.beta", (d,), "bias", None),
            Tensor(p + "mlp.W_in", (d, hidden), "hidden", (d, hidden)),
            Tensor(p + "mlp.b_in", (hidden,), "bias", None),
            Tensor(p + "mlp.W_out", (hidden, d), "hidden", (hidden, d)),
            Tensor(p + "mlp.b_out", (d,), "bias", None),
        ]
    if stack.norm == "pre":
        out += [Tensor("ln_f.gamma", (d,), "bias", None, 1.0), Tensor("ln_f.beta", (d,), "bias", None)]
    return [*out, Tensor("unembed.W", (d, stack.vocab), "output", (d, stack.vocab))]


class Model:
    """The decoder of one run, on arrays its `TransformerBlock`s and token layers share."""

    def __init__(
        self, stack: TransformerStack, n: int, values: dict[str, np.ndarray], attn_scale: float, act
    ):
        from ..core.transformer import (
            Embedding,
            PositionEmbedding,
            TokenDense,
            TokenLayerNorm,
            TransformerBlock,
        )

        d = stack.d(n)
        self.stack = stack
        self.emb = Embedding("emb", stack.vocab, d, params={"W": values["emb.W"]})
        self.pos = PositionEmbedding("pos", stack.seq, d, params={"P": values["pos.P"]})
        self.blocks = []
        for b in range(1, stack.blocks + 1):
            prefix = f"block{b}."
            own = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
            block = TransformerBlock(
                f"block{b}", d, stack.heads, norm=stack.norm, causal=True, mlp_mult=stack.mlp_mult,
                mlp_act=act, params=own, dtype=values["emb.W"].dtype,
            )  # fmt: skip
            block.attn.scale = attn_scale
            self.blocks.append(block)
        self.ln_f = (
            TokenLayerNorm("ln_f", d, params={"gamma": values["ln_f.gamma"], "beta": values["ln_f.beta"]})
            if stack.norm == "pre"
            else None
        )
        self.unembed = TokenDense("unembed", d, stack.vocab, bias=False, params={"W": values["unembed.W"]})

    def forward(self, ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """The logits and the recorded outputs (emb, per block attn, mlp, stream; logits)."""
        x = self.pos.forward(self.emb.forward(ids))
        recorded = [x]
        for block in self.blocks:
            x = block.forward(x)
            branch = block.branch_outputs
            recorded += [branch["attn"], branch["mlp"], x]
        if self.ln_f is not None:
            x = self.ln_f.forward(x)
        logits = self.unembed.forward(x)
        return logits, [*recorded, logits]

    def backward(self, dlogits: np.ndarray) -> dict[str, np.ndarray]:
        dx = self.unembed.backward(dlogits)
        grads = {"unembed.W": self.unembed.dW}
        if self.ln_f is not None:
            dx = self.ln_f.backward(dx)
            grads |= {"ln_f.gamma": self.ln_f.dgamma, "ln_f.beta": self.ln_f.dbeta}
        for block in reversed(self.blocks):
            dx = block.backward(dx)
            grads |= {f"{block.name}.{k}": v for k, v in block.grads.items()}
        self.emb.backward(self.pos.backward(dx))
        return grads | {"pos.P": self.pos.dP, "emb.W": self.emb.dW}


def softmax_xent(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy over every (sample, position) and its gradient, as F.cross_entropy."""
    rows = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    rows -= rows.max(axis=1, keepdims=True)
    exp = np.exp(rows)
    probs = exp / exp.sum(axis=1, keepdims=True)
    flat = labels.reshape(-1)
    index = np.arange(len(flat))
    loss = float(-np.mean(np.log(probs[index, flat])))
    probs[index, flat] -= 1.0
    probs /= len(flat)
    return loss, probs.astype(logits.dtype).reshape(logits.shape)


def initial_state(job: dict) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, float], float]:
    """One run's parameters at init, each tensor's learning rate and Adam epsilon, and the attention
    logits' scale, from the parametrization's rules (see the module doc). *job*: the stack, the width
    n and base, the parametrization, the seed, the initializer and the settings."""
    from ..core.activations import get_activation
    from ..core.initializers import LayerContext, compute_fans
    from ..core.parametrizations import init_scale
    from .inputs import stream

    stack, n, base, param, settings = job["stack"], job["n"], job["base"], job["param"], job["settings"]
    init, seed = job["init"], job["seed"]
    dtype, m = np.dtype(settings.dtype), n / base
    linear = get_activation("linear")
    values, lrs, epss = {}, {}, {}
    at_base = {t.key: t for t in tensors(stack, base)}
    for index, t in enumerate(tensors(stack, n)):
        if t.fans_at is None:
            values[t.key] = np.full(t.shape, t.fill, dtype=dtype)
        else:
            ctx = LayerContext(t.key, t.shape, compute_fans(t.fans_at), linear, np.dtype("float64"))
            rng = stream(settings.seed, seed, _WEIGHTS, index, n)
            draw = np.asarray(init.sample(rng, ctx), dtype=np.float64)
            if not param.own_init:
                base_t = at_base[t.key]
                base_ctx = ctx._replace(shape=base_t.shape, fans=compute_fans(base_t.fans_at))
                draw *= init_scale(init, ctx, base_ctx, param.variance_factor(t.role, m), "--init", param)
            values[t.key] = draw.astype(dtype)
        lrs[t.key] = settings.lr * param.lr_factor(t.role, m, settings.optimizer)
        epss[t.key] = ADAM_EPS * param.eps_factor(t.role, m)
    head_dim, base_head_dim = stack.head_dim(n), stack.head_dim(base)
    mup = getattr(param, "name", "") == "mup"
    if mup and param.zero_readout:  # and a zero query, as mup's transformer coord check (query_zero_init)
        for b in range(1, stack.blocks + 1):
            values[f"block{b}.attn.W_qkv"][:, : stack.d(n)] = 0
    attn_scale = math.sqrt(base_head_dim) / head_dim if mup else 1.0 / math.sqrt(head_dim)
    return values, lrs, epss, attn_scale


def batch(stack: TransformerStack, settings) -> tuple[np.ndarray, np.ndarray]:
    """The one batch every run trains on: token ids and next-token labels, uniform over the vocab."""
    from .inputs import stream

    data = stream(settings.seed, 0, _DATA)
    ids = data.integers(0, stack.vocab, (settings.batch, stack.seq))
    return ids, data.integers(0, stack.vocab, (settings.batch, stack.seq))


def run_transformer(job: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One (parametrization, width, seed) run (*job* as `initial_state` takes it): l1, std, delta
    (layers, steps + 1) and the loss (steps + 1,), recorded before each update (0 = init)."""
    from .batched import ADAM_BETAS, MOMENTUM

    stack, n, settings = job["stack"], job["n"], job["settings"]
    dtype = np.dtype(settings.dtype)
    values, lrs, epss, attn_scale = initial_state(job)
    ids, labels = batch(stack, settings)
    model = Model(stack, n, values, attn_scale, settings.act)
    steps, layers = settings.steps, len(stack.layer_infos())
    l1, std, delta = (np.full((layers, steps + 1), np.nan) for _ in range(3))
    losses = np.full(steps + 1, np.nan)
    first: list[np.ndarray] = []
    state: dict[str, list[np.ndarray]] = {}
    b1, b2 = ADAM_BETAS
    with np.errstate(all="ignore"):
        for t in range(steps + 1):
            logits, outputs = model.forward(ids)
            for i, out in enumerate(outputs):
                x = out.astype(np.float64)
                l1[i, t], std[i, t] = float(np.mean(np.abs(x))), float(np.std(x))
                if t == 0:
                    first.append(x)
                delta[i, t] = float(np.mean(np.abs(x - first[i])))
            losses[t], dlogits = softmax_xent(logits, labels)
            if t == steps or not np.isfinite(losses[t]):
                break
            for key, g in model.backward(dlogits).items():
                p, g = values[key], np.asarray(g, dtype=dtype)
                if settings.optimizer == "sgd":
                    p -= dtype.type(lrs[key]) * g
                elif settings.optimizer == "momentum":
                    buf = state.setdefault(key, [np.zeros_like(p)])[0]
                    buf *= dtype.type(MOMENTUM)
                    buf += g
                    p -= dtype.type(lrs[key]) * buf
                else:
                    m1, v = state.setdefault(key, [np.zeros_like(p), np.zeros_like(p)])
                    m1 += dtype.type(1 - b1) * (g - m1)
                    v += dtype.type(1 - b2) * (g * g - v)
                    step = t + 1
                    denom = np.sqrt(v / dtype.type(1 - b2**step)) + dtype.type(epss[key])
                    p -= dtype.type(lrs[key] / (1 - b1**step)) * m1 / denom
    return l1, std, delta, losses


# --- every run ------------------------------------------------------------------------------------

_SECONDS_PER_MADD = 0.15e-9  # one core, float32, fwd + bwd counted as 3 passes; measured on small widths
_SECONDS_PER_STEP = 2e-3  # per block: the Python and the small arrays of one step
LOWER = "lower --widths, --steps, --seeds or --batch, or use fewer --param values, blocks, seq or vocab"


def check_data(settings) -> None:
    if settings.data != "random" or settings.loss != "xent":
        raise InitdiagError(
            "a transformer's coordcheck trains on random token ids with next-token cross-entropy: "
            "--data random and --loss xent"
        )


def transformer_records(stack: TransformerStack, widths: list[int], base: int, params: list, init, settings):
    """Train every (parametrization, seed, width) run of *stack*; the records (4: l1, std, delta,
    loss; params, seeds, widths, layers, steps + 1). Refused at once, before anything is drawn, when
    the data or loss is not a language model's, or the work or memory is past its limit."""
    import os

    from .budget import refuse_long
    from .memory import available_memory, format_bytes
    from .workers import run_all

    check_data(settings)
    stack.check_widths([*widths, base])
    runs = [(p, s, w) for p in range(len(params)) for s in range(settings.seeds) for w in range(len(widths))]
    steps = settings.steps + 1
    seconds_each = [
        steps
        * (3 * stack.madds(widths[w], settings.batch) * _SECONDS_PER_MADD + stack.blocks * _SECONDS_PER_STEP)
        for _, _, w in runs
    ]
    workers = settings.jobs or (1 if sum(seconds_each) < 1.0 else min(os.cpu_count() or 1, len(runs)))
    refuse_long(
        sum(seconds_each) / workers, f"this coordcheck ({len(widths)} widths up to {widths[-1]:,})", LOWER
    )
    itemsize = np.dtype(settings.dtype).itemsize
    need, have = workers * stack.run_bytes(widths[-1], settings.batch, itemsize), available_memory()
    if have is not None and need > have:
        raise InitdiagError(
            f"this coordcheck needs about {format_bytes(need)} (width {widths[-1]:,}, {workers} at once) but "
            f"{format_bytes(have)} is available; {LOWER}"
        )
    order = sorted(range(len(runs)), key=lambda r: -seconds_each[r])  # largest first
    jobs = [
        ({"stack": stack, "n": widths[runs[r][2]], "base": base, "param": params[runs[r][0]],
          "seed": runs[r][1], "init": init, "settings": settings},)
        for r in order
    ]  # fmt: skip
    outcomes = run_all(run_transformer, jobs, workers)
    layers = len(stack.layer_infos())
    records = np.full((4, len(params), settings.seeds, len(widths), layers, steps), np.nan)
    for r, (l1, std, delta, loss) in zip(order, outcomes, strict=True):
        p, s, w = runs[r]
        records[0, p, s, w], records[1, p, s, w], records[2, p, s, w] = l1, std, delta
        records[3, p, s, w, 0] = loss
    return records
