"""The command line: parse options, call the library, render, exit. The only package that exits.

Exit codes: 0 done; 1 ``--fail-on`` matched, or ``check`` found a failing spec; 2 bad input (one line
on stderr, never a traceback unless ``--debug``); 3 an internal error (a bug; ``--debug`` shows it).

`app` sets up the Typer app once; each command lives in the module of its kind (`stacks`: probe,
compare, sweep; `train`; `check`; `audit`; `reference`: inits, explain, schema) and registers itself there.
"""

import gc
import os
import sys

if "numpy" not in sys.modules:  # read by OpenBLAS when numpy loads it
    # After each matrix product OpenBLAS's worker threads spin for 2^28 cycles (~0.1 s) before they
    # sleep, holding a core that the probe's own threads (attention chunks, GELU, norms, statistics)
    # and its elementwise work then wait for; 2^4 lets them sleep at once. A 12-block transformer
    # probe 7.3-7.4 s -> 6.5 s, dense and conv probes unchanged (docs/performance.md). This process
    # is ours (a library caller's is not: `initdiag.probe` leaves the setting alone); workers inherit it.
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import audit, check, coordcheck, reference, stacks, train  # noqa: F401  (registers the commands)
from .app import COMMANDS, app, new_app, root


def main() -> None:
    """Console-script entry point: an app of only the command named, when one is (the full app for
    help, the version and mistakes): typer turns each command's signature into click options at
    start-up, about 1 ms per ten options."""
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        if name not in COMMANDS:
            app()
            return
        function, settings = COMMANDS[name]
        single = new_app()
        single.callback()(root)
        single.command(**settings)(function)
        single()
    finally:
        # The process ends here. Freezing keeps every object alive now (numpy's, rich's, each
        # module's) out of the interpreter's last garbage collections, which otherwise walk them all
        # on the way out: ~20 ms of a probe's ~165 (benchmarks/startup.py). Modules are still torn
        # down, atexit handlers run and stdout is flushed; only garbage in reference cycles goes
        # unfinalized, and every file is written and closed (under `with`) before this.
        gc.freeze()


__all__ = ["app", "main"]
