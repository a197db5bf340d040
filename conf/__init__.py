"""The Hydra configs, shipped inside the package as ``dicebert.conf`` (``src/dicebert/conf`` links here)."""
