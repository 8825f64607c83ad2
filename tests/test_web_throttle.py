"""The login throttle, client addresses and printable text as pure code, plus a hypothesis
fuzz of the login endpoint on the real server.

The throttle's promises are checked with a fake clock: exponential delays with a cap,
forgetting, a success resetting its address, bounded tables that a spray cannot flush,
and, for any sequence of failures from elsewhere, the operator at the usual address never
waits.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from atcs.text import printable
from atcs.web.clients import ClientResolver
from atcs.web.throttle import LoginThrottle, ThrottlePolicy, address_key
from tests.support.web import call
from tests.test_web_hostile import Served, serve

POLICY = ThrottlePolicy(
    free_failures=3, base_delay_s=1.0, max_delay_s=8.0, memory_s=60.0, entries_max=8
)
USUAL = "10.1.1.1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: LoginThrottle, name: str, host: str) -> float:
    """One wrong password (when let through); return the wait asked for instead (or 0)."""
    attempt, wait = throttle.admit(name, host)
    return wait if attempt is None else 0.0


def test_delays_double_up_to_the_cap_and_are_forgotten() -> None:
    assert [POLICY.delay_s(n) for n in range(2, 9)] == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert POLICY.delay_s(10**9) == 8.0
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock)
    for expected in (1.0, 2.0, 4.0, 8.0, 8.0):
        for _ in range(3 if expected == 1.0 else 1):
            assert fail(throttle, "op", "10.9.9.9") == 0.0
        assert fail(throttle, "op", "10.9.9.9") == pytest.approx(expected)
        clock.now += expected
    clock.now += 61.0
    assert throttle.sizes()["addresses"] == 1
    assert fail(throttle, "op", "10.9.9.9") == 0.0, "forgotten after memory_s"
    assert throttle.name_failures("op") == 1


def test_a_right_password_resets_its_address_and_exempts_it_from_the_name() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock)
    for _ in range(3):
        fail(throttle, "op", USUAL)
    assert fail(throttle, "op", USUAL) == 1.0
    clock.now += 1.0
    attempt, _ = throttle.admit("op", USUAL)
    assert attempt is not None
    throttle.succeeded(attempt)
    assert throttle.known("op", USUAL)
    for host in ("10.2.0.1", "10.2.0.2", "10.2.0.3"):
        fail(throttle, "op", host)
    assert fail(throttle, "op", "10.2.0.4") == 1.0, "the name waits elsewhere"
    again, wait = throttle.admit("op", USUAL)
    assert (again is not None, wait) == (True, 0.0), "not at the usual address"


def test_a_spray_cannot_flush_a_name_under_attack() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock)
    for host in ("10.3.0.1", "10.3.0.2", "10.3.0.3"):
        fail(throttle, "victim", host)
    for i in range(200):
        fail(throttle, f"name{i}", f"10.4.{i // 250}.{i % 250}")
    assert max(throttle.sizes().values()) <= POLICY.entries_max
    assert throttle.name_failures("victim") == 3
    assert fail(throttle, "victim", "10.5.0.1") > 0.0


names = st.sampled_from(["op", "victor", "admin", "root"]) | st.text(max_size=8)
hosts = (
    st.builds("10.7.{}.{}".format, st.integers(0, 3), st.integers(0, 40))
    | st.sampled_from(["2001:db8::1", "2001:db8:0:1::9", "::ffff:10.7.0.1", "testclient", ""])
    | st.text(max_size=12)
)
steps = st.lists(
    st.tuples(st.booleans(), names, hosts, st.floats(0.0, 30.0, allow_nan=False)), max_size=200
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps)
def test_failures_from_elsewhere_never_make_the_operator_wait_at_the_usual_address(
    sequence: list[tuple[bool, str, str, float]],
) -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock)
    first, _ = throttle.admit("op", USUAL)
    assert first is not None
    throttle.succeeded(first)
    for advance, name, host, dt in sequence:
        if advance:
            clock.now += dt
        elif address_key(host) != USUAL:
            assert 0.0 <= fail(throttle, name, host) <= POLICY.max_delay_s
        attempt, wait = throttle.admit("op", USUAL)
        assert attempt is not None
        assert wait == 0.0
        throttle.succeeded(attempt)
        assert max(throttle.sizes().values()) <= POLICY.entries_max


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=40))
def test_a_shared_address_waits_at_most_the_cap_then_gets_in(gaps: list[float]) -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock)
    for gap in gaps:  # an attacker behind the operator's own address
        clock.now += gap
        fail(throttle, "op", USUAL)
    attempt, wait = throttle.admit("op", USUAL)
    assert wait <= POLICY.max_delay_s
    if attempt is None:
        clock.now += wait
        attempt, wait = throttle.admit("op", USUAL)
    assert attempt is not None
    assert wait == 0.0


def test_address_keys_group_ipv6_networks_and_unmap_ipv4() -> None:
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff") == "2001:db8::/64"
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("x" * 500) == "x" * 64


def _request(peer: str, scheme: str = "http", **headers: str) -> Request:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "client": (peer, 5000), "headers": raw, "scheme": scheme,
             "path": "/", "query_string": b"", "server": ("127.0.0.1", 8080)}  # fmt: skip
    return Request(scope)


def test_forwarding_headers_count_only_from_trusted_proxies() -> None:
    none = ClientResolver([])
    proxies = ClientResolver(["10.0.0.0/8", "192.0.2.1"])
    xff = {"x_forwarded_for": "6.6.6.6, 198.51.100.7, 10.1.1.1", "x_forwarded_proto": "https"}
    assert none.address(_request("198.51.100.9", **xff)) == "198.51.100.9"
    assert not none.https(_request("198.51.100.9", **xff))
    assert proxies.address(_request("192.0.2.1", **xff)) == "198.51.100.7", "spoofed 6.6.6.6"
    assert proxies.https(_request("192.0.2.1", **xff))
    assert proxies.address(_request("192.0.2.1", x_forwarded_for="junk, 10.2.2.2")) == "10.2.2.2"
    assert proxies.address(_request("192.0.2.1")) == "192.0.2.1"
    assert not proxies.https(_request("192.0.2.1", x_forwarded_proto="https, http"))
    assert none.https(_request("198.51.100.9", scheme="https"))
    long_header = ", ".join(["1.1.1.1"] * 2000) + ", 198.51.100.3"
    assert proxies.address(_request("10.0.0.5", x_forwarded_for=long_header)) == "198.51.100.3"


def test_printable_escapes_control_and_format_characters_and_bounds_length() -> None:
    assert printable("plain text, é ✓") == "plain text, é ✓"
    assert printable("a\nb\r\tc") == "a\\x0ab\\x0d\\x09c"
    assert printable("evil\u202etxt.exe\x1b[2J") == "evil\\u202etxt.exe\\x1b[2J"
    assert printable("\ud800") == "\\ud800"
    assert printable("x" * 1000, 10) == "x" * 10 + "…(+990 chars)"
    assert printable("\n" * 50, 8) == "\\x0a\\x0a…(+48 chars)"
    assert printable(12.5) == "12.5"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(1, 300))
def test_printable_output_is_one_bounded_printable_line(text: str, limit: int) -> None:
    out = printable(text, limit)
    kept = out.split("…(+")[0]
    assert len(kept) <= limit
    assert all(c.isprintable() for c in out)


# --- the login endpoint under fuzzing (real server) -------------------------------------

LOGIN_ANSWERS = {200, 400, 401, 413, 422, 429, 503}
TALLY = {"inputs": 0, "crashes": 0}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
credentials = st.fixed_dictionaries(
    {"username": st.text(max_size=70) | json_values, "password": st.text(max_size=300)}
)
bodies = st.one_of(
    credentials.map(lambda d: ("json", d)),
    json_values.map(lambda d: ("json", d)),
    st.binary(max_size=300).map(lambda b: ("raw", b)),
    st.integers(1, 20000).map(lambda n: ("raw", b"[" * n + b"]" * n)),
)
header_text = st.text(string.printable.strip("\r\n\x0b\x0c"), max_size=60)


@pytest.fixture(scope="module")
def fuzzed_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory.mktemp("fuzz"), trusted_proxies=["127.0.0.1/32"])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=bodies,
    source=st.builds("127.9.{}.{}".format, st.integers(0, 255), st.integers(1, 254)),
    forwarded=st.none() | header_text,
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www"]),
)
def test_the_login_endpoint_answers_every_input_without_crashing(
    fuzzed_site: Served, body: tuple[str, Any], source: str, forwarded: str | None,
    content_type: str,
) -> None:  # fmt: skip
    kind, payload = body
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    if content_type:
        headers["Content-Type"] = content_type
    answer = call(
        fuzzed_site.port, "POST", "/api/login", source=source, headers=headers,
        body=payload if kind == "json" else None, raw=payload if kind == "raw" else None,
    )  # fmt: skip
    TALLY["inputs"] += 1
    ok = answer.status in LOGIN_ANSWERS and (answer.status == 200 or bool(answer.code))
    TALLY["crashes"] += not ok
    assert ok, (answer.status, answer.body[:300])


def test_the_fuzzed_server_still_serves_and_kept_its_bounds(fuzzed_site: Served) -> None:
    print(f"login fuzz: {TALLY['inputs']} inputs, {TALLY['crashes']} crashes")
    assert TALLY["crashes"] == 0
    assert call(fuzzed_site.port, "GET", "/api/whoami").status == 200
    sizes = fuzzed_site.ctx.auth.throttle.sizes()
    assert max(sizes.values()) <= fuzzed_site.ctx.dash.login_clients_max
    assert fuzzed_site.ctx.auth.checks.pending == 0


def test_schema_documents_the_new_login_answers(fuzzed_site: Served) -> None:
    schema = call(fuzzed_site.port, "GET", "/openapi.json").json()
    answers = schema["paths"]["/api/login"]["post"]["responses"]
    assert {"200", "401", "413", "422", "429", "503"} <= set(answers)
