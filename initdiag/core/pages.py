"""The pages behind fresh arrays: numpy's advice to the kernel, off while a probe keeps its arrays."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

_lock = threading.Lock()
_inside = 0  # probes running in `small_pages`
_previous = True  # the setting before the first of them


@contextmanager
def small_pages() -> Iterator[None]:
    """numpy advises Linux to back every array of 4 MiB or more with transparent huge pages
    (``madvise``; numpy >= 1.20 on kernels >= 4.6). A probe touches each kept activation once, fresh,
    and where the kernel compacts memory to find a huge page on that first touch (THP ``defrag`` set
    to ``madvise``, the default) the fault costs more than the page saves. Measured on the project's
    2-core VM: 24 MiB arrays kept one after another, 58 ms each with the advice and 9 ms without; the
    12-block transformer probe's system time 3.0 s with it, 1.4 s without. PyTorch gives no such
    advice by default. Off inside the block, restored after (it is the process's setting); nothing
    where numpy lacks the switch."""
    global _inside, _previous
    switch = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
    if switch is None:
        yield
        return
    with _lock:  # probes on several threads: the first one in saves the setting, the last one out restores it
        if _inside == 0:
            _previous = switch(False)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0:
                switch(_previous)
