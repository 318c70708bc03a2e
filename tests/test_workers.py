"""Worker processes: results in task order, and they start from any kind of caller's script."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from initdiag.analysis.workers import run_all

SCRIPT = textwrap.dedent(
    """
    from initdiag.analysis.train import TrainSettings, train

    report = train(["he", "xavier"], TrainSettings(iters=50, trials=2, jobs=2))
    print("final", [round(float(r.final_loss.mean()), 6) for r in report.results])
    """
)


def test_results_come_in_task_order_on_processes():
    assert run_all(pow, [(2, k) for k in range(6)], jobs=2) == [2**k for k in range(6)]
    seen = []
    assert run_all(pow, [(3, 2)], jobs=None, progress=lambda done, total: seen.append((done, total))) == [9]
    assert seen == [(1, 1)]


def test_a_script_without_a_main_guard_or_from_stdin_can_use_processes(tmp_path):
    """Workers do not re-run the caller's script (a classic multiprocessing failure: recursion without
    ``if __name__ == "__main__":``, FileNotFoundError for '<stdin>')."""
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT)
    from_file = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    from_stdin = subprocess.run(
        [sys.executable, "-"], input=SCRIPT, capture_output=True, text=True, timeout=120
    )
    serial = subprocess.run(
        [sys.executable, "-"],
        input=SCRIPT.replace("jobs=2", "jobs=1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    for run in (from_file, from_stdin, serial):
        assert run.returncode == 0 and run.stderr == "", run.stderr
    assert from_file.stdout == from_stdin.stdout == serial.stdout
    assert from_file.stdout.startswith("final [")


def test_the_callers_main_module_is_left_as_it_was():
    main = sys.modules["__main__"]
    before = (main.__dict__.get("__file__"), main.__dict__.get("__spec__"))
    run_all(pow, [(2, 1), (2, 2)], jobs=2)
    assert (main.__dict__.get("__file__"), main.__dict__.get("__spec__")) == before
