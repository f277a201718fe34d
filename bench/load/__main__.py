"""``python -m bench.load``: the load generator process (see bench/load/generator.py)."""

from bench.load.generator import main

main()
