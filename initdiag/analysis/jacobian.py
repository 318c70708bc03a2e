"""Dynamical isometry: the singular values of the input-output Jacobian (Saxe et al. 2014;
Pennington, Schoenholz & Ganguli 2017).

For a dense chain z_l = a_{l-1} W_l + b_l, a_l = phi_l(z_l), the Jacobian of the output with respect
to one input sample x, in row-vector form, is

    J = W_1 D_1 W_2 D_2 ... W_L D_L,    D_l = diag(phi_l'(z_l(x))),

an (input width x output width) matrix. A network is dynamically isometric when all singular values
of J are close to 1: signals and gradients then keep not only their average size (mean squared
singular value 1, what variance-preserving inits give) but their geometry (a small spread of the
log singular values). Orthogonal weights with a near-linear activation at the critical point achieve
it; Gaussian weights with relu cannot, whatever their variance.

Exact for widths up to `EXACT_MAX` (the product of matrices per sample, then its SVD); beyond, a
randomized estimate: J applied to `PROBES` Gaussian vectors gives ||J||_F^2 unbiasedly (Hutchinson)
and approximate singular values from the sketch's SVD. The spread is the standard deviation of
log sigma over the singular values above `RANK_CUTOFF` of the largest (relu's zeroed directions make
the rest numerically 0), reported with the share they are of all.
"""

from __future__ import annotations

import math

import numpy as np

EXACT_MAX = 1024
SAMPLES = 4
PROBES = 128
RANK_CUTOFF = 1e-6  # singular values below this share of the largest count as zero


def spectrum(Ws: list[np.ndarray], slopes: list[np.ndarray | None], rng: np.random.Generator) -> dict:
    """*Ws*: each layer's (fan_in, fan_out) weights; *slopes*: per layer phi'(z) at the sample points,
    (samples, fan_out), or None for a linear layer. Returns the summary of the singular values."""
    samples = next((s.shape[0] for s in slopes if s is not None), SAMPLES)
    n_in, n_out = Ws[0].shape[0], Ws[-1].shape[1]
    widest = max(max(W.shape) for W in Ws)
    exact = widest <= EXACT_MAX
    with np.errstate(all="ignore"):
        if exact:  # M starts as the identity of the input: M = I W_1 D_1 ... for every sample at once
            M = np.broadcast_to(Ws[0].astype(np.float64), (samples, *Ws[0].shape)).copy()
        else:  # M starts as PROBES Gaussian rows: M = V W_1 D_1 ...
            V = rng.standard_normal((PROBES, n_in))
            M = np.broadcast_to(V @ Ws[0].astype(np.float64), (samples, PROBES, Ws[0].shape[1])).copy()
        for i, W in enumerate(Ws):
            if i:
                M = M @ W.astype(np.float64)
            if slopes[i] is not None:
                M *= slopes[i][:, None, :].astype(np.float64)
        if exact:
            sigma = np.linalg.svd(M, compute_uv=False)  # (samples, min(n_in, n_out))
            mean_sq = float(np.mean(sigma**2))
        else:
            mean_sq = float(np.mean(np.sum(M**2, axis=(1, 2)) / PROBES / min(n_in, n_out)))
            sigma = np.linalg.svd(M, compute_uv=False) / math.sqrt(PROBES)
    top = float(np.max(sigma)) if sigma.size and np.all(np.isfinite(sigma)) else math.nan
    # numerically zero singular values (relu's D_l zero whole directions) would swamp the log spread
    kept = sigma[np.isfinite(sigma) & (sigma > RANK_CUTOFF * top)] if math.isfinite(top) else sigma[:0]
    logs = np.log(kept) if kept.size else np.array([math.nan])
    return {
        "samples": int(samples),
        "exact": exact,
        "mean_sq_singular_value": mean_sq,
        "log_singular_std": float(np.std(logs)),
        "rank_fraction": float(kept.size / sigma.size) if sigma.size else math.nan,
        "max_singular_value": float(np.max(sigma)) if sigma.size else math.nan,
        "min_singular_value": float(np.min(sigma)) if sigma.size else math.nan,
    }


def words(summary: dict) -> str:
    how = "exact" if summary["exact"] else f"randomized, {PROBES} probes"
    return (
        f"input-output Jacobian ({summary['samples']} samples, {how}): mean squared singular value "
        f"{summary['mean_sq_singular_value']:.3g}, std of log singular values "
        f"{summary['log_singular_std']:.3g} (over the {summary['rank_fraction']:.0%} above 1e-6 of the "
        "largest), "
        f"singular values {summary['min_singular_value']:.3g} to {summary['max_singular_value']:.3g}"
    )
