"""The connector's GraphQL documents validate against Shopify's published 2025-04 Admin schema.

The schema lives outside the repository (``../shared/reference/shopify-admin-schema``), so these
tests skip where it is absent. 2025-04 predates ``changeFromQuantity`` and ``@idempotent``
(2026-01), so the write is checked in its ``compareQuantity`` form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.shopify import queries

graphql = pytest.importorskip("graphql")

SCHEMA = (
    Path(__file__).resolve().parents[3]
    / ".."
    / "shared"
    / "reference"
    / "shopify-admin-schema"
    / "admin_2025-04.schema.graphql"
)


@pytest.fixture(scope="module")
def schema() -> Any:
    if not SCHEMA.is_file():
        pytest.skip(f"reference schema not found at {SCHEMA}")
    return graphql.build_schema(SCHEMA.read_text(encoding="utf-8"))


DOCUMENTS = {
    "PrimaryLocation": queries.PRIMARY_LOCATION,
    "VariantCount": queries.VARIANT_COUNT,
    "Variants": queries.VARIANTS,
    "InventoryItems": queries.INVENTORY_ITEMS,
    "Orders": queries.ORDERS,
    "OrderLineItems": queries.ORDER_LINE_ITEMS,
    "RunBulkQuery": queries.RUN_BULK_QUERY,
    "BulkOperation": queries.BULK_OPERATION,
    "SetQuantities (2025-10)": queries.set_quantities_mutation(
        "2025-10", "0b7e6c1e-5f7a-5d1c-9a53-1d1f0b2c3d4e"
    ),
    "bulk variants": queries.bulk_variants_query("gid://shopify/Location/1"),
    "Locations": queries.LOCATIONS,
    "Variants (3 locations)": queries.variants_query(3),
    "InventoryItems (3 locations)": queries.items_query(3),
    "bulk variants (2 locations)": queries.bulk_variants_query(
        "gid://shopify/Location/1", "gid://shopify/Location/2"
    ),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_validates_against_the_2025_04_schema(schema: Any, name: str) -> None:
    """Every field, argument and type the connector uses exists in the published schema."""
    errors = graphql.validate(schema, graphql.parse(DOCUMENTS[name]))

    assert [error.message for error in errors] == []


def test_a_misspelt_field_would_be_caught(schema: Any) -> None:
    """The check is real: a document with an unknown field fails validation."""
    broken = queries.VARIANTS.replace("inventoryLevel(", "inventoryLevels2(")

    assert graphql.validate(schema, graphql.parse(broken))
