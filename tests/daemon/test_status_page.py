"""The /status page a person reads: everything escaped, long lists cut, the key facts present."""

from __future__ import annotations

from syncd.status_page import LOW_STOCK_ROWS, render_status_page


def test_page_escapes_and_summarises() -> None:
    """Remote text is escaped, low stock is cut to the worst rows, and propagation is shown."""
    status = {
        "version": "0.1.0",
        "started_at": "2026-11-23T10:00:00+00:00",
        "connectors": [
            {
                "name": "shop",
                "kind": "channel",
                "type": "woocommerce",
                "healthy": False,
                "needs_human": True,
                "last_success": None,
                "last_error": "<script>alert(1)</script>",
            }
        ],
        "low_stock": [
            {"sku": f"S{i:03d}", "ats": i, "threshold": 50, "targets": {"shop": i}} for i in range(40)
        ],
        "propagation_seconds": {"samples": 12, "p50": 0.2, "p95": 0.9, "p99": 1.4},
        "events": [
            {"name": "live", "channel": "shop", "start": "a", "end": "b", "active": True, "reserve": 5}
        ],
        "runs": [],
        "drift": [],
    }
    page = render_status_page(status)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "needs a human" in page
    assert "S000" in page and f"S{LOW_STOCK_ROWS:03d}" not in page and "15 more" in page
    assert "p95 0.9 s" in page and "reserve 5" in page and "Low stock (40 SKUs)" in page
