"""The product catalog on a database two processes share: what one writes, the other reads."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, text

from models.embedder import Embedder
from retrieval.catalog import QUERY_CANDIDATES, Product, ProductCatalog


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


def test_a_large_catalog_ranks_as_an_exact_scan_of_every_product_would(
    database: Engine, embedder: Embedder
) -> None:
    """Beyond ``QUERY_CANDIDATES`` products a search scores only the store's candidates
    (nearest the question, nearest each owned product): the blended top 5 must still be
    what scoring every product exactly gives."""
    catalog = ProductCatalog(database, embedder)
    kinds = ["kettle", "grinder", "mug", "toaster", "blender", "scale", "teapot", "whisk"]
    products = [
        Product(f"p{n:03d}", f"{kinds[n % 8].title()} model {n}", kinds[n % 8], f"Size {n % 5}")
        for n in range(3 * QUERY_CANDIDATES)
    ]
    catalog.put("shop", products)
    owned = ["p001", "p013"]
    related = catalog.vectors_of("shop", owned)
    query = embedder.embed_sync(["a kettle for my tea"])[0]
    found = catalog.search("shop", query, 5, exclude=owned, history_vectors=related)

    every = catalog.vectors_of("shop", [p.product_id for p in products])
    blended = 0.6 * (every @ query) + 0.4 * (every @ related.T).max(axis=1)
    exact = [products[i].product_id for i in np.argsort(-blended, kind="stable")]
    assert [m.product.product_id for m, _, _ in found] == [p for p in exact if p not in owned][:5]


def test_catalog_vectors_are_in_the_shared_store_on_postgresql(
    database: Engine, embedder: Embedder
) -> None:
    if database.dialect.name != "postgresql":
        pytest.skip("SQLite searches the catalog in this process's memory")
    catalog = ProductCatalog(database, embedder)
    catalog.put("shop", [Product("kettle", "Steel kettle", "kitchen", "Boils 1.7 litres")])
    count = "SELECT count(*) FROM vector_items WHERE collection = 'catalog' AND tenant = 'shop'"
    with database.connect() as conn:
        assert conn.execute(text(count)).scalar() == 1
    catalog.put("shop", [Product("kettle", "Glass kettle", "kitchen", "Boils 1.5 litres")])
    with database.connect() as conn:
        assert conn.execute(text(count)).scalar() == 1, "a replaced product keeps one vector"
    assert catalog.delete("shop", "kettle")
    with database.connect() as conn:
        assert conn.execute(text(count)).scalar() == 0


def test_vectors_of_gives_one_row_per_name_in_the_order_named(
    database: Engine, embedder: Embedder
) -> None:
    """``_closest_owned`` indexes its list of owned products by row: a product bought twice
    must give two rows, or the anchor named in a recommendation's reason is the wrong one."""
    catalog = ProductCatalog(database, embedder)
    catalog.put("shop", [Product("kettle", "Kettle", "kitchen"), Product("mug", "Mug", "kitchen")])
    rows = catalog.vectors_of("shop", ["mug", "kettle", "unknown", "mug"])
    assert rows.shape[0] == 3
    assert np.array_equal(rows[0], rows[2]) and not np.array_equal(rows[0], rows[1])
    assert np.array_equal(rows[1], catalog.vectors_of("shop", ["kettle"])[0])
