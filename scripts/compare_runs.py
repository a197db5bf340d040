"""``python scripts/compare_runs.py <sweep folder>...``: the ``dicebert-compare`` command."""

from dicebert.cli.compare import main

if __name__ == "__main__":
    raise SystemExit(main())
