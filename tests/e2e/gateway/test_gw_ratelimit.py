"""Rate limits: the memory store (one budget per gateway, across its workers), keys ip / header /
route / user, 429 with Retry-After and RateLimit-* headers; the Redis store shared by two
gateways (100/s for 10 s admits 1,000 +- 5 %); Redis stopped or hung -> fail-open (default) or
fail-closed, and never a hang."""

import threading
import time

from gwtest import (
    MINT_ISSUER,
    KeepAlive,
    gateway_config,
    upstream_of,
    wait_until,
)

# Per minute, so that no token comes back while a test runs: the counts are exact.
SLOW = {"rate": 5, "per": "1m", "burst": 5}
REQUEST_BOUND = 5.0  # seconds a single request may take when Redis is down or hung (a bounded wait)


def rl_gateway(start_gateway, up, rate_limit, routes_extra=None, workers=2, **top):
    route = {"name": "rl", "match": {"path": "/", "prefix": True}, "upstream": "u", "rate_limit": rate_limit}
    if routes_extra:
        route.update(routes_extra)
    return start_gateway(gateway_config({"u": upstream_of(up.port)}, [route], workers=workers, **top))


def statuses(gw, n, headers=None, source=None, target="/"):
    out = []
    for _ in range(n):
        c = KeepAlive(gw.port, timeout=REQUEST_BOUND, source=source)  # a new connection each time
        out.append(c.request("GET", target, headers=headers or {}))
        c.close()
    return out


def check_429(status, headers, body, limit=None):
    assert status == 429, status
    h = {k.lower(): v for k, v in headers}
    assert h.get("content-type") == "application/problem+json", headers
    ra = h.get("retry-after", "")
    assert ra.isdigit() and int(ra) >= 1, f"Retry-After {ra!r}"
    rl = {k: v for k, v in h.items() if k.startswith("ratelimit")}
    assert rl, f"no RateLimit-* header on the 429: {headers}"
    if "ratelimit-remaining" in rl:
        assert rl["ratelimit-remaining"] == "0", rl
    if limit is not None and "ratelimit-limit" in rl:
        assert rl["ratelimit-limit"].split(",")[0].strip() == str(limit), rl


def test_memory_limit_429_with_headers_across_workers(start_gateway, py_upstream):
    gw = rl_gateway(start_gateway, py_upstream, {"key": "ip", **SLOW})
    got = statuses(gw, 9)
    codes = [s for s, _, _ in got]
    assert codes == [200] * 5 + [429] * 4, f"rate 5 per minute, 9 requests on new connections (2 workers): {codes}"
    for s, h, b in got[5:]:
        check_429(s, h, b, limit=5)
    assert py_upstream.count() == 5


def test_ip_key_separates_clients_and_ignores_x_forwarded_for(start_gateway, py_upstream):
    gw = rl_gateway(start_gateway, py_upstream, {"key": "ip", **SLOW})
    assert [s for s, _, _ in statuses(gw, 6)] == [200] * 5 + [429]
    spoof = [s for s, _, _ in statuses(gw, 3, headers={"X-Forwarded-For": "198.51.100.7"})]
    assert spoof == [429] * 3, f"X-Forwarded-For changed the client's bucket: {spoof}"
    other = [s for s, _, _ in statuses(gw, 6, source="127.0.0.2")]
    assert other == [200] * 5 + [429], f"a client from 127.0.0.2 shares 127.0.0.1's bucket: {other}"


def test_header_key(start_gateway, py_upstream):
    gw = rl_gateway(start_gateway, py_upstream, {"key": "header:X-Api-Key", **SLOW})
    a = [s for s, _, _ in statuses(gw, 6, headers={"X-Api-Key": "a"})]
    b = [s for s, _, _ in statuses(gw, 2, headers={"X-Api-Key": "b"})]
    assert a == [200] * 5 + [429] and b == [200, 200], (a, b)


def test_route_key_is_shared_by_all_clients(start_gateway, py_upstream):
    gw = rl_gateway(start_gateway, py_upstream, {"key": "route", **SLOW})
    first = [s for s, _, _ in statuses(gw, 3)]
    second = [s for s, _, _ in statuses(gw, 3, source="127.0.0.3")]
    assert first + second == [200] * 5 + [429], (first, second)


def test_user_key(start_gateway, py_upstream, minter):
    gw = rl_gateway(
        start_gateway, py_upstream, {"key": "user", **SLOW}, {"auth": "required"},
        auth={"issuers": [{"issuer": MINT_ISSUER, "jwks_file": minter.jwks_path, "audiences": ["agora"],
                           "algorithms": ["ES256"]}]},
    )
    t_alice, t_bob = minter.token(sub="alice"), minter.token(sub="bob")
    a = [s for s, _, _ in statuses(gw, 6, headers={"Authorization": f"Bearer {t_alice}"})]
    b = [s for s, _, _ in statuses(gw, 2, headers={"Authorization": f"Bearer {t_bob}"})]
    assert a == [200] * 5 + [429] and b == [200, 200], (a, b)


# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------


RATE, BURST, SECONDS = 100, 10, 10.0


def test_redis_shared_budget_two_gateways(start_gateway, start_server, redis_server):
    """Two gateways, one Redis, 100/s (burst 10) on one route: 10 s of load from 4 clients (2 per
    gateway, far above the limit) admits burst + 100 x elapsed, +- 5 % of 1,000."""
    redis_server.flush()
    hello = start_server("--workers", "1")
    rl = {"key": "route", "rate": RATE, "per": "1s", "burst": BURST}
    gws = [
        start_gateway(gateway_config(
            {"u": upstream_of(hello.port)},
            [{"name": "shared", "match": {"path": "/", "prefix": True}, "upstream": "u", "rate_limit": rl}],
            rate_limit_store=redis_server.url, access_log="off",
        ))
        for _ in range(2)
    ]
    counts = {}
    errors = []
    lock = threading.Lock()
    start_evt = threading.Event()
    t_first, t_last = [], []

    def client(i, gw):
        c = KeepAlive(gw.port, timeout=REQUEST_BOUND)
        ok = total = 0
        start_evt.wait()
        end = time.monotonic() + SECONDS
        try:
            with lock:
                t_first.append(time.monotonic())
            while time.monotonic() < end:
                status, _, _ = c.request("GET", "/")
                total += 1
                if status == 200:
                    ok += 1
                elif status != 429:
                    errors.append(status)
            with lock:
                t_last.append(time.monotonic())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            c.close()
            counts[i] = (ok, total)

    threads = [threading.Thread(target=client, args=(i, gws[i % 2])) for i in range(4)]
    for t in threads:
        t.start()
    start_evt.set()
    for t in threads:
        t.join(SECONDS + 30)
    assert not errors, f"errors under load: {errors[:10]}"
    elapsed = max(t_last) - min(t_first)
    admitted = sum(ok for ok, _ in counts.values())
    total = sum(t for _, t in counts.values())
    expected = BURST + RATE * elapsed
    per_gw = [counts[0][0] + counts[2][0], counts[1][0] + counts[3][0]]
    assert total > 2 * admitted, f"the load ({total} requests) did not exceed the limit"
    assert abs(admitted - expected) <= 0.05 * RATE * SECONDS, (
        f"admitted {admitted} in {elapsed:.2f} s (expected {expected:.0f} +- 5 %); per gateway {per_gw}; {total} requests"
    )
    assert min(per_gw) > 0, per_gw


def redis_gateway(start_gateway, up, redis, **top):
    return start_gateway(gateway_config(
        {"u": upstream_of(up.port)},
        [{"name": "rl", "match": {"path": "/", "prefix": True}, "upstream": "u",
          "rate_limit": {"key": "route", "rate": 1, "per": "1m", "burst": 1}}],
        rate_limit_store=redis.url, **top,
    ))


def test_redis_down_fails_open_and_recovers(start_gateway, py_upstream, start_redis):
    r = start_redis()
    gw = redis_gateway(start_gateway, py_upstream, r)
    assert [s for s, _, _ in statuses(gw, 2)] == [200, 429]
    r.stop()
    down = [s for s, _, _ in statuses(gw, 4)]
    assert down == [200] * 4, f"rate_limit_fail open (default) with Redis stopped: {down}"
    r.start()

    def limited_again():
        return statuses(gw, 1)[0][0] == 429

    wait_until(limited_again, 15, interval=0.3, what="429 again once Redis is back")


def test_redis_hung_fails_open_without_hanging(start_gateway, py_upstream, start_redis):
    r = start_redis()
    gw = redis_gateway(start_gateway, py_upstream, r, rate_limit_timeout_ms=100)
    assert [s for s, _, _ in statuses(gw, 2)] == [200, 429]
    r.pause()
    try:
        hung = [s for s, _, _ in statuses(gw, 4)]  # each bounded by REQUEST_BOUND
    finally:
        r.resume()
    assert hung == [200] * 4, f"Redis not answering, fail-open: {hung}"


def test_redis_down_fails_closed(start_gateway, py_upstream, start_redis):
    r = start_redis()
    gw = redis_gateway(start_gateway, py_upstream, r, rate_limit_fail="closed")
    assert statuses(gw, 1)[0][0] == 200
    r.stop()
    before = py_upstream.count()
    down = statuses(gw, 3)
    assert [s for s, _, _ in down] == [429] * 3, f"rate_limit_fail closed with Redis stopped: {[s for s, _, _ in down]}"
    assert py_upstream.count() == before


def test_redis_hung_fails_closed_without_hanging(start_gateway, py_upstream, start_redis):
    r = start_redis()
    gw = redis_gateway(start_gateway, py_upstream, r, rate_limit_fail="closed", rate_limit_timeout_ms=100)
    assert statuses(gw, 1)[0][0] == 200
    r.pause()
    try:
        hung = [s for s, _, _ in statuses(gw, 3)]
    finally:
        r.resume()
    assert hung == [429] * 3, f"Redis not answering, fail-closed: {hung}"
