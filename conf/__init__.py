"""The Hydra configs, shipped inside the package as ``dicebert.conf`` (see pyproject's package-dir)."""
