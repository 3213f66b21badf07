"""Benchmarks, run as modules from the repository root (``python -m bench.engine``); bench is
not installed with Concierge and the server never imports it. What they share: ``bench.lib``."""
