"""The circuit breaker: its state machine, and what a dead, throttling or recovering API sees on the wire."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from connectors.circuit import CircuitBreaker
from connectors.http import HttpClient, RetryPolicy
from syncd.errors import CircuitOpenError, ConnectorError, TransientError


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def breaker(
    clock: Clock, failures: int = 3, cooldown: float = 10, max_cooldown: float = 40
) -> CircuitBreaker:
    # rng 0: no jitter, so the cool-downs are exact.
    return CircuitBreaker(
        "shop", failures=failures, cooldown=cooldown, max_cooldown=max_cooldown, clock=clock, rng=lambda: 0.0
    )


def run(steps: str, clock: Clock, circuit: CircuitBreaker) -> list[str]:
    """Play steps (``f`` a call that fails, ``s`` one that succeeds, ``+N`` N seconds pass) and
    return what each call met: ``call``, ``trial`` or ``refused``, then the state after it."""
    seen: list[str] = []
    for step in steps.split():
        if step.startswith("+"):
            clock.now += float(step[1:])
            continue
        try:
            trial = circuit.admit()
        except CircuitOpenError:
            seen.append(f"refused:{circuit.state}")
            continue
        if step == "f":
            circuit.failed("GET /x answered 503", trial)
        else:
            circuit.succeeded(trial)
        seen.append(f"{'trial' if trial else 'call'}:{circuit.state}")
    return seen


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ("f f", ["call:closed", "call:closed"]),
        ("f f s f f", ["call:closed"] * 5),
        ("f f f f", ["call:closed", "call:closed", "call:open", "refused:open"]),
        ("f f f +9.9 s", ["call:closed", "call:closed", "call:open", "refused:open"]),
        ("f f f +10 s s", ["call:closed", "call:closed", "call:open", "trial:closed", "call:closed"]),
        ("f f f +10 f s", ["call:closed", "call:closed", "call:open", "trial:open", "refused:open"]),
        # A failed trial doubles the cool-down: 10 s, then 20 s, then 40 s, then capped at 40 s.
        (
            "f f f +10 f +19 s +1 f +39 s +1 f +39 s +1 s",
            [
                "call:closed",
                "call:closed",
                "call:open",
                "trial:open",
                "refused:open",
                "trial:open",
                "refused:open",
                "trial:open",
                "refused:open",
                "trial:closed",
            ],
        ),
        # Closing resets both the count and the cool-down.
        (
            "f f f +10 s f f f +10 s",
            [
                "call:closed",
                "call:closed",
                "call:open",
                "trial:closed",
                "call:closed",
                "call:closed",
                "call:open",
                "trial:closed",
            ],
        ),
    ],
    ids=[
        "below-threshold",
        "success-resets",
        "opens",
        "cool-down",
        "trial-closes",
        "trial-reopens",
        "capped-backoff",
        "reset-after-close",
    ],
)
def test_state_machine(steps: str, expected: list[str]) -> None:
    """Closed, open after N failures in a row, one trial after the cool-down, doubled cool-downs up to the cap."""
    clock = Clock()
    assert run(steps, clock, breaker(clock)) == expected


def test_only_one_trial_at_a_time() -> None:
    """Past the cool-down the first call is the trial; calls made while it is out are refused."""
    clock = Clock()
    circuit = breaker(clock)
    run("f f f +10", clock, circuit)
    assert circuit.admit() is True
    with pytest.raises(CircuitOpenError, match="trial call is under way"):
        circuit.admit()
    circuit.abandoned(True)  # the trial was cancelled: the next call may try instead
    assert circuit.admit() is True


def test_late_outcomes_of_calls_sent_before_the_circuit_opened() -> None:
    """A call sent before the circuit opened that succeeds closes it (the API is up); a trial that
    fails after that counts as one ordinary failure, not as a reopening."""
    clock = Clock()
    circuit = breaker(clock)
    early = circuit.admit()  # sent while closed, answers late
    run("f f f +10", clock, circuit)
    trial = circuit.admit()
    assert (early, trial) == (False, True)
    circuit.succeeded(early)
    assert circuit.state == "closed"
    circuit.failed("late 503", trial)
    assert circuit.state == "closed" and circuit.snapshot().failures == 1


def test_check_refuses_like_admit_without_taking_the_trial() -> None:
    """check() raises while open and lets a call through past the cool-down, leaving the trial to admit()."""
    clock = Clock()
    circuit = breaker(clock)
    circuit.check()  # closed
    run("f f f", clock, circuit)
    with pytest.raises(CircuitOpenError, match=r"next trial in 10\.0 s"):
        circuit.check()
    clock.now += 10
    circuit.check()
    assert circuit.admit() is True
    with pytest.raises(CircuitOpenError, match="trial call is under way"):
        circuit.check()


def test_open_error_says_when_the_next_trial_is() -> None:
    """A refused call names the connector, the last error and the wait, and carries them as data."""
    clock = Clock()
    circuit = breaker(clock)
    run("f f f +4", clock, circuit)
    with pytest.raises(CircuitOpenError, match=r"shop: .*answered 503.*next trial in 6\.0 s") as caught:
        circuit.admit()
    assert isinstance(caught.value, TransientError)
    assert caught.value.retry_after == pytest.approx(6.0)
    assert caught.value.next_trial_at == pytest.approx(clock.now + 6.0)


def test_snapshot_shows_state_failures_and_wall_times() -> None:
    """The snapshot reads open with the failures and the opening and trial times as UTC datetimes."""
    clock = Clock()
    circuit = breaker(clock)
    assert circuit.snapshot().state == "closed" and circuit.snapshot().opened_at is None
    run("f f f", clock, circuit)
    shot = circuit.snapshot()
    assert (shot.state, shot.failures) == ("open", 3)
    assert shot.opened_at == datetime.fromtimestamp(1_000, UTC)
    assert shot.next_trial_at == datetime.fromtimestamp(1_010, UTC)
    clock.now += 10
    assert circuit.snapshot().state == "half_open"


def test_jitter_only_shortens_the_cool_down() -> None:
    """With jitter the cool-down lies between (1 - jitter) and 1 times the nominal one."""
    for draw in (0.0, 0.5, 0.999):
        clock = Clock()
        circuit = CircuitBreaker(
            "shop", failures=1, cooldown=10, jitter=0.2, clock=clock, rng=lambda d=draw: d
        )
        circuit.failed("boom")
        assert circuit.snapshot().next_trial_at is not None
        wait = circuit.snapshot().next_trial_at.timestamp() - clock.now  # type: ignore[union-attr]
        assert 8.0 <= wait <= 10.0


@given(
    st.lists(st.one_of(st.sampled_from(["f", "s"]), st.floats(0, 100).map(lambda x: f"+{x}")), max_size=60)
)
def test_no_call_goes_out_while_open(steps: list[str]) -> None:
    """Whatever the sequence, an admitted call never meets an open circuit before its trial time,
    and N failures in a row from closed always open it."""
    clock = Clock()
    circuit = breaker(clock)
    streak = 0
    for step in steps:
        if step.startswith("+"):
            clock.now += float(step[1:])
            continue
        before = circuit.snapshot()
        try:
            trial = circuit.admit()
        except CircuitOpenError:
            assert before.state != "closed"
            continue
        if before.state == "open":
            assert before.next_trial_at is not None and clock.now >= before.next_trial_at.timestamp()
        assert trial == (before.state != "closed")
        if step == "f":
            circuit.failed("x", trial)
            streak = streak + 1 if before.state == "closed" else 0
            if streak >= 3:
                assert circuit.state == "open"
                streak = 0
        else:
            circuit.succeeded(trial)
            streak = 0
            assert circuit.state == "closed"


# ---------------------------------------------------------------------- on the wire


class Api:
    """A MockTransport handler whose answer can be switched: ``down`` (503), ``timeout``, ``throttle``
    (429 with Retry-After), ``reject`` (400) or ``up`` (200)."""

    def __init__(self, mode: str = "down"):
        self.mode = mode
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.mode == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        status = {"down": 503, "throttle": 429, "reject": 400, "up": 200}[self.mode]
        return httpx.Response(status, json={"message": self.mode}, headers={"Retry-After": "0"})


def http_for(api: Api, clock: Clock, attempts: int = 4) -> HttpClient:
    async def sleep(seconds: float) -> None:
        clock.now += seconds  # retries wait on the same clock the breaker reads, at no real cost

    return HttpClient(
        "shop",
        "http://shop.test",
        transport=httpx.MockTransport(api),
        retry=RetryPolicy(attempts=attempts, initial=0.5, maximum=5, jitter=0),
        sleep=sleep,
        circuit=CircuitBreaker(
            "shop", failures=5, cooldown=10, max_cooldown=40, clock=clock, rng=lambda: 0.0
        ),
    )


async def call_every_second(http: HttpClient, clock: Clock, seconds: int) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = []
    end = clock.now + seconds
    while clock.now < end:
        try:
            await http.request("GET", "/x")
            outcomes.append(None)
        except ConnectorError as exc:
            outcomes.append(exc)
        clock.now += 1
    return outcomes


@pytest.mark.parametrize("mode", ["down", "timeout"])
async def test_dead_api_gets_few_calls(mode: str) -> None:
    """Over two minutes of calls every second, a dead API gets the 5 failures that open the
    circuit plus one trial per cool-down (10, 20, 40, 40 s): 9 calls, not hundreds."""
    clock, api = Clock(), Api(mode)
    http = http_for(api, clock)
    with capture_logs() as logs:
        outcomes = await call_every_second(http, clock, 120)
    assert api.calls <= 5 + 4
    assert all(isinstance(o, TransientError) for o in outcomes)
    assert sum(isinstance(o, CircuitOpenError) for o in outcomes) >= 100
    opened = [e for e in logs if e["event"] == "circuit.opened"]
    assert len(opened) == 1 and opened[0]["connector"] == "shop" and "GET /x" in opened[0]["error"]
    assert [e["event"] for e in logs if e["event"].startswith("circuit.") and e["log_level"] != "debug"] == [
        "circuit.opened"
    ]
    await http.aclose()


async def test_circuit_closes_when_the_api_comes_back() -> None:
    """When the API answers again, the next trial closes the circuit (one log line) and calls flow."""
    clock, api = Clock(), Api("down")
    http = http_for(api, clock)
    await call_every_second(http, clock, 30)
    assert http.circuit.state != "closed"
    api.mode = "up"
    with capture_logs() as logs:
        outcomes = await call_every_second(http, clock, 60)
    assert http.circuit.state == "closed"
    assert outcomes[-10:] == [None] * 10
    assert [e["event"] for e in logs if e["event"].startswith("circuit.")] == ["circuit.closed"]
    await http.aclose()


@pytest.mark.parametrize("mode", ["throttle", "reject"])
async def test_throttling_and_rejections_do_not_open_it(mode: str) -> None:
    """429s with Retry-After and 400s come from a live API: every call still reaches it."""
    clock, api = Clock(), Api(mode)
    http = http_for(api, clock, attempts=2)
    outcomes = await call_every_second(http, clock, 30)
    assert http.circuit.state == "closed"
    assert not any(isinstance(o, CircuitOpenError) for o in outcomes)
    # Every call reached the API: both attempts of a throttled one, the one attempt of a 400.
    assert api.calls == len(outcomes) * (2 if mode == "throttle" else 1) and len(outcomes) >= 20
    await http.aclose()


async def test_open_circuit_is_not_retried() -> None:
    """A call refused by the open circuit fails at once: no retry waits, no request sent."""
    clock, api = Clock(), Api("down")
    http = http_for(api, clock, attempts=10)
    with pytest.raises(CircuitOpenError):
        await http.request("GET", "/x")  # five 503s open the circuit mid-way through the retries
    assert api.calls == 5
    started = clock.now
    with pytest.raises(CircuitOpenError):
        await http.request("GET", "/x")
    assert api.calls == 5 and clock.now == started
    await http.aclose()


async def test_accepted_5xx_still_counts_as_a_failure() -> None:
    """A caller reading 5xx bodies itself (accept=...) still gets its circuit opened by them."""
    clock, api = Clock(), Api("down")
    http = http_for(api, clock)
    for _ in range(5):
        assert (await http.request("GET", "/x", accept=(503,), retry=False)).status_code == 503
    with pytest.raises(CircuitOpenError):
        await http.request("GET", "/x", accept=(503,), retry=False)
    assert api.calls == 5
    await http.aclose()
