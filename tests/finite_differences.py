"""Central differences, the independent truth every backward pass is checked against."""

from __future__ import annotations

import numpy as np


def central_difference(f, array, index, h=1e-6):
    """(f(x + h e_i) - f(x - h e_i)) / 2h of the scalar f() for one entry of *array* (restored after)."""
    saved = array[index]
    array[index] = saved + h
    up = f()
    array[index] = saved - h
    down = f()
    array[index] = saved
    return (up - down) / (2 * h)


def central_differences(f, array, h=1e-6):
    """The central difference for every entry of *array*."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        grad[index] = central_difference(f, array, index, h)
    return grad
