"""Tenant label values come only from a configured set (``core.metrics.TenantLabels``)."""

from __future__ import annotations

from pathlib import Path

from core.metrics import OTHER_TENANTS, TenantLabels


def test_named_tenants_are_the_only_labels_when_a_list_is_configured(tmp_path: Path) -> None:
    (tmp_path / "installed.toml").write_text("", encoding="utf-8")
    labels = TenantLabels()
    labels.configure(("acme",), tmp_path, ("demo",))
    assert labels.label("acme") == "acme"
    assert labels.label("installed") == OTHER_TENANTS
    assert labels.label("demo") == OTHER_TENANTS


def test_without_a_list_installed_tenants_and_the_default_get_labels(tmp_path: Path) -> None:
    (tmp_path / "installed.toml").write_text("", encoding="utf-8")
    labels = TenantLabels()
    labels.configure((), tmp_path, ("demo",))
    assert labels.label("installed") == "installed"
    assert labels.label("demo") == "demo"
    names = {labels.label(f"made-up-{n}") for n in range(1000)}
    assert names == {OTHER_TENANTS}, "names a caller sends never become label values"
