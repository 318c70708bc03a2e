"""The 2-D toy sets ``initdiag train`` learns: circles and moons (two classes, as scikit-learn makes
them) and the spiral (three classes, as CS231n's)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def make_circles(n: int, noise: float, rng: np.random.Generator, factor: float = 0.8):
    """scikit-learn's ``make_circles``: n // 2 points evenly spaced on the unit circle (class 0) and
    the rest on a circle of radius *factor* (class 1), shuffled, plus N(0, noise^2) on each coordinate."""
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.vstack([np.column_stack([np.cos(t_out), np.sin(t_out)]),
                   factor * np.column_stack([np.cos(t_in), np.sin(t_in)])])  # fmt: skip
    y = np.concatenate([np.zeros(n_out, dtype=int), np.ones(n_in, dtype=int)])
    order = rng.permutation(n)
    X, y = X[order], y[order]
    return X + rng.normal(scale=noise, size=X.shape), y


def make_moons(n: int, noise: float, rng: np.random.Generator):
    """scikit-learn's ``make_moons``: two interleaving half circles, shuffled, plus N(0, noise^2)."""
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    X = np.vstack([np.column_stack([np.cos(t_out), np.sin(t_out)]),
                   np.column_stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5])])  # fmt: skip
    y = np.concatenate([np.zeros(n_out, dtype=int), np.ones(n_in, dtype=int)])
    order = rng.permutation(n)
    X, y = X[order], y[order]
    return X + rng.normal(scale=noise, size=X.shape), y


def make_spiral(n: int, noise: float, rng: np.random.Generator, classes: int = 3):
    """CS231n's spiral: class k's points at radius r in [0, 1] and angle 4k + 4r + N(0, noise^2),
    as (r sin t, r cos t); n split as evenly as it goes over the classes."""
    counts = [n // classes + (1 if k < n % classes else 0) for k in range(classes)]
    Xs, ys = [], []
    for k, count in enumerate(counts):
        r = np.linspace(0.0, 1.0, count)
        t = np.linspace(k * 4, (k + 1) * 4, count) + rng.normal(scale=noise, size=count)
        Xs.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
        ys.append(np.full(count, k))
    X, y = np.vstack(Xs), np.concatenate(ys)
    order = rng.permutation(n)
    return X[order], y[order]


MAKERS = {"circles": make_circles, "moons": make_moons, "spiral": make_spiral}


class Dataset(NamedTuple):
    X_train: np.ndarray  # (n_train, 2)
    y_train: np.ndarray  # (n_train,) class indices
    X_test: np.ndarray
    y_test: np.ndarray


# the default noise of each set (`initdiag train --noise`)
NOISE = {"circles": 0.05, "moons": 0.1, "spiral": 0.2}


def make_dataset(name: str, n_train: int, n_test: int, noise: float, rng: np.random.Generator) -> Dataset:
    """Train and test sets drawn one after the other from *rng* (as the exercise's two calls)."""
    make = MAKERS[name]
    X_train, y_train = make(n_train, noise, rng)
    X_test, y_test = make(n_test, noise, rng)
    return Dataset(X_train, y_train, X_test, y_test)
