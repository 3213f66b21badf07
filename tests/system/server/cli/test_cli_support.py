"""``concierge tenants|catalog|customers``: loading the demo tenant as ``make run`` does."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from core.db import create_database_engine
from retrieval.history import HISTORY_ENTRIES
from server.store.customers import CUSTOMER_EVENTS
from tests.cli import invoke, run_cli
from tests.servers import REPO, server_database_url

EXAMPLES = REPO / "examples"


def _count(data_dir: Path, table: object) -> int:
    engine = create_database_engine(server_database_url(data_dir))
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_the_demo_tenant_loads_and_reloading_it_changes_nothing(tmp_path: Path) -> None:
    env = {"CONCIERGE_DATA_DIR": str(tmp_path)}
    installed = run_cli(
        "tenants", "install", str(EXAMPLES / "tenant.toml"), "--tenant", "demo", env=env
    )
    assert "installed" in installed and (tmp_path / "tenants" / "demo.toml").is_file()
    shown = json.loads(run_cli("tenants", "show", "--tenant", "demo", env=env))
    assert shown["voice"]["sign_off"] and shown["webhook"]["url"] is None

    catalog = run_cli(
        "catalog", "import", str(EXAMPLES / "catalog.jsonl"), "--tenant", "demo", env=env
    )
    assert "42 products" in catalog
    args = (
        "customers",
        "import",
        str(EXAMPLES / "customers.jsonl"),
        "--events",
        str(EXAMPLES / "events.jsonl"),
        "--tenant",
        "demo",
    )
    first = run_cli(*args, env=env)
    assert "9 customers (9 new)" in first and "0 already present" in first
    events, entries = _count(tmp_path, CUSTOMER_EVENTS), _count(tmp_path, HISTORY_ENTRIES)
    assert events > 20 and 0 < entries < events  # page views are not history
    again = run_cli(*args, env=env)
    assert "(0 new)" in again and "0 events stored" in again
    assert (_count(tmp_path, CUSTOMER_EVENTS), _count(tmp_path, HISTORY_ENTRIES)) == (
        events,
        entries,
    )


def test_bad_import_files_name_the_file_and_line(tmp_path: Path) -> None:
    env = {"CONCIERGE_DATA_DIR": str(tmp_path / "data")}
    products = tmp_path / "products.jsonl"
    products.write_text(
        '{"product_id": "A-1", "name": "Kettle", "category": "kettles"}\n'
        '{"product_id": "A-2", "name": "", "category": "kettles"}\n'
    )
    result = invoke("catalog", "import", str(products), "--tenant", "demo", env=env)
    assert result.returncode == 2 and f"{products}:2: name" in result.stderr
    people = tmp_path / "people.csv"
    people.write_text("customer_id,name,tier\nc-1,Ann,gold\n")
    events = tmp_path / "events.jsonl"
    events.write_text('{"customer_id": "c-9", "kind": "note", "payload": {"text": "hi"}}\n')
    result = invoke(
        "customers", "import", str(people), "--events", str(events), "--tenant", "demo", env=env
    )
    assert result.returncode == 2 and "c-9" in result.stderr and ":1:" in result.stderr
    broken = tmp_path / "tenant.toml"
    broken.write_text("[escalation]\nnegative_turns = 'many'\n")
    result = invoke("tenants", "install", str(broken), "--tenant", "demo", env=env)
    assert result.returncode == 2 and "negative_turns" in result.stderr
    result = invoke(
        "catalog", "import", str(tmp_path / "missing.jsonl"), "--tenant", "demo", env=env
    )
    assert result.returncode == 2 and "no such file" in result.stderr
