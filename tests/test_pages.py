"""numpy's huge-page advice is off while a probe keeps its arrays, and restored after (core.pages)."""

from __future__ import annotations

import numpy as np
import pytest

import initdiag
from initdiag.core.pages import small_pages

switch = np._core.multiarray._set_madvise_hugepage


@pytest.mark.parametrize("before", [True, False])
def test_off_inside_and_restored_after_even_on_error(before):
    previous = switch(before)
    try:
        with small_pages():
            assert switch(False) is False  # (reads the setting: it was off)
        assert switch(before) is before
        with pytest.raises(RuntimeError), small_pages():
            raise RuntimeError("a probe that fails")
        assert switch(before) is before
    finally:
        switch(previous)


def test_a_probe_runs_its_passes_without_the_advice(monkeypatch):
    from initdiag.analysis import probe as module

    seen = []
    run_forward = module.run_forward

    def spy(*args):
        seen.append(switch(False))  # the setting while the pass runs (False again after)
        return run_forward(*args)

    monkeypatch.setattr(module, "run_forward", spy)
    previous = switch(True)
    try:
        initdiag.probe("32,32,10", batch=4)
        assert seen == [False] and switch(True) is True  # restored after the probe
    finally:
        switch(previous)


def test_probes_on_several_threads_restore_the_setting_once_all_are_out():
    """Two probes whose blocks interleave (A in, B in, A out, B out): the caller's setting comes back
    when the last one leaves, not the 'off' that B found when it came in."""
    previous = switch(True)
    try:
        a, b = small_pages(), small_pages()
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)
        assert switch(False) is False  # B still inside: off
        b.__exit__(None, None, None)
        assert switch(True) is True  # both out: the caller's True again
    finally:
        switch(previous)
