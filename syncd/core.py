"""The pure planning core: available-to-sell, per-channel targets, low-stock partitions, drift
causes and the ordered push plan. No I/O and no clock reads here; callers pass ``now`` if needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class ChannelPolicy:
    """How much of the available stock one channel may show.

    ``share`` is a percentage of ats (rounded down), ``buffer`` units held back from it, ``cap``
    the most it may ever show. In low-stock mode channels are served in ``priority`` order (lower
    number first), and channels of equal priority split the units by ``weight``.
    """

    channel: str
    share: int = 100
    buffer: int = 0
    cap: int | None = None
    priority: int = 100
    weight: int = 1


@dataclass(frozen=True)
class SkuStock:
    """What the ledger knows of one SKU at planning time."""

    sku: str
    on_hand: int
    reserved: int
    safety_stock: int
    low_stock_threshold: int


@dataclass(frozen=True)
class ChannelState:
    """What syncd believes one channel shows for one SKU.

    ``last_pushed`` is the quantity syncd last set (None if never), ``sold_since_push`` the units
    the channel sold since then (it decrements itself), ``observed`` what a read-back returned
    (None if never read).
    """

    channel: str
    sku: str
    last_pushed: int | None
    sold_since_push: int
    observed: int | None

    @property
    def expected(self) -> int | None:
        """What the channel should show now given syncd's own pushes and the sales it has seen."""
        ...


@dataclass(frozen=True)
class PlannedPush:
    """Set ``channel``'s ``sku`` to ``target``; ``compare`` is what it is believed to show now."""

    channel: str
    sku: str
    target: int
    compare: int | None
    reason: str

    @property
    def is_decrease(self) -> bool:
        """True when the push lowers the shown quantity (or the current value is unknown)."""
        ...


class DriftCause(StrEnum):
    """Likely reason why a channel shows something other than expected."""

    MISSED_ORDER = "missed_order"  # channel shows less: a sale syncd has not ingested
    MANUAL_EDIT = "manual_edit"  # channel shows more (or less) with no sale to explain it
    MISSED_CANCELLATION = "missed_cancellation"  # more, and the channel restocked a cancelled order
    UNKNOWN_BASELINE = "unknown_baseline"  # syncd never set this listing: first sighting


@dataclass(frozen=True)
class Drift:
    """One detected difference between expected and observed."""

    channel: str
    sku: str
    expected: int | None
    observed: int
    cause: DriftCause


def available_to_sell(on_hand: int, reserved: int, safety_stock: int) -> int:
    """ats = max(0, on_hand - reserved - safety_stock)."""
    ...


def is_low_stock(stock: SkuStock) -> bool:
    """True when ats is at or below the SKU's low-stock threshold (and the threshold is > 0)."""
    ...


def policy_target(ats: int, policy: ChannelPolicy) -> int:
    """A channel's target outside low-stock mode: share, then buffer, then cap; never above ats."""
    ...


def channel_targets(
    stock: SkuStock, policies: Sequence[ChannelPolicy], unavailable: frozenset[str] = frozenset()
) -> dict[str, int]:
    """Target quantity per channel for one SKU.

    Outside low-stock mode every channel gets its policy target. In low-stock mode the ats units
    are partitioned: by priority, then by weight (largest remainder, ties by channel name), no
    channel above its policy target, channels in ``unavailable`` get 0; the targets sum to at most
    ats. Every target is between 0 and ats.
    """
    ...


def classify_drift(state: ChannelState, recently_cancelled_units: int = 0) -> Drift | None:
    """The drift of one listing, or None when observed equals expected or nothing was observed."""
    ...


def plan_pushes(
    targets: Mapping[tuple[str, str], int],
    believed: Mapping[tuple[str, str], int | None],
    reason: str,
) -> list[PlannedPush]:
    """Pushes that bring every (channel, sku) from what it is believed to show to its target.

    Pairs already at target produce nothing (so planning again after applying yields nothing).
    Order: decreases first (zero-outs before other decreases, larger drops first), then increases;
    within a class, by channel then sku, so the plan is deterministic.
    """
    ...
