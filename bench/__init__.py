"""Benchmarks, run as scripts (``python bench/engine.py``); the server never imports them."""
