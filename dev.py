#!/usr/bin/env python3
"""One entry point for a fresh machine: `python3 dev.py run` or `python3 dev.py test`.

Creates `.venv` beside this file on first use and reinstalls the project whenever
pyproject.toml changes, so both commands work on a machine that only has Python 3.11+.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".ollacord-installed"


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([str(a) for a in args], cwd=ROOT, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    """Create the virtualenv and (re)install the project with its dev extra when needed."""
    if sys.version_info < (3, 11):
        sys.exit("ollacord needs Python 3.11 or newer")
    if not PY.exists():
        print(f"creating virtualenv in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    _run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(PY, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


def cmd_test(extra: list[str]) -> None:
    """Lint, type-check and run the whole test suite."""
    _run(PY, "-m", "ruff", "check", ".")
    _run(PY, "-m", "ruff", "format", "--check", ".")
    _run(PY, "-m", "mypy")
    _run(PY, "-m", "pytest", *extra)


def cmd_run(extra: list[str]) -> None:
    """Run the bot (reads .env in the current directory)."""
    os.execv(str(PY), [str(PY), "-m", "bot", *extra])


def cmd_bench(extra: list[str]) -> None:
    """Run the benchmarks against the fakes: the streaming relay, the pool and the global budget, deep reply chains.

    --quick and --keep-logs go to both; --compare-with PATH to bench_pool.py; the rest to bench_relay.py.
    """
    relay_args: list[str] = []
    pool_args: list[str] = []
    args = iter(extra)
    for arg in args:
        if arg in ("--quick", "--keep-logs"):
            relay_args.append(arg)
            pool_args.append(arg)
        elif arg.startswith("--compare-with"):
            pool_args.append(arg)
            if "=" not in arg:
                pool_args.append(next(args, ""))
        else:
            relay_args.append(arg)
    _run(PY, "bench/bench_relay.py", *relay_args)
    _run(PY, "bench/bench_pool.py", *pool_args)
    _run(PY, "bench/bench_history.py", *(["--runs", "1"] if "--quick" in extra else []))


COMMANDS = {"test": cmd_test, "run": cmd_run, "bench": cmd_bench}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 dev.py {{{'|'.join(COMMANDS)}}} [args...]")
    ensure_venv()
    COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
