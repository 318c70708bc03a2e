"""The pages behind fresh arrays: numpy's advice to the kernel, off while a probe keeps its arrays."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


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
    switch = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
    if switch is None:
        yield
        return
    previous = switch(False)
    try:
        yield
    finally:
        switch(previous)
