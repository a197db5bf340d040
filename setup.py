"""The one thing pyproject.toml cannot say: the package list, found under src/ with namespaces.

``src/dicebert/conf`` is a link to the repository's top-level ``conf/`` (where Hydra users look
for it), so the configs ship inside the package as ``dicebert.conf`` and an editable install
stays a plain ``src/`` path: a ``package-dir`` mapping would make setuptools install an import
hook instead, which hides ``src/hydra_plugins`` from Hydra's plugin scan. ``hydra_plugins`` is
Hydra's namespace package (no ``__init__.py``), hence the namespace-aware search.
"""

from setuptools import find_namespace_packages, setup

found = find_namespace_packages("src", include=["dicebert", "dicebert.*", "hydra_plugins.*"])
# conf's subfolders are YAML, not packages: package-data "**/*.yaml" of dicebert.conf carries them
packages = [p for p in found if "__pycache__" not in p and not p.startswith("dicebert.conf.")]
setup(package_dir={"": "src"}, packages=packages)
