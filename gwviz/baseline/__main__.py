"""``python -m gwviz.baseline`` (:func:`gwviz.baseline.cli.main`)."""
from ..paths import run_cli
from .cli import main

run_cli(main, "python -m gwviz.baseline")
