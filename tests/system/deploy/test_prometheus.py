"""The shipped Prometheus config, alert rules and Grafana dashboards against real servers.

A real Prometheus scrapes the session's Concierge (real vLLM engine) while the test
drives support traffic: replies, an escalation, feedback, a reindex, chat
completions. Then every PromQL expression of both dashboards and of every alert rule
is sent to Prometheus's query API: it must parse and return data. An alert's
expression filters by its threshold and is empty while all is well, so its data
check uses the same expression with each threshold turned into a ``bool``
comparison (``x > 2`` becomes ``x > bool 2``): the series it watches exist.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.prometheus import (
    ALERT_RULES,
    PROMETHEUS_CONFIG,
    PrometheusServer,
    binary,
    write_config,
)
from tests.servers import REPO, ServerProcess

DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))

GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "15m", "$__interval": "15s"}
"""Grafana fills these in before a query reaches Prometheus; the test does the same."""

_THRESHOLD = re.compile(r"(==|!=|>=|<=|>|<)\s*(?!bool\b)(-?\d+(?:\.\d+)?(?:e\d+)?)")


def dashboard_expressions(path: Path) -> list[tuple[str, str]]:
    """``(panel title, expression)`` for every query of every panel, rows included."""
    board = json.loads(path.read_text(encoding="utf-8"))
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                expression = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expression = expression.replace(variable, value)
                found.append((panel["title"], expression))

    walk(board["panels"])
    return found


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def without_threshold_filter(expression: str) -> str:
    """``a > 2 and b > 0`` becomes ``a > bool 2 and b > bool 0``: 0/1 instead of empty."""
    return _THRESHOLD.sub(lambda match: f"{match.group(1)} bool {match.group(2)}", expression)


def test_promtool_accepts_the_config_and_rules_and_their_unit_tests_pass(tmp_path: Path) -> None:
    """``alerts.test.yml`` feeds each alert a failure (it must fire) and a healthy case."""
    # the shipped config, unchanged, beside the key file a deployment provides
    config = write_config(tmp_path, yaml.safe_load(PROMETHEUS_CONFIG.read_text()), "ck_key")
    (tmp_path / "alerts.yml").write_text(ALERT_RULES.read_text())
    for command in (
        [binary("promtool"), "check", "config", str(config)],
        [binary("promtool"), "check", "rules", str(ALERT_RULES)],
        [binary("promtool"), "test", "rules", str(ALERT_RULES.with_name("alerts.test.yml"))],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_summary_a_runbook_section_and_a_unit_test() -> None:
    unit_tests = ALERT_RULES.with_name("alerts.test.yml").read_text(encoding="utf-8")
    runbook = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }
    names = [rule["alert"] for rule in alert_rules()]
    assert {"ConciergeEngineNotReady", "ConciergeHighErrorRate", "ConciergeQueueGrowing"} <= set(
        names
    )
    for rule in alert_rules():
        assert rule["annotations"]["summary"]
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/operations.md"
        assert f"alertname: {rule['alert']}" in unit_tests, f"{rule['alert']}: no promtool test"


def test_the_threshold_rewrite_keeps_the_expression_and_drops_only_the_filter() -> None:
    assert without_threshold_filter("max(x) == 0") == "max(x) == bool 0"
    assert (
        without_threshold_filter("sum(a) > 8 and sum(delta(b[10m])) > 0")
        == "sum(a) > bool 8 and sum(delta(b[10m])) > bool 0"
    )
    assert without_threshold_filter("rate(x[5m]) > bool 1") == "rate(x[5m]) > bool 1"


@pytest.fixture(scope="module")
def prometheus(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    from tests.prometheus import scrape_config_for

    folder = tmp_path_factory.mktemp("prometheus")
    target = server.url.removeprefix("http://")
    running = PrometheusServer.start(folder, scrape_config_for(target))
    try:
        running.wait_for('up{job="concierge"} == 1')
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def traffic(base_url: str, data_dir: Path, prometheus: PrometheusServer) -> str:
    """Replies, an escalation, feedback, a reindex and chat completions for one new tenant."""
    tenant = f"ops-{uuid.uuid4().hex[:8]}"
    config = data_dir / "tenants" / f"{tenant}.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        '[voice]\npersona = "You are the support assistant of a kitchen shop."\n',
        encoding="utf-8",
    )
    headers = {"X-Concierge-Tenant": tenant}
    with httpx.Client(base_url=base_url, timeout=180, headers=headers) as client:
        documents = [
            {
                "id": "refunds",
                "title": "Refunds",
                "text": "Refunds reach the original card within 5 business days after the "
                "returned parcel arrives at our warehouse.",
            },
            {
                "id": "shipping",
                "title": "Shipping",
                "text": "Standard delivery takes 3 to 5 business days and is free over 50 EUR.",
            },
        ]
        answer = client.post(
            f"/admin/kb/{tenant}/documents:bulk",
            params={"wait": "true"},
            json={"documents": documents},
        )
        assert answer.status_code == 200, answer.text
        answer = client.post(f"/admin/kb/{tenant}/reindex", params={"mode": "full", "wait": "true"})
        assert answer.status_code == 200, answer.text
        body = {"name": "Ops Tester", "consent": {"personalization": True, "marketing": False}}
        assert client.put("/v1/customers/ops-customer", json=body).status_code == 200
        messages = [
            "How long does a refund take to reach my card?",
            "When will my parcel arrive with standard delivery?",
            "Do you sell spare parts for blenders?",
        ]
        conversation = None
        for message in messages:
            answer = client.post(
                "/v1/support/reply", json={"customer_id": "ops-customer", "message": message}
            )
            assert answer.status_code == 200, answer.text
            conversation = answer.json()["conversation_id"]
        handed = client.post(
            "/v1/support/reply",
            json={
                "customer_id": "ops-customer",
                "conversation_id": conversation,
                "message": "I want to talk to a human now.",
            },
        )
        assert handed.status_code == 200, handed.text
        assert handed.json()["escalation"]["escalate"] is True
        feedback = client.post(f"/v1/conversations/{conversation}/feedback", json={"csat": 4})
        assert feedback.status_code in (200, 201), feedback.text
        model = client.get("/v1/models").json()["data"][0]["id"]
        for stream in (False, True):
            chat = {
                "model": model,
                "messages": [{"role": "user", "content": "Say hello."}],
                "max_tokens": 8,
                "stream": stream,
            }
            answer = client.post("/v1/chat/completions", json=chat)
            assert answer.status_code == 200, answer.text
        assert client.get("/v1/no-such-route").status_code == 404
    prometheus.wait_for("sum(increase(concierge_escalations_total[15m])) > 0")
    prometheus.wait_for("sum(increase(concierge_feedback_total[15m])) > 0")
    prometheus.wait_for('concierge_generation_time_to_first_token_seconds_count{endpoint="chat"}')
    return tenant


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=[path.stem for path in DASHBOARDS])
def test_every_dashboard_query_parses_and_returns_data(
    dashboard: Path, prometheus: PrometheusServer, traffic: str
) -> None:
    expressions = dashboard_expressions(dashboard)
    assert len(expressions) >= 10
    failures = []
    for title, expression in expressions:
        answer = prometheus.query(expression)
        if answer.get("status") != "success":
            failures.append(f"{title}: {expression}: {answer.get('error')}")
        elif not answer["data"]["result"]:
            failures.append(f"{title}: {expression}: no data")
    assert not failures, "\n".join(failures)


def test_every_alert_expression_parses_and_watches_series_that_exist(
    prometheus: PrometheusServer, traffic: str
) -> None:
    failures = []
    for rule in alert_rules():
        expression = rule["expr"]
        answer = prometheus.query(expression)
        if answer.get("status") != "success":
            failures.append(f"{rule['alert']}: does not parse: {answer.get('error')}")
            continue
        watched = prometheus.query(without_threshold_filter(expression))
        if watched.get("status") != "success" or not watched["data"]["result"]:
            failures.append(f"{rule['alert']}: {without_threshold_filter(expression)}: no data")
    assert not failures, "\n".join(failures)


def test_the_loaded_rules_evaluate_without_errors(
    prometheus: PrometheusServer, traffic: str
) -> None:
    deadline = time.monotonic() + 30
    rules = prometheus.rules()
    while any(rule["health"] == "unknown" for rule in rules) and time.monotonic() < deadline:
        time.sleep(0.5)  # not evaluated yet: the evaluation interval is one second
        rules = prometheus.rules()
    assert {rule["name"] for rule in rules} == {rule["alert"] for rule in alert_rules()}
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
