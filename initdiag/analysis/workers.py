"""Independent pieces of work (sweep's cells, train's chunks of runs) on a pool of processes.

Processes, not threads: each piece is a long series of small numpy calls, and two threads spend
their time handing the GIL back and forth (train's 60 runs on 2 cores: 1.1-1.2x faster with two
threads, 1.9x with two processes).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

from .. import errors
from ..errors import InitdiagError

BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
PRELOAD = [
    "initdiag.analysis.check",
    "initdiag.analysis.compare",
    "initdiag.analysis.coordtrain",
    "initdiag.analysis.probe",
    "initdiag.analysis.train",
]
MEMORY_LIMIT = "INITDIAG_MAX_MEMORY"
_pool_size = 1  # the processes of the pool this one works in (1: not a worker)


def pool_size() -> int:
    """How many processes share the machine's memory with this one, itself included: each may plan
    on that share of it (1 outside a pool)."""
    return _pool_size


def run_all(
    fn: Callable[..., Any],
    tasks: Sequence[tuple],
    jobs: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """``fn(*task)`` for every task, in task order: in this process when *jobs* (default: one per
    core, at most one per task) is 1, else on that many worker processes. ``progress(done, total)``
    after each task. *fn* must be a module-level function (the workers import it by name)."""
    if jobs is not None and jobs < 1:
        raise InitdiagError(f"--jobs must be a positive integer, got {jobs}")
    total = len(tasks)
    jobs = min(jobs or os.cpu_count() or 1, total)
    results: list[Any] = [None] * total
    if jobs <= 1:
        for i, task in enumerate(tasks):
            results[i] = fn(*task)
            if progress:
                progress(i + 1, total)
        return results
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Workers with one BLAS thread each: the pool is the parallelism. A forked child inherits the
    # parent's BLAS thread pool, and several of them oversubscribe the cores (6x slower).
    saved = {key: os.environ.get(key) for key in BLAS_THREADS}
    os.environ.update(dict.fromkeys(BLAS_THREADS, "1"))
    try:
        start = (jobs, os.environ.get(MEMORY_LIMIT), errors.spelled_for_command_line())
        with _main_hidden(), ProcessPoolExecutor(jobs, _context(), _start_worker, start) as pool:
            futures = {pool.submit(fn, *task): i for i, task in enumerate(tasks)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if progress:
                    progress(done, total)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return results


def keep_freed_memory() -> None:
    """Let the C library keep freed memory for reuse (glibc; elsewhere nothing happens). A training
    step frees and allocates arrays of the same sizes thousands of times, and by default every
    array above 128 KiB is a fresh mapping whose pages fault in zeroed: that tripled a tanh step.
    For processes initdiag owns (its workers, its command line), not a library caller's."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)  # the ceiling glibc's own adaptive threshold would reach
    mallopt(m_trim_threshold, 256 << 20)


def _start_worker(size: int, memory_limit: str | None, command_line: bool) -> None:
    """A worker's set-up: the size of its pool, the caller's memory limit as it is now (a worker
    forks from a server that kept the environment of its own start), and how error messages name
    options (as the caller's)."""
    global _pool_size
    _pool_size = size
    if command_line:
        errors.command_line_spelling().__enter__()  # for the worker's life
    keep_freed_memory()
    if memory_limit is None:
        os.environ.pop(MEMORY_LIMIT, None)
    else:
        os.environ[MEMORY_LIMIT] = memory_limit


@contextmanager
def _main_hidden():
    """Workers start without the caller's ``__main__``: they run initdiag's functions on initdiag's
    data and never need it. Otherwise each worker would first re-run the caller's script, which
    fails for a script read from stdin and recurses in one without ``if __name__ == "__main__":``."""
    main = sys.modules.get("__main__")
    saved = {key: main.__dict__[key] for key in ("__file__", "__spec__") if main and key in main.__dict__}
    for key in saved:
        if key == "__spec__":
            main.__spec__ = None  # a module's __spec__ must exist
        else:
            del main.__file__
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(main, key, value)


def _context():
    """Workers forked from a server that imported initdiag once (with one BLAS thread), where the
    platform has fork (a fresh interpreter per worker re-imports numpy: 1.65x slower for sweep's
    cells); fresh interpreters elsewhere."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")
