"""Test-session set-up.

Under pytest-xdist every core runs a worker, so each worker's BLAS gets one thread: two workers with
two OpenBLAS threads each on two cores spend their time waiting for each other (a 256x256 QR went
from 0.07 s to 6 s on a loaded machine). Set before numpy is first imported.
"""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(key, "1")


import pytest


class FakeBlas:
    """A BLAS whose thread count is a number: `parallel.map_chunks` runs its threads whatever the
    test process's BLAS (one thread under xdist)."""

    def __init__(self, threads: int):
        self.threads, self.during = threads, []

    def set(self, n):
        self.threads = n

    def get(self):
        return self.threads


@pytest.fixture
def two_threads(monkeypatch):
    """`parallel.map_chunks` on two threads (the code path of a probe outside the tests)."""
    from initdiag.core import parallel

    blas = FakeBlas(2)
    monkeypatch.setattr(parallel, "_api", (blas.set, blas.get))
    return blas
