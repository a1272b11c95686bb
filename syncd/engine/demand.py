"""How fast each SKU sells and how late syncd hears of it: the in-flight estimate, the race a
write may lose, and the low-stock threshold that follows the sales rate. Callers pass ``now``."""

from __future__ import annotations

import statistics
from collections import defaultdict, deque
from collections.abc import Iterable
from datetime import datetime, timedelta

from connectors.base import OrderLine
from syncd.accounts import listing_sold
from syncd.config import Config
from syncd.core import auto_low_stock_threshold
from syncd.engine.reports import percentile

BURST_MIN_SPAN = 5.0  # seconds: the shortest span a sales rate is measured over
IN_FLIGHT_WINDOW = timedelta(seconds=5)  # recent sales that estimate those not yet reported


class Demand:
    """Recent sales per SKU, how late they reach syncd, and how long a push takes to land."""

    def __init__(self, config: Config, propagation: deque[float]) -> None:
        self.config = config
        self.propagation = propagation  # seconds from a sale to every channel knowing (Propagation)
        self.sale_lag: deque[float] = deque(maxlen=2000)
        self._sales: defaultdict[str, deque[tuple[datetime, int]]] = defaultdict(deque)
        self._threshold_peaks: dict[str, tuple[datetime, int]] = {}  # sku -> (when, auto threshold)
        self._by_channel: defaultdict[str, deque[tuple[datetime, str, int]]] = defaultdict(deque)

    def record(self, lines: Iterable[OrderLine], now: datetime) -> None:
        """New sales: their rate, and how late they reached syncd (webhook delay, or the poll
        interval), part of the time in which other channels can still sell the same unit."""
        auto = self.config.stock.auto_threshold
        keep = max(auto.window, auto.burst_window)
        for line in lines:
            self.sale_lag.append(max(0.0, (now - line.updated_at).total_seconds()))
            # A kit's sale is also one of the kit listing, in kits (its writes' race allowance).
            sold = listing_sold(line)
            kit = [] if sold is None or sold[0] == line.sku else [sold]
            for sku, units in [(line.sku, line.quantity), *kit]:
                sales = self._sales[sku]
                sales.append((now, units))
                while sales and now - sales[0][0] > keep:
                    sales.popleft()
                by_channel = self._by_channel[sku]
                by_channel.append((now, line.channel, units))
                while by_channel and now - by_channel[0][0] > auto.burst_window:
                    by_channel.popleft()

    def sold_by_channel(self, sku: str, now: datetime) -> dict[str, int]:
        """Units of ``sku`` each channel sold over the last burst window (the split by demand)."""
        window = self.config.stock.auto_threshold.burst_window
        sold: defaultdict[str, int] = defaultdict(int)
        for at, channel, quantity in self._by_channel.get(sku, ()):
            if now - at <= window:
                sold[channel] += quantity
        return dict(sold)

    def in_flight(self, sku: str, now: datetime) -> int:
        """Units of ``sku`` likely sold already but not yet reported to syncd: the rate at which its
        sales arrived over the last IN_FLIGHT_WINDOW times how late sales reach syncd (p95). They
        are gone whether or not syncd knows, so no channel may offer them; once sales stop
        arriving, the estimate falls to 0 within that window and any unit not sold returns."""
        if not self.config.stock.hold_in_flight:
            return 0
        rate = self.recent_rate(sku, now)
        if rate <= 0:
            return 0
        if len(self.sale_lag) >= 20:
            lag = statistics.fmean(self.sale_lag)
        else:
            lag = self.config.stock.auto_threshold.default_latency.total_seconds()
        return round(rate * lag)

    def recent_rate(self, sku: str, now: datetime) -> float:
        """Units of ``sku`` per second reported over the last IN_FLIGHT_WINDOW, on all channels."""
        window = IN_FLIGHT_WINDOW.total_seconds()
        return sum(q for t, q in self._sales.get(sku, ()) if (now - t).total_seconds() <= window) / window

    def latency(self) -> float:
        """Seconds from a sale to the other channels knowing: configured, or measured."""
        auto = self.config.stock.auto_threshold
        if auto.latency is not None:
            return auto.latency.total_seconds()
        # Too few samples say more about luck than about the channels.
        if len(self.propagation) < 20 or len(self.sale_lag) < 20:
            return auto.default_latency.total_seconds()
        # How late syncd hears of a sale, plus the push.
        return percentile(self.sale_lag, 0.95) + percentile(self.propagation, 0.95)

    def threshold(self, sku: str, now: datetime, latency: float) -> int:
        """The SKU's low-stock threshold: fixed, or ``auto`` from its sales rate."""
        threshold = self.config.stock.threshold_for(sku)
        if threshold == "auto":
            return self._auto_threshold(sku, now, latency)
        return threshold

    def split_at(self, sku: str, ats: int, now: datetime) -> None:
        """The SKU was just planned split, at ``ats`` units: its auto threshold stays at least
        there for a burst window from now. Otherwise the in-flight estimate falling back to 0 (no
        sale for a few seconds) can lift a SKU a unit above the floor out of low-stock mode in the
        middle of a burst, and every channel is shown all its units again."""
        if self.config.stock.threshold_for(sku) != "auto":
            return
        window = self.config.stock.auto_threshold.burst_window
        peak = self._threshold_peaks.get(sku)
        held = peak[1] if peak is not None and now - peak[0] <= window else 0
        self._threshold_peaks[sku] = (now, max(ats, held))

    def _auto_threshold(self, sku: str, now: datetime, latency: float) -> int:
        auto = self.config.stock.auto_threshold
        sales = self._sales.get(sku, ())

        def per_minute(window: timedelta, *, since_first: bool = False) -> float:
            recent = [(t, q) for t, q in sales if now - t <= window]
            span = window.total_seconds()
            if since_first and recent:
                # A burst that began seconds ago is measured over those seconds, not the window.
                span = min(span, max(BURST_MIN_SPAN, (now - recent[0][0]).total_seconds()))
            return sum(q for _, q in recent) / (span / 60)

        rate = max(per_minute(auto.window), per_minute(auto.burst_window, since_first=True))
        value = auto_low_stock_threshold(rate, latency, auto.floor, auto.cap)
        # The highest estimate holds for a burst window: a SKU that sold out on one channel sells
        # slower and its pushes get fewer, which would lower the estimate and take the SKU out of
        # low-stock mode while the burst goes on.
        peak = self._threshold_peaks.get(sku)
        if peak is not None and now - peak[0] <= auto.burst_window and peak[1] > value:
            return peak[1]
        self._threshold_peaks[sku] = (now, value)
        return value
