"""The benchmark still runs end to end (its figures are printed, never asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_runs_and_every_reply_is_exact() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_relay.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "exact final text in every reply" in proc.stdout
