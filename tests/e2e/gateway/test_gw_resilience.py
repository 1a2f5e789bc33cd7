"""Resilience: 504 on timeout, 502 on a refused target, the circuit breaker (closed -> open ->
half-open with a single probe -> closed, 503 while open), retries for idempotent methods only.
Every error is problem+json carrying the request id."""

import threading
import time

import pytest

from gwtest import KeepAlive, assert_problem, gateway_config, refused_port, upstream_of

NO_BREAKER = {"breaker": {"enabled": False}, "passive": {"consecutive_failures": 0}}


def route(upstream="u", **kw):
    return {"name": "r", "match": {"path": "/", "prefix": True}, "upstream": upstream, **kw}


def assert_problem_with_request_id(resp, status):
    doc = assert_problem(resp, status)
    rid = resp.header("X-Request-Id")
    assert rid, f"no X-Request-Id on the {status}: {resp!r}"
    assert rid in resp.body.decode(), f"the {status} problem body does not carry the request id {rid}: {doc}"
    return doc


def test_route_timeout_is_504(start_server, start_gateway):
    hello = start_server("--workers", "1")
    gw = start_gateway(gateway_config({"u": upstream_of(hello.port, **NO_BREAKER)}, [route(timeout_ms=300)]))
    resp = gw.get("/delay/1500")
    assert_problem_with_request_id(resp, 504)
    # The gateway is still fine, and a fast request on the same route passes.
    assert gw.get("/").status == 200


def test_upstream_timeout_is_504(start_server, start_gateway):
    hello = start_server("--workers", "1")
    gw = start_gateway(gateway_config({"u": upstream_of(hello.port, timeout_ms=300, **NO_BREAKER)}, [route()]))
    assert_problem_with_request_id(gw.get("/delay/1500"), 504)


def test_504_with_a_supplied_request_id(start_server, start_gateway):
    hello = start_server("--workers", "1")
    gw = start_gateway(gateway_config({"u": upstream_of(hello.port, **NO_BREAKER)}, [route(timeout_ms=200)]))
    resp = gw.get("/delay/1500", ["X-Request-Id: my-req-504"])
    assert_problem_with_request_id(resp, 504)
    assert resp.header("X-Request-Id") == "my-req-504"


def test_refused_target_is_502(start_gateway):
    gw = start_gateway(gateway_config(
        {"u": upstream_of(refused_port(), retries={"attempts": 1}, **NO_BREAKER)}, [route()]))
    assert_problem_with_request_id(gw.get("/"), 502)
    assert_problem_with_request_id(gw.fetch("POST", "/", body=b"x"), 502)


def test_upstream_closing_without_an_answer_is_502(start_py_upstream, start_gateway):
    a = start_py_upstream()
    gw = start_gateway(gateway_config({"u": upstream_of(a.port, retries={"attempts": 1}, **NO_BREAKER)}, [route()]))
    assert_problem_with_request_id(gw.get("/reset"), 502)
    assert_problem_with_request_id(gw.fetch("POST", "/reset", body=b"x"), 502)
    assert gw.get("/fine").status == 200


@pytest.mark.parametrize("kind", ["huge_header", "bad_status_line", "garbage"])
def test_malformed_upstream_response_is_502(start_py_upstream, start_gateway, kind):
    a = start_py_upstream()
    gw = start_gateway(gateway_config({"u": upstream_of(a.port, retries={"attempts": 1}, **NO_BREAKER)}, [route()]))
    assert_problem_with_request_id(gw.get(f"/bad/{kind}"), 502)
    assert gw.get("/fine").status == 200


def test_breaker_opens_probes_once_and_closes(start_py_upstream, start_gateway):
    a = start_py_upstream()
    a.status = 500
    gw = start_gateway(gateway_config(
        {"u": upstream_of(a.port, breaker={"window_ms": 10000, "min_requests": 4, "failure_ratio": 0.5, "open_ms": 1000},
                          passive={"consecutive_failures": 0}, retries={"attempts": 1})},
        [route()],
    ))
    # closed: failures pass through until the breaker has seen min_requests
    for _ in range(4):
        assert gw.get("/").status == 500
    assert a.count() == 4
    # open: refused at the gateway, nothing reaches the upstream
    for _ in range(3):
        assert_problem_with_request_id(gw.get("/"), 503)
    assert a.count() == 4, f"{a.count() - 4} requests reached the upstream while the breaker was open"
    lines = [l for l in gw.metrics().splitlines() if l.startswith("agora_gateway_breaker_state")]
    assert lines, "no agora_gateway_breaker_state metric"

    # half-open: after open_ms one probe only; the upstream is healthy now but slow
    a.status = None
    a.delay = 1.5
    time.sleep(1.3)  # past open_ms
    results = [None] * 6

    def one(i):
        results[i] = gw.get("/").status

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(30)
    assert a.count() == 5, f"half-open let {a.count() - 4} requests through (one probe expected); statuses {results}"
    assert sorted(results) == [200, 503, 503, 503, 503, 503], results

    # closed again after the successful probe
    a.delay = 0
    statuses = [gw.get("/").status for _ in range(5)]
    assert statuses == [200] * 5, statuses
    assert a.count() == 10


def test_breaker_failed_probe_reopens(start_py_upstream, start_gateway):
    a = start_py_upstream()
    a.status = 503
    gw = start_gateway(gateway_config(
        {"u": upstream_of(a.port, breaker={"min_requests": 4, "failure_ratio": 0.5, "open_ms": 800},
                          passive={"consecutive_failures": 0}, retries={"attempts": 1})},
        [route()],
    ))
    for _ in range(4):
        gw.get("/")
    assert_problem(gw.get("/"), 503)
    assert a.count() == 4
    time.sleep(1.0)
    assert gw.get("/").status == 503  # the probe, answered 503 by the upstream itself
    assert a.count() == 5
    resp = gw.get("/")  # open again: refused at the gateway
    assert_problem(resp, 503)
    assert a.count() == 5, "after a failed probe the breaker did not open again"


def test_get_retried_on_the_other_target_after_connect_error(start_server, start_gateway):
    hello = start_server("--workers", "1")
    gw = start_gateway(gateway_config(
        {"u": upstream_of(refused_port(), hello.port, retries={"attempts": 2, "on": ["connect_error"]}, **NO_BREAKER)},
        [route()],
    ))
    c = KeepAlive(gw.port)
    statuses = [c.request("GET", "/")[0] for _ in range(10)]
    c.close()
    assert statuses == [200] * 10, f"GETs with one refused target and retries: {statuses}"


def test_get_retried_after_503_post_not(start_py_upstream, start_gateway):
    bad, good = start_py_upstream(), start_py_upstream()
    bad.status = 503
    gw = start_gateway(gateway_config(
        {"u": upstream_of(bad.port, good.port, retries={"attempts": 2, "on": ["connect_error", "503"]}, **NO_BREAKER)},
        [route()],
    ))
    statuses = [gw.get(f"/get/{i}").status for i in range(8)]
    assert statuses == [200] * 8, f"GETs should be retried on the other target after a 503: {statuses}"
    assert bad.count() >= 1, "round robin never picked the failing target"
    retried = {r["target"] for r in bad.received()} & {r["target"] for r in good.received()}
    assert retried == {r["target"] for r in bad.received()}, "a GET answered 503 was not tried on the other target"

    bad.reset()
    good.reset()
    statuses = [gw.fetch("POST", f"/post/{i}", body=b"p").status for i in range(8)]
    both = {r["target"] for r in bad.received()} & {r["target"] for r in good.received()}
    assert not both, f"POSTs sent to both targets (retried): {sorted(both)}"
    assert statuses.count(503) == bad.count() >= 1, f"POST statuses {statuses}; the failing target got {bad.count()}"


def test_post_not_retried_after_connect_error(start_server, start_gateway):
    hello = start_server("--workers", "1")
    gw = start_gateway(gateway_config(
        {"u": upstream_of(refused_port(), hello.port, retries={"attempts": 2, "on": ["connect_error"]}, **NO_BREAKER)},
        [route()],
    ))
    statuses = [gw.fetch("POST", "/echo", body=b"x").status for _ in range(6)]
    assert 502 in statuses and 200 in statuses, f"POST statuses with one refused target: {statuses} (no retry: some 502)"


def test_retry_budget_limits_retries(start_py_upstream, start_gateway):
    """budget_ratio 0: only the fixed allowance (at most 10 a second) may be retried, so of 200
    GETs at a failing target with a healthy one beside it, some end as 503."""
    bad, good = start_py_upstream(), start_py_upstream()
    bad.status = 503
    gw = start_gateway(gateway_config(
        {"u": upstream_of(bad.port, good.port,
                          retries={"attempts": 2, "on": ["503"], "budget_ratio": 0.0}, **NO_BREAKER)},
        [route()],
    ))
    c = KeepAlive(gw.port)
    statuses = [c.request("GET", f"/b/{i}")[0] for i in range(200)]
    c.close()
    retried = len({r["target"] for r in bad.received()} & {r["target"] for r in good.received()})
    assert statuses.count(503) > 0, f"all {len(statuses)} GETs were retried despite budget_ratio 0 ({retried} retries)"
