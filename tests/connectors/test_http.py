"""The HTTP chokepoint: error mapping, retries of transient errors only, Retry-After, rate limits."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from connectors.http import (
    HttpClient,
    RateLimiter,
    RetryPolicy,
    json_body,
    paired_calls,
    parse_retry_after,
    urgent_calls,
)
from syncd.errors import AuthError, ConnectorError, ProtocolError, TransientError


class Script:
    """A MockTransport handler answering a fixed sequence of responses (or raising errors)."""

    def __init__(self, *answers: httpx.Response | Exception):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(script: Script, attempts: int = 3, waits: list[float] | None = None, **kw: object) -> HttpClient:
    async def no_sleep(seconds: float) -> None:
        if waits is not None:
            waits.append(seconds)

    return HttpClient(
        "shop",
        "http://shop.test",
        transport=httpx.MockTransport(script),
        retry=RetryPolicy(attempts=attempts, initial=0.01, maximum=60, jitter=0),
        sleep=no_sleep,
        **kw,  # type: ignore[arg-type]
    )


async def test_5xx_is_retried_until_success() -> None:
    """Two 503s then a 200: the caller gets the 200 after three attempts."""
    script = Script(httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"ok": True}))
    http = client(script)
    response = await http.request("GET", "/x")
    assert response.json() == {"ok": True} and len(script.requests) == 3 and http.calls == 3
    await http.aclose()


async def test_retry_after_sets_the_wait() -> None:
    """A 429 with Retry-After: 7 makes the next attempt wait at least 7 seconds."""
    waits: list[float] = []
    script = Script(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json={}))
    http = client(script, waits=waits)
    await http.request("GET", "/x")
    assert waits and waits[0] >= 7
    await http.aclose()


async def test_persistent_failure_raises_transient_after_all_attempts() -> None:
    """Timeouts on every attempt end in TransientError naming the connector and the request."""
    script = Script(*(httpx.ReadTimeout("slow") for _ in range(3)))
    http = client(script)
    with pytest.raises(TransientError, match=r"shop: GET /x timed out"):
        await http.request("GET", "/x")
    assert len(script.requests) == 3
    await http.aclose()


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthError), (403, AuthError), (404, ConnectorError), (400, ConnectorError)],
    ids=["401", "403", "404", "400"],
)
async def test_client_errors_are_not_retried(status: int, error: type[Exception]) -> None:
    """Auth failures and other 4xx are raised at once, with the remote message, never retried."""
    script = Script(httpx.Response(status, json={"message": "nope"}))
    http = client(script)
    with pytest.raises(error, match="nope") as caught:
        await http.request("GET", "/x")
    assert not isinstance(caught.value, TransientError)
    assert len(script.requests) == 1
    await http.aclose()


async def test_accepted_status_is_returned() -> None:
    """A status the caller declares acceptable is handed back instead of raised."""
    http = client(Script(httpx.Response(409, json={"error": "conflict"})))
    assert (await http.request("POST", "/x", accept=(409,))).status_code == 409
    await http.aclose()


async def test_connection_error_is_transient() -> None:
    """A refused connection is a TransientError (the connector is down, not broken)."""
    http = client(Script(*(httpx.ConnectError("refused") for _ in range(3))))
    with pytest.raises(TransientError, match="ConnectError"):
        await http.request("GET", "/x")
    await http.aclose()


@pytest.mark.parametrize(
    ("body", "expect", "message"),
    [
        (b'{"a": 1', dict, "not JSON"),
        (b"<html>oops</html>", dict, "not JSON"),
        (b"[1, 2]", dict, "type list, expected dict"),
        (b'"text"', list, "type str, expected list"),
    ],
    ids=["truncated", "html", "list-not-dict", "str-not-list"],
)
def test_json_body_rejects_malformed_answers(body: bytes, expect: type, message: str) -> None:
    """Malformed or wrongly shaped JSON is a ProtocolError naming the endpoint and the problem."""
    response = httpx.Response(200, content=body, request=httpx.Request("GET", "http://x/api/items"))
    with pytest.raises(ProtocolError, match=message) as caught:
        json_body(response, expect, connector="erp")
    assert "/api/items" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0", 0.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
    ids=["seconds", "zero", "absent", "garbage", "past-date"],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After in seconds or as an HTTP date; garbage is ignored."""
    assert parse_retry_after(value) == expected


async def test_rate_limiter_spaces_requests_beyond_the_burst() -> None:
    """With a burst of 2 at 10 per second the third request waits 0.1 s; a pause holds everyone."""
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(rate=10, burst=2, clock=lambda: now[0], sleep=fake_sleep)
    for _ in range(3):
        await limiter.acquire()
    limiter.pause(5)
    await limiter.acquire()
    assert slept[0] == pytest.approx(0.1)
    assert slept[1] == pytest.approx(5)


async def test_urgent_calls_go_before_waiting_routine_ones() -> None:
    """A routine call waiting for a token lets an urgent call that arrives later go first."""
    limiter = RateLimiter(rate=20, burst=1)
    await limiter.acquire()  # the bucket is empty now
    order: list[str] = []

    async def call(label: str, urgent: bool) -> None:
        if urgent:
            with urgent_calls():
                await limiter.acquire()
        else:
            await limiter.acquire()
        order.append(label)

    routine = asyncio.create_task(call("routine", urgent=False))
    await asyncio.sleep(0)  # the routine call is waiting
    await asyncio.gather(call("urgent-1", urgent=True), call("urgent-2", urgent=True), routine)
    assert sorted(order[:2]) == ["urgent-1", "urgent-2"] and order[2] == "routine"


async def test_paired_calls_take_their_turns_together() -> None:
    """Inside ``paired_calls`` the first request takes the tokens of both, so the second goes out
    at once even when the bucket has to refill; outside, each waits its own turn."""
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(5.0, burst=2, clock=lambda: now[0], sleep=sleep)
    await limiter.acquire()
    await limiter.acquire()  # the bucket is empty now
    with paired_calls(2):
        await limiter.acquire()  # waits for two tokens: 0.4 s
        waited = sum(slept)
        await limiter.acquire()  # prepaid: no wait
    assert waited == pytest.approx(0.4)
    assert sum(slept) == pytest.approx(0.4)
    await limiter.acquire()  # outside again: its own turn
    assert sum(slept) == pytest.approx(0.6)
