"""The package list, the one part of the build pyproject.toml cannot say: every cepdsl* and
runtime* package as found, plus `cepdsl.grammar`, which lives in the top-level grammar/
folder (mapped by package-dir in pyproject.toml)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["cepdsl*", "runtime*"]), "cepdsl.grammar"])
