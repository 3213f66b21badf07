"""The product catalog on a database two processes share: what one writes, the other reads."""

from __future__ import annotations

from sqlalchemy import Engine

from models.embedder import Embedder
from retrieval.catalog import Product, ProductCatalog


def test_a_catalog_change_through_one_process_is_what_the_other_searches(
    database: Engine, embedder: Embedder
) -> None:
    first, second = ProductCatalog(database, embedder), ProductCatalog(database, embedder)
    first.put("shop", [Product("kettle", "Steel kettle", "kitchen", "Boils 1.7 litres")])
    query = embedder.embed_sync(["something to boil water"])[0]
    assert [m.product.product_id for m, _, _ in second.search("shop", query, 5)] == ["kettle"]

    first.put("shop", [Product("grinder", "Burr grinder", "coffee", "Grinds espresso beans")])
    found = {m.product.product_id for m, _, _ in second.search("shop", query, 5)}
    assert found == {"kettle", "grinder"}, "a put through the other process is read at once"

    first.put("shop", [Product("kettle", "Glass kettle", "kitchen", "Boils 1.5 litres")])
    assert second.get("shop", "kettle").name == "Glass kettle"  # type: ignore[union-attr]

    assert first.delete("shop", "kettle")
    assert [m.product.product_id for m, _, _ in second.search("shop", query, 5)] == ["grinder"]
    assert second.get("shop", "kettle") is None
