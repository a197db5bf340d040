"""The one thing pyproject.toml cannot say: the package list, with ``dicebert.conf`` mapped in.

``dicebert.conf`` is the top-level ``conf/`` folder (mapped in pyproject's ``package-dir``), so a
non-editable install ships the Hydra configs inside the package. ``hydra_plugins`` is Hydra's
namespace package for plugins (no ``__init__.py``), hence the namespace-aware search.
"""

from setuptools import find_namespace_packages, setup

packages = find_namespace_packages("src", include=["dicebert", "dicebert.*", "hydra_plugins.*"])
setup(packages=[p for p in packages if "__pycache__" not in p] + ["dicebert.conf"])
