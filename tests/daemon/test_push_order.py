"""The order in which a channel's sender sends its pending pushes, and what it writes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.engine.sender import urgency
from syncd.engine.slices import quantity_update
from syncd.store import PushRow

AT = datetime(2026, 11, 23, tzinfo=UTC)


def push(ident: int, target: int, compare: int | None) -> PushRow:
    return PushRow(ident, "tiktok", f"S{ident}", target, compare, "fast-path", "pending", 0, AT, "")


def test_zero_outs_then_largest_relative_drops_then_increases() -> None:
    """A channel sends zero-outs first, then decreases by relative drop, then increases."""
    pending = [
        push(1, 60, 40),  # an increase
        push(2, 53, 54),  # routine: one unit off 54
        push(3, 10, 30),  # a hot SKU dropping fast
        push(4, 0, 3),  # sold out elsewhere
        push(5, 5, None),  # current value unknown: treated as the riskiest decrease
        push(6, 20, 20),  # no change (never planned, but must not jump the queue)
    ]
    assert [p.id for p in sorted(pending, key=urgency)] == [4, 5, 3, 2, 1, 6]


@pytest.mark.parametrize(
    ("target", "compare", "shown", "quantity", "sent_compare"),
    [
        (8, 10, 7, 5, 7),  # 3 unseen sales are left out, the value read is compared against
        (8, 10, 10, 8, 10),  # nothing unseen
        (8, 10, 12, 8, 12),  # shows more than believed: nothing is added
        (2, 10, 5, 0, 5),  # more unseen than the target: zero, never negative
        (8, 10, None, 8, 10),  # not read (a reconcile push): as planned
        (8, None, 6, 8, None),  # nothing believed: nothing to call unseen
    ],
)
def test_write_leaves_out_unseen_sales(
    target: int, compare: int | None, shown: int | None, quantity: int, sent_compare: int | None
) -> None:
    """A write leaves out the sales the read before it shows syncd has not heard of."""
    update = quantity_update(
        PushRow(9, "tiktok", "A", target, compare, "fast-path", "pending", 0, AT, ""), "P:S", shown
    )
    assert (update.quantity, update.compare, update.key) == (quantity, sent_compare, "syncd-push-9")
