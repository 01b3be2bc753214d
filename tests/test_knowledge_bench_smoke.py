"""The knowledge benchmark still runs end to end (its figures are printed, never asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_knowledge_benchmark_runs_and_the_planted_fact_is_found() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_knowledge.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "the planted fact reached every prompt: yes" in proc.stdout
    assert "chunks/s" in proc.stdout
