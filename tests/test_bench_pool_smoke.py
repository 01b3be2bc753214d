"""The pool benchmark still runs end to end (its figures are printed, never asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_pool_benchmark_runs_and_every_reply_that_must_be_exact_is() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_pool.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for scenario in ("== 1.", "== 2.", "== 3.", "== 4."):
        assert scenario in proc.stdout
    assert "every question asked after the kill answered in full" in proc.stdout
