"""The GraphQL documents the Shopify connector sends, and the version rules that shape them.

Everything a caller supplies travels in variables, except where GraphQL gives no other way:
the location inside a bulk query (bulk queries take no variables) and the idempotency key
(a uuid the client derives itself).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

# Page sizes stay under the single-query cost limit (1000 points): a connection costs about
# ``first`` times the objects in each node.
VARIANTS_PAGE = 250
ITEMS_PAGE = 250
ORDERS_PAGE = 50
ORDER_LINES_PAGE = 10
MORE_LINES_PAGE = 250
# GraphQL input arrays are capped at 250 items.
MAX_QUANTITIES = 250

# Compare-and-set moved to ``changeFromQuantity`` (and ``@idempotent`` arrived) in 2026-01.
CHANGE_FROM_VERSION = "2026-01"

_LEVEL = 'inventoryLevel(locationId: $locationId) { quantities(names: ["available"]) { name quantity } }'

LOCATIONS = """
query Locations($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Location { id name isActive } }
}
"""

PRIMARY_LOCATION = """
query PrimaryLocation {
  location { id isActive }
}
"""

VARIANT_COUNT = """
query VariantCount {
  productVariantsCount { count precision }
}
"""

VARIANTS = f"""
query Variants($first: Int!, $after: String, $locationId: ID!) {{
  productVariants(first: $first, after: $after) {{
    nodes {{ id sku inventoryItem {{ id tracked {_LEVEL} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

INVENTORY_ITEMS = f"""
query InventoryItems($ids: [ID!]!, $locationId: ID!) {{
  nodes(ids: $ids) {{
    ... on InventoryItem {{ id sku tracked {_LEVEL} }}
  }}
}}
"""

_LINE = "id sku quantity"

ORDERS = f"""
query Orders($first: Int!, $after: String, $query: String!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    nodes {{
      id legacyResourceId updatedAt cancelledAt
      lineItems(first: {ORDER_LINES_PAGE}) {{ nodes {{ {_LINE} }} pageInfo {{ hasNextPage endCursor }} }}
    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

ORDER_LINE_ITEMS = f"""
query OrderLineItems($id: ID!, $after: String) {{
  node(id: $id) {{
    ... on Order {{
      lineItems(first: {MORE_LINES_PAGE}, after: $after) {{
        nodes {{ {_LINE} }}
        pageInfo {{ hasNextPage endCursor }}
      }}
    }}
  }}
}}
"""

RUN_BULK_QUERY = """
mutation RunBulkQuery($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message }
  }
}
"""

BULK_OPERATION = """
query BulkOperation($id: ID!) {
  node(id: $id) {
    ... on BulkOperation { id status errorCode objectCount url partialDataUrl }
  }
}
"""


def level_alias(index: int) -> str:
    """The field that holds the level at the ``index``-th named location (several locations)."""
    return f"level{index}"


def _levels(count: int) -> str:
    """One aliased ``inventoryLevel`` per named location, over ``$location0``, ``$location1``..."""
    return " ".join(
        f"{level_alias(i)}: " + _LEVEL.replace("$locationId", f"$location{i}") for i in range(count)
    )


def _location_parameters(count: int) -> str:
    return ", ".join(f"$location{i}: ID!" for i in range(count))


def location_variables(locations: Sequence[str]) -> dict[str, str]:
    """The variables of a read at several locations (see ``variants_query``, ``items_query``)."""
    return {f"location{i}": location for i, location in enumerate(locations)}


def variants_query(count: int) -> str:
    """``Variants`` reading the levels at ``count`` named locations (1: the plain ``VARIANTS``)."""
    if count == 1:
        return VARIANTS
    return f"""
query Variants($first: Int!, $after: String, {_location_parameters(count)}) {{
  productVariants(first: $first, after: $after) {{
    nodes {{ id sku inventoryItem {{ id tracked {_levels(count)} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""


def items_query(count: int) -> str:
    """``InventoryItems`` reading the levels at ``count`` named locations (1: ``INVENTORY_ITEMS``)."""
    if count == 1:
        return INVENTORY_ITEMS
    return f"""
query InventoryItems($ids: [ID!]!, {_location_parameters(count)}) {{
  nodes(ids: $ids) {{
    ... on InventoryItem {{ id sku tracked {_levels(count)} }}
  }}
}}
"""


def bulk_variants_query(*locations: str) -> str:
    """The bulk query for every variant with its levels at ``locations`` (one JSONL line each);
    one location gives the plain ``inventoryLevel`` field, several the aliases ``level0``..."""
    if len(locations) == 1:
        level = _LEVEL.replace("$locationId", json.dumps(locations[0]))
    else:
        level = " ".join(
            f"{level_alias(i)}: " + _LEVEL.replace("$locationId", json.dumps(location))
            for i, location in enumerate(locations)
        )
    return f"{{ productVariants {{ edges {{ node {{ id sku inventoryItem {{ id tracked {level} }} }} }} }} }}"


def uses_change_from(api_version: str) -> bool:
    """Whether ``api_version`` has ``changeFromQuantity`` and ``@idempotent`` (2026-01 on)."""
    return api_version == "unstable" or api_version >= CHANGE_FROM_VERSION


def set_quantities_mutation(api_version: str, idempotency_key: str) -> str:
    """``inventorySetQuantities`` for ``api_version``; ``idempotency_key`` must be a plain token."""
    if not idempotency_key.replace("-", "").isalnum():
        raise ValueError("idempotency key must be letters, digits and dashes")
    directive = f' @idempotent(key: "{idempotency_key}")' if uses_change_from(api_version) else ""
    return f"""
mutation SetQuantities($input: InventorySetQuantitiesInput!) {{
  inventorySetQuantities(input: $input){directive} {{
    inventoryAdjustmentGroup {{ id }}
    userErrors {{ code field message }}
  }}
}}
"""
