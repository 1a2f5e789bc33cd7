"""Balancing and health: weights (1 vs 9 over 10,000 requests), least_conn, active checks that
eject and return a target, passive ejection after consecutive 5xx, 503 with no healthy target.

Which target served a request is read from the access log's `upstream` field (for agora-hello
targets) or from the PyUpstream's own records."""

import re

import pytest

from gwtest import HttpConn, KeepAlive, assert_problem, gateway_config, request, upstream_of, wait_until

N_WEIGHTS = 10_000


def served_ports(gw, ports, count):
    """The target port of each of the last `count` access-log lines (fails if a line names none)."""
    recs = gw.wait_access(lambda r: True, count=count, timeout=30)
    out = []
    for r in recs[-count:]:
        hits = [p for p in ports if re.search(rf"(^|\D){p}(\D|$)", str(r.get("upstream")))]
        assert len(hits) == 1, f"access-log upstream {r.get('upstream')!r} names none of the targets {ports}"
        out.append(hits[0])
    return out


@pytest.mark.parametrize("balance", ["round_robin", "random", "least_conn"])
def test_weights_1_to_9_over_10000_requests(start_server, start_gateway, balance):
    canary, main = start_server("--workers", "1"), start_server("--workers", "1")
    gw = start_gateway(gateway_config(
        {"u": upstream_of((canary.port, 1), (main.port, 9), balance=balance)},
        [{"name": "all", "match": {"path": "/", "prefix": True}, "upstream": "u"}],
    ))
    c = KeepAlive(gw.port)
    for _ in range(N_WEIGHTS):
        status, _, body = c.request("GET", "/")
        assert status == 200, (status, body)
    c.close()
    ports = served_ports(gw, [canary.port, main.port], N_WEIGHTS)
    share = ports.count(canary.port) / N_WEIGHTS
    assert 0.08 <= share <= 0.12, f"{balance}: the weight-1 canary got {share:.1%} of {N_WEIGHTS} requests (expected 10 % ± 2 %)"


def test_least_conn_avoids_the_busy_target(start_py_upstream, start_gateway):
    """One slow request holds a connection on one target; every fast request sent meanwhile,
    one after the other, must go to the other target (round robin would alternate)."""
    a, b = start_py_upstream(), start_py_upstream()
    gw = start_gateway(gateway_config(
        {"u": upstream_of(a.port, b.port, balance="least_conn")},
        [{"name": "all", "match": {"path": "/", "prefix": True}, "upstream": "u"}],
    ))
    slow = HttpConn(gw.port)
    try:
        slow.send(request("GET", "/delay/2000"))
        busy = wait_until(lambda: a if a.count() else (b if b.count() else None), 10, what="the slow request at a target")
        idle = b if busy is a else a
        c = KeepAlive(gw.port)
        for i in range(10):
            status, _, body = c.request("GET", f"/fast/{i}")
            assert status == 200, (status, body)
        c.close()
        assert slow.read_response().status == 200
    finally:
        slow.close()
    on_busy = [r["target"] for r in busy.received() if r["target"].startswith("/fast/")]
    assert not on_busy, f"least_conn sent {len(on_busy)} of 10 requests to the target busy with /delay: {on_busy}"
    assert idle.count() == 10


def health_conf(**over):
    h = {"path": "/healthz", "interval_ms": 200, "timeout_ms": 500, "unhealthy_after": 2, "healthy_after": 2}
    h.update(over)
    return h


QUIET = {"passive": {"consecutive_failures": 0}, "breaker": {"enabled": False}, "retries": {"attempts": 1}}


def burst(gw, n, target="/"):
    c = KeepAlive(gw.port)
    out = [c.request("GET", target) for _ in range(n)]
    c.close()
    return out


def test_active_health_ejects_and_returns_a_target(start_server, start_py_upstream, start_gateway):
    a = start_py_upstream()
    b = start_server("--workers", "1")
    gw = start_gateway(gateway_config(
        {"u": upstream_of(a.port, b.port, health=health_conf(), **QUIET)},
        [{"name": "all", "match": {"path": "/", "prefix": True}, "upstream": "u"}],
    ))
    wait_until(lambda: a.count(include_health=True) > a.count(), 10, what="a health check on the PyUpstream")
    burst(gw, 10)
    assert a.count() > 0, "the healthy PyUpstream target got none of 10 requests"

    a.status = 503  # its health checks fail too

    def ejected():
        before = a.count()
        burst(gw, 10)
        return a.count() == before

    wait_until(ejected, 15, interval=0.1, what="ejection of the failing target by active checks")
    results = burst(gw, 30)
    assert all(s == 200 for s, _, _ in results), [s for s, _, _ in results]
    healthy_lines = [l for l in gw.metrics().splitlines()
                     if l.startswith("agora_gateway_upstream_healthy") and f"127.0.0.1:{a.port}" in l]
    assert healthy_lines and healthy_lines[0].split()[-1] == "0", f"health gauge of the ejected target: {healthy_lines}"

    a.status = None

    def returned():
        before = a.count()
        burst(gw, 10)
        return a.count() > before

    wait_until(returned, 15, interval=0.1, what="return of the target once its checks pass")


def test_no_healthy_target_is_503_problem(start_py_upstream, start_gateway):
    a = start_py_upstream()
    a.health_status = 503  # only its health checks fail; requests would be answered 200
    gw = start_gateway(gateway_config(
        {"u": upstream_of(a.port, health=health_conf(), **QUIET)},
        [{"name": "all", "match": {"path": "/", "prefix": True}, "upstream": "u"}],
    ))
    wait_until(lambda: a.count(include_health=True) - a.count() >= 3, 10, what="three health checks")

    def refused():
        return gw.get("/x").status == 503

    wait_until(refused, 10, interval=0.1, what="503 once the only target is unhealthy")
    before = a.count()
    resp = gw.get("/y")
    doc = assert_problem(resp, 503)
    assert a.count() == before, "a request reached a target marked unhealthy"
    rid = resp.header("X-Request-Id")
    assert rid and rid in resp.body.decode(), f"the problem does not carry the request id: {resp!r} {doc}"


def test_passive_ejection_after_consecutive_5xx_and_return(start_server, start_py_upstream, start_gateway):
    a = start_py_upstream()
    b = start_server("--workers", "1")
    a.status = 500
    gw = start_gateway(gateway_config(
        {"u": upstream_of(a.port, b.port, passive={"consecutive_failures": 3, "eject_ms": 1500},
                          breaker={"enabled": False}, retries={"attempts": 1})},
        [{"name": "all", "match": {"path": "/", "prefix": True}, "upstream": "u"}],
    ))
    statuses = [s for s, _, _ in burst(gw, 10)]
    assert a.count() == 3, f"the 5xx target got {a.count()} of 10 requests (passive ejection after 3): {statuses}"
    results = [s for s, _, _ in burst(gw, 20)]
    assert a.count() == 3 and all(s == 200 for s in results), (a.count(), results)
    a.status = None

    def returned():
        before = a.count()
        burst(gw, 4)
        return a.count() > before

    wait_until(returned, 15, interval=0.2, what="return of the ejected target after eject_ms")
