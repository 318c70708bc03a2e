"""Test-session set-up.

Under pytest-xdist every core runs a worker, so each worker's BLAS gets one thread: two workers with
two OpenBLAS threads each on two cores spend their time waiting for each other (a 256x256 QR went
from 0.07 s to 6 s on a loaded machine). Set before numpy is first imported.
"""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(key, "1")
