"""The GraphQL documents the Shopify connector sends, and the version rules that shape them.

Everything a caller supplies travels in variables, except where GraphQL gives no other way:
the location inside a bulk query (bulk queries take no variables) and the idempotency key
(a uuid the client derives itself).
"""

from __future__ import annotations

import json

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


def bulk_variants_query(location_id: str) -> str:
    """The bulk query for every variant with its level at ``location_id`` (one JSONL line each)."""
    level = _LEVEL.replace("$locationId", json.dumps(location_id))
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
