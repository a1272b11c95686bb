"""ERP outage mode (design section 6): the ERP has not answered for ``erp.max_staleness``.

syncd goes on from the last on-hand it read and the reservations since, but stock may have gone
elsewhere meanwhile (a shop till, a channel syncd does not manage), so it stops vouching for
more: no quantity is raised anywhere, and low-stock SKUs, whose last units are the ones such a
sale would take, go to 0 on every channel. When the ERP answers again, the channels' orders are
taken in first; only then does the mode end and every SKU get planned afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from syncd.engine.health import Health

log = structlog.get_logger("syncd.engine")


class ErpOutage:
    def __init__(
        self, health: Health, erp: str, max_staleness: timedelta, clock: Callable[[], datetime]
    ) -> None:
        self.health = health
        self.erp = erp
        self.max_staleness = max_staleness
        self.clock = clock
        self.started_at = clock()  # a daemon that never reached the ERP counts from its start
        self.since: datetime | None = None  # when outage mode began (None: not in it)

    def active(self) -> bool:
        """Whether outage mode is on; it turns on once the ERP's last answer is too old."""
        if self.since is not None:
            return True
        last = self.health[self.erp].last_success or self.started_at
        now = self.clock()
        if now - last <= self.max_staleness:
            return False
        self.since = now
        log.warning(
            "erp.outage_started",
            erp=self.erp,
            last_answer=last.isoformat(),
            max_staleness=str(self.max_staleness),
            effect="no quantity is raised; low-stock SKUs are at 0 until the ERP answers",
        )
        return True

    def recovered(self) -> bool:
        """In outage mode, whether the ERP has answered since it began (the caller then takes the
        orders in and calls ``end``)."""
        last = self.health[self.erp].last_success
        return self.since is not None and last is not None and last > self.since

    def end(self) -> None:
        if self.since is None:
            return
        log.info("erp.outage_ended", erp=self.erp, lasted_seconds=round((self.clock() - self.since).total_seconds(), 1))
        self.since = None

    def readiness(self) -> list[str]:
        if self.since is None:
            return []
        return [f"{self.erp}: outage mode since {self.since.isoformat()} (no answer for over {self.max_staleness})"]

    def status(self) -> dict[str, str] | None:
        return None if self.since is None else {"since": self.since.isoformat(), "max_staleness": str(self.max_staleness)}
