"""Reload (SIGHUP and POST /reload): zero failed requests under load, in-flight requests finish
on the old configuration, a failed reload keeps the old one serving and says why; SIGTERM
drains in-flight requests and exits 0."""

import json
import threading
import time

from gwtest import (
    HttpConn,
    KeepAlive,
    gateway_config,
    request,
    to_yaml,
    upstream_of,
    wait_until,
)


def config_with(hello_port, extra_routes=(), py_port=None, **top):
    ups = {"h": upstream_of(hello_port)}
    if py_port:
        ups["p"] = upstream_of(py_port)
    routes = [{"name": "a", "match": {"path": "/a", "prefix": True}, "upstream": "h", "strip_prefix": "/a"}]
    routes += list(extra_routes)
    return gateway_config(ups, routes, workers=2, **top)


ROUTE_B = {"name": "b", "match": {"path": "/b", "prefix": True}, "upstream": "h", "strip_prefix": "/b"}


def generation(gw):
    """The newest configuration generation in the log ("serving" at start, then one line a reload)."""
    gens = [r.get("generation") for r in gw.log_records() if r.get("msg") in ("serving", "configuration reloaded")]
    return max([g for g in gens if isinstance(g, int)] or [0])


class Hammer:
    """Client threads sending GET /a until stopped; every answer must be a 200 with hello's body."""

    def __init__(self, port, keepalive=2, fresh=1):
        self.port = port
        self.stop_evt = threading.Event()
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, args=(True,), daemon=True) for _ in range(keepalive)]
        self.threads += [threading.Thread(target=self._loop, args=(False,), daemon=True) for _ in range(fresh)]
        for t in self.threads:
            t.start()

    def _loop(self, keep):
        c = KeepAlive(self.port)
        while not self.stop_evt.is_set():
            try:
                status, _, body = c.request("GET", "/a/")
                with self.lock:
                    if status == 200 and body == b'{"hello":"world"}':
                        self.ok += 1
                    else:
                        self.failures.append((status, body[:200]))
            except Exception as e:  # noqa: BLE001 - every failure is reported
                with self.lock:
                    self.failures.append(repr(e))
                c.close()
            if not keep:
                c.close()
        c.close()

    def stop(self):
        self.stop_evt.set()
        for t in self.threads:
            t.join(30)


def test_reload_under_load_has_zero_failed_requests(start_server, start_gateway):
    hello = start_server("--workers", "1")
    gw = start_gateway(config_with(hello.port))
    g0 = generation(gw)
    hammer = Hammer(gw.port)
    try:
        wait_until(lambda: hammer.ok > 50, 20, what="the load to start")
        for i in range(5):
            gw.reload_signal()
            wait_until(lambda: generation(gw) >= g0 + i + 1, 20, what=f"reload {i + 1} by SIGHUP")
            time.sleep(0.1)
        gw.write_config(config_with(hello.port, [ROUTE_B]))
        resp = gw.admin("POST", "/reload")
        assert resp.status == 200, resp
        assert resp.header("Content-Type").startswith("application/json"), resp
        json.loads(resp.body)
        assert gw.get("/b/").status == 200
        before = hammer.ok
        wait_until(lambda: hammer.ok > before + 50, 20, what="more load after the reloads")
    finally:
        hammer.stop()
    total = hammer.ok + len(hammer.failures)
    assert not hammer.failures, f"{len(hammer.failures)} of {total} requests failed during reloads: {hammer.failures[:5]}"
    assert generation(gw) >= g0 + 6


def test_post_reload_changes_routes(start_server, start_gateway):
    hello = start_server("--workers", "1")
    gw = start_gateway(config_with(hello.port))
    assert gw.get("/b/").status == 404
    gw.write_config(config_with(hello.port, [ROUTE_B]))
    resp = gw.admin("POST", "/reload")
    assert resp.status == 200, resp
    assert gw.get("/b/").status == 200
    assert '"b"' in gw.admin("GET", "/routes").body.decode()
    # and back
    gw.write_config(config_with(hello.port))
    assert gw.admin("POST", "/reload").status == 200
    assert gw.get("/b/").status == 404


def test_failed_reload_keeps_the_old_configuration(start_server, start_gateway):
    hello = start_server("--workers", "1")
    good = config_with(hello.port)
    gw = start_gateway(good)
    g0 = generation(gw)
    text = to_yaml(config_with(hello.port, [dict(ROUTE_B, upstream="missing")])) + "\n"
    line = next(i + 1 for i, l in enumerate(text.split("\n")) if '"missing"' in l)
    gw.write_config(text)
    resp = gw.admin("POST", "/reload")
    assert resp.status in (400, 422), resp
    assert resp.header("Content-Type") == "application/problem+json", resp
    detail = resp.body.decode()
    assert f"{gw.config_path}:{line}:" in detail and "routes[1].upstream" in detail, (
        f"the reload error does not say file:line: key: {detail}"
    )
    assert gw.get("/a/").status == 200
    assert gw.get("/b/").status == 404
    assert generation(gw) == g0

    # SIGHUP with the same bad file: still alive, still serving the old configuration
    gw.reload_signal()
    wait_until(lambda: "routes[1].upstream" in gw.stdout() + gw.stderr() and
               (gw.stdout() + gw.stderr()).count("routes[1].upstream") >= 2, 10,
               what="the failed SIGHUP reload to be logged")
    assert gw.alive()
    assert gw.get("/a/").status == 200 and gw.get("/b/").status == 404

    gw.write_config(config_with(hello.port, [ROUTE_B]))
    assert gw.admin("POST", "/reload").status == 200
    assert gw.get("/b/").status == 200


def test_unparsable_reload_keeps_the_old_configuration(start_server, start_gateway):
    hello = start_server("--workers", "1")
    gw = start_gateway(config_with(hello.port))
    gw.write_config("routes: [\n")
    resp = gw.admin("POST", "/reload")
    assert resp.status in (400, 422), resp
    assert gw.config_path in resp.body.decode(), resp
    assert gw.get("/a/").status == 200


def test_in_flight_request_finishes_on_the_old_configuration(start_server, start_py_upstream, start_gateway):
    hello = start_server("--workers", "1")
    old, new = start_py_upstream(), start_py_upstream()
    route_c = {"name": "c", "match": {"path": "/c", "prefix": True}, "upstream": "c"}

    def cfg(port):
        c = config_with(hello.port, [route_c])
        c["upstreams"]["c"] = upstream_of(port)
        return c

    gw = start_gateway(cfg(old.port))
    slow = HttpConn(gw.port)
    try:
        slow.send(request("GET", "/c/delay/1500"))
        wait_until(lambda: old.count() == 1, 10, what="the slow request at the old upstream")
        gw.write_config(cfg(new.port))
        assert gw.admin("POST", "/reload").status == 200
        fresh = gw.get("/c/now")
        assert fresh.status == 200 and fresh.json()["port"] == new.port, fresh
        resp = slow.read_response()
        assert resp.status == 200 and resp.json()["port"] == old.port, resp
    finally:
        slow.close()


def test_sigterm_drains_in_flight_requests(start_server, start_gateway):
    hello = start_server("--workers", "1")
    gw = start_gateway(config_with(hello.port))
    conns = [HttpConn(gw.port) for _ in range(5)]
    try:
        for c in conns:
            c.send(request("GET", "/a/delay/800"))
        time.sleep(0.2)
        gw.terminate()
        for c in conns:
            resp = c.read_response()
            assert resp.status == 200, resp
        assert gw.wait() == 0
    finally:
        for c in conns:
            c.close()
