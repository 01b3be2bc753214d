"""Composition root (placeholder until wired)."""


def main() -> None:
    """Entry point."""
