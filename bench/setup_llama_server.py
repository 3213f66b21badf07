"""Build llama.cpp's ``llama-server``, the CPU peer of ``bench/serving.py``
(``bench.lib.llama_server`` says how).

It is idempotent: when the binary is already there it prints its path and does nothing
(about 6 minutes on 2 cores otherwise). ``make bench`` runs it first.

    .venv/bin/python -m bench.setup_llama_server            # build once, print the binary
    .venv/bin/python -m bench.setup_llama_server --rebuild  # build again from a fresh archive
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench.lib.llama_server import ensure_llama_server
from bench.lib.report import start_run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rebuild", action="store_true", help="remove the build and start over")
    parser.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (all cores)")
    args = parser.parse_args(argv)
    start_run()
    binary = ensure_llama_server(args.rebuild, args.jobs)
    sys.stdout.write(f"{binary}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
