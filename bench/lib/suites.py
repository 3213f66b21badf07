"""Answer-benchmark suites: a tenant's files and the scenarios played against it.

A suite is a folder under ``bench/suites/`` (layout in docs/answers.md): ``suite.toml``
(name, tenant id, "today" for every scenario, where the tenant's files are),
``scenarios.jsonl`` and ``multilingual.jsonl`` (questions in other languages against the
tenant's articles). The tenant's files are those Concierge imports: ``kb/``,
``catalog.jsonl``, ``customers.jsonl``, ``events.jsonl`` and ``tenant.toml``.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.lib.answer_scoring import Secrets, customer_secrets
from bench.lib.paths import REPO

SUITES_DIR = REPO / "bench" / "suites"
KB_SUFFIXES = (".md", ".html", ".htm", ".txt", ".csv", ".json")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object a line (blank lines skipped); errors name the file and line."""
    records: list[dict[str, Any]] = []
    if not path.exists():
        return records
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: {exc.msg}") from exc
    return records


@dataclass
class Suite:
    name: str
    tenant: str
    description: str
    as_of: dt.datetime
    folder: Path
    tenant_dir: Path
    scenarios: list[dict[str, Any]]
    customers: dict[str, dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]
    catalog: list[dict[str, Any]]
    multilingual: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kb_dir(self) -> Path:
        return self.tenant_dir / "kb"

    def kb_files(self) -> list[Path]:
        return sorted(p for p in self.kb_dir.iterdir() if p.suffix.lower() in KB_SUFFIXES)

    def tenant_toml(self) -> str:
        return (self.tenant_dir / "tenant.toml").read_text(encoding="utf-8")

    def categories(self) -> dict[str, str]:
        return {str(p["product_id"]): str(p["category"]) for p in self.catalog}

    def secrets(self) -> dict[str, Secrets]:
        return {
            customer_id: customer_secrets(customer, self.events.get(customer_id, []))
            for customer_id, customer in self.customers.items()
        }


def load_suite(folder: Path) -> Suite:
    """The suite in ``folder`` (a name under bench/suites/ is enough)."""
    if not folder.is_dir() and (SUITES_DIR / str(folder)).is_dir():
        folder = SUITES_DIR / str(folder)
    settings = tomllib.loads((folder / "suite.toml").read_text(encoding="utf-8"))
    tenant_dir = (folder / settings.get("tenant_dir", "tenant")).resolve()
    events: dict[str, list[dict[str, Any]]] = {}
    for event in read_jsonl(tenant_dir / "events.jsonl"):
        events.setdefault(str(event["customer_id"]), []).append(event)
    as_of = dt.datetime.fromisoformat(str(settings["as_of"]))
    if as_of.tzinfo is None:
        raise ValueError(f"{folder}/suite.toml: as_of needs an offset, e.g. +01:00")
    return Suite(
        name=str(settings.get("name", folder.name)),
        tenant=str(settings["tenant"]),
        description=str(settings.get("description", "")),
        as_of=as_of,
        folder=folder,
        tenant_dir=tenant_dir,
        scenarios=read_jsonl(folder / "scenarios.jsonl"),
        customers={str(c["customer_id"]): c for c in read_jsonl(tenant_dir / "customers.jsonl")},
        events=events,
        catalog=read_jsonl(tenant_dir / "catalog.jsonl"),
        multilingual=read_jsonl(folder / "multilingual.jsonl"),
    )


def all_suites() -> list[Path]:
    return sorted(p for p in SUITES_DIR.iterdir() if (p / "suite.toml").is_file())
