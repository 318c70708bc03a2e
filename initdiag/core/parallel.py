"""Chunks of a batch on Python threads, each calling a one-thread BLAS.

A convolution is many middle-sized matrix products, one per chunk of samples, with numpy copies in
between (gathering the windows). Left to OpenBLAS, each product wakes its thread pool and the copies
run on one core; when another process holds a core, the pool's threads wait for each other and a
product takes several times as long. Here the chunks go to as many Python threads as BLAS had
threads, with BLAS set to one thread meanwhile (OpenBLAS's own ``set_num_threads``, found through
ctypes as threadpoolctl finds it): the copies run in parallel too, and a thread that loses its core
delays only its own chunk. Where OpenBLAS is not found (another BLAS), or BLAS already runs one
thread (the worker processes of compare, sweep and check), or there is one chunk, the chunks run in
order on the calling thread, as before.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported on first use: a probe without convolutions never needs them
    from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_api: tuple | bool | None = None  # (set_num_threads, get_num_threads), or False: not found
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _openblas():
    """OpenBLAS's (set, get) thread-count functions in this process, or False."""
    global _api
    if _api is None:
        import ctypes
        import re

        _api = False
        try:
            with open("/proc/self/maps") as f:
                paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", f.read())))
            for path in paths:
                lib = ctypes.CDLL(path)
                for prefix in ("scipy_openblas", "openblas"):
                    for suffix in ("64_", ""):
                        setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                        getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                        if setter is not None and getter is not None and _api is False:
                            setter.argtypes, setter.restype, getter.restype = (
                                [ctypes.c_int],
                                None,
                                ctypes.c_int,
                            )
                            _api = (setter, getter)
        except OSError:  # no /proc (not Linux), or a library that will not load
            _api = False
    return _api


def _reset_after_fork() -> None:
    global _pool, _pool_size
    _pool, _pool_size = None, 0  # a forked child has none of the parent's threads


os.register_at_fork(after_in_child=_reset_after_fork)


def spans(stop: int, step: int, start: int = 0) -> list[slice]:
    """range(start, stop) as slices of *step* entries (the last one shorter): the parts of a chunked
    computation."""
    return [slice(i, min(i + step, stop)) for i in range(start, stop, max(step, 1))]


def map_chunks(fn, parts: list) -> list:
    """``[fn(part) for part in parts]``, in that order, the parts spread over threads when BLAS has
    several (see the module's docstring). *fn* must only write to its own part of any output."""
    global _pool, _pool_size
    api = _openblas() if len(parts) > 1 else False
    threads = api[1]() if api else 1
    if threads <= 1:
        return [fn(part) for part in parts]
    with _lock:  # one batch of chunks at a time: the BLAS setting is the process's
        if _pool is None or _pool_size != threads:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(threads, thread_name_prefix="initdiag-chunks")
            _pool_size = threads
        api[0](1)
        try:
            return list(_pool.map(_with_callers_errstate(fn), parts))
        finally:
            api[0](threads)


def _with_callers_errstate(fn):
    """*fn* under the calling thread's numpy error handling (``np.errstate`` is the thread's own: a
    caller's ``all="ignore"`` would not reach the pool's threads, which would warn on an overflow)."""
    import numpy as np

    err = np.geterr()

    def run(part):
        with np.errstate(**err):
            return fn(part)

    return run
