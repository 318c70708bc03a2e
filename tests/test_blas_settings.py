"""The command line lets OpenBLAS's idle workers sleep at once (OPENBLAS_THREAD_TIMEOUT), in its own
process only: a library caller's setting and environment are left alone."""

from __future__ import annotations

import os
import subprocess
import sys

SHOW = "import os, sys; {imports}; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"


def run(imports: str, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"} | env
    code = SHOW.format(imports=imports)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ,
                          check=True).stdout.strip()  # fmt: skip


def test_the_command_line_sets_it_before_numpy_loads_openblas():
    assert run("import initdiag.cli") == "4"


def test_a_users_own_value_and_a_library_caller_are_left_alone():
    assert run("import initdiag.cli", OPENBLAS_THREAD_TIMEOUT="10") == "10"
    assert run("import initdiag; initdiag.probe('8,8,2', batch=4)") == "None"
    assert run("import numpy; import initdiag.cli") == "None"  # too late for OpenBLAS: not set
