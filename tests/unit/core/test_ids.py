"""Ids that are stored: the same text must give the same number in every release."""

from __future__ import annotations

from core.ids import stable_id


def test_stable_ids_are_pinned_because_databases_store_them() -> None:
    """kb_terms and products.item_id hold these numbers: a change of function would make
    every stored term and catalog vector unfindable without a reindex."""
    assert stable_id("kettle") == 898517719127589332
    assert stable_id("水壶") == 1655461550122708604


def test_stable_ids_fit_a_signed_bigint() -> None:
    ids = [stable_id(f"product-{n}") for n in range(2000)]
    assert all(0 <= i < 2**63 for i in ids) and len(set(ids)) == len(ids)
