"""The operator's view of the daemon: /status, /api/status, the SKU pages and the report commands.

Data, as pure functions from ledger rows and the engine's snapshot to the dicts the pages and the
JSON show (no I/O, no clock: ``now`` is passed): ``channels`` (each connector, its circuit
breaker and API budget, the outbox), ``stock`` (oversell risk, sold out, refused sales),
``drift``, ``runs`` (runs and the activity chart's series), ``sku_report`` (one SKU). ``load``
reads the ledger and the daemon and hands the rows to them.

Pages, as self-contained HTML from those dicts: ``html`` (the page shell, tables, times),
``charts`` (inline SVG), ``overview`` (the main page) and ``sku_page`` (one SKU's history).
"""
