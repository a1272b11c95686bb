"""The Shopify channel: Admin GraphQL API reads and compare-and-set writes, order webhooks, a sandbox."""
