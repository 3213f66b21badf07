"""What the benchmarks share, each piece once; the scripts in ``bench/`` are their plans.

Run a benchmark as a module from the repository root (``python -m bench.serving``): the
``bench`` package is not installed with Concierge, and the server never imports it.

* ``paths``: where the repository, the shared data and the outputs are;
* ``data``: the workload's inputs (Bitext prompts, the demo customers' data, Banking77);
* ``loops``: closed and open request loops, and the levels a closed-loop run steps through;
* ``streaming``: the streaming client of ``/v1/chat/completions`` and ``/v1/support/reply``
  (server-sent events), one timing of a streamed reply;
* ``servers``: server subprocesses started, waited for and stopped (tests/servers.py starts
  its servers with it too); ``concierge``: ``concierge serve`` and its data directory;
  ``llama_server``: llama.cpp's server, built from source;
* ``machine``: the machine a run measured on, and the CPU other processes took meanwhile;
* ``stats``: percentiles, latency summaries, medians of paired figures, classifier scores;
* ``tables`` and ``report``: text and markdown tables, figures, a benchmark's marked section
  of docs/benchmarks.md, raw JSON;
* the serving benchmarks' systems, workload and report (``systems``, ``workload``,
  ``serving_report``), the reply-latency benchmark's calls and report (``reply_report``),
  and the retrieval benchmarks' parts (``kb_store``, ``vectors``, ``vector_search``,
  ``embedding_speed``, ``retrieval_report``).
"""
