"""Proxying: headers set, kept and removed on the way up and down, request ids and traceparent,
bodies with Content-Length and chunked, 100-continue, keep-alive, the access-log line, and
64 MiB uploads and downloads that stream through in flat gateway memory."""

import hashlib
import json
import os
import re
import threading

import pytest

from gwtest import (
    ACCESS_FIELDS,
    IO_TIMEOUT,
    HttpConn,
    KeepAlive,
    MiB,
    RssSampler,
    chunked,
    gateway_config,
    request,
    seen_headers,
    small_quarantine_env,
    tokens_of,
    upstream_of,
)

BIG = 64 * MiB
RSS_GROWTH_MAX = 32 * MiB  # a 64 MiB body held in memory would exceed this by far
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def proxy_config(py, hello):
    return gateway_config(
        {"py": upstream_of(py.port), "hello": upstream_of(hello.port)},
        [
            {"name": "py", "match": {"path": "/py", "prefix": True}, "upstream": "py", "strip_prefix": "/py"},
            {"name": "hello", "match": {"path": "/h", "prefix": True}, "upstream": "hello",
             "strip_prefix": "/h", "max_body_bytes": 2 * BIG},
        ],
        limits={"max_body_bytes": 2 * BIG},
    )


@pytest.fixture(scope="module")
def px(module_stack):
    py = module_stack.py()
    hello = module_stack.hello("--max-body", str(2 * BIG), "--workers", "1")
    cfg = proxy_config(py, hello)
    gw = module_stack.gateway(cfg)
    return gw, py, hello


def upstream_saw(px, target, headers=(), host="test", method="GET", body=b""):
    gw, py, _ = px
    resp = gw.fetch(method, target, headers, body, host=host)
    assert resp.status == 200, resp
    return resp, seen_headers(resp)


# ---------------------------------------------------------------------------------------------
# Headers
# ---------------------------------------------------------------------------------------------


def test_forwarded_headers_are_set(px):
    _, seen = upstream_saw(px, "/py/x", host="shop.example:8080")
    assert seen.get("x-forwarded-for") == ["127.0.0.1"], seen
    assert seen.get("x-forwarded-proto") == ["http"], seen
    assert seen.get("x-forwarded-host") == ["shop.example:8080"], seen
    assert seen.get("host") == ["shop.example:8080"], seen


def test_forwarded_for_appends_the_peer_and_proto_host_are_not_taken_from_the_client(px):
    _, seen = upstream_saw(
        px, "/py/x", ["X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example"],
        host="shop.example",
    )
    xff = seen.get("x-forwarded-for", [])
    assert len(xff) == 1, f"X-Forwarded-For sent {len(xff)} times: {seen}"
    assert [p.strip() for p in xff[0].split(",")][-1] == "127.0.0.1", seen
    assert seen.get("x-forwarded-proto") == ["http"], f"a client-supplied X-Forwarded-Proto was passed on: {seen}"
    assert seen.get("x-forwarded-host") == ["shop.example"], f"a client-supplied X-Forwarded-Host was passed on: {seen}"


def test_request_id_generated_passed_on_and_returned(px):
    resp1, seen1 = upstream_saw(px, "/py/a")
    resp2, seen2 = upstream_saw(px, "/py/b")
    ids = []
    for resp, seen in ((resp1, seen1), (resp2, seen2)):
        up = seen.get("x-request-id", [])
        assert len(up) == 1 and up[0], f"upstream got X-Request-Id {up}"
        assert resp.header("X-Request-Id") == up[0], f"response X-Request-Id {resp.header('X-Request-Id')!r} != upstream's {up[0]!r}"
        ids.append(up[0])
    assert ids[0] != ids[1], ids


def test_request_id_kept_when_supplied(px):
    resp, seen = upstream_saw(px, "/py/a", ["X-Request-Id: client-id-123"])
    assert seen.get("x-request-id") == ["client-id-123"], seen
    assert resp.header("X-Request-Id") == "client-id-123", resp


def test_traceparent_propagated(px):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    _, seen = upstream_saw(px, "/py/a", [f"traceparent: 00-{trace}-00f067aa0ba902b7-01"])
    tp = seen.get("traceparent", [])
    assert len(tp) == 1, seen
    m = TRACEPARENT.match(tp[0])
    assert m and m.group(1) == trace, f"traceparent {tp[0]!r} does not continue trace {trace}"
    assert m.group(2) != "0" * 16


@pytest.mark.parametrize("supplied", [None, "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"])
def test_traceparent_started_when_absent_or_invalid(px, supplied):
    headers = [] if supplied is None else [f"traceparent: {supplied}"]
    _, seen = upstream_saw(px, "/py/a", headers)
    tp = seen.get("traceparent", [])
    assert len(tp) == 1, f"traceparent sent upstream: {tp} (client sent {supplied!r})"
    m = TRACEPARENT.match(tp[0])
    assert m, f"invalid traceparent upstream: {tp[0]!r} (client sent {supplied!r})"
    assert m.group(1) != "0" * 32 and m.group(2) != "0" * 16, tp[0]
    assert tp[0] != supplied


def test_upstream_host_option(start_gateway, py_upstream):
    gw = start_gateway(gateway_config(
        {"u": upstream_of(py_upstream.port, host="internal.svc")},
        [{"name": "r", "match": {"path": "/", "prefix": True}, "upstream": "u"}],
    ))
    resp = gw.get("/x", host="public.example")
    assert resp.status == 200, resp
    seen = seen_headers(resp)
    assert seen.get("host") == ["internal.svc"], seen
    assert seen.get("x-forwarded-host") == ["public.example"], seen


def test_client_identity_headers_are_stripped(px):
    _, seen = upstream_saw(px, "/py/a", [
        "X-User-Id: admin", "x-user-id: root", "X-User-Roles: admin", "X-Tenant-Id: other",
        "X-User-Email: a@b.c",
    ])
    leaked = {k: v for k, v in seen.items() if k.startswith("x-user-") or k == "x-tenant-id"}
    assert not leaked, f"client-supplied identity headers reached the upstream: {leaked}"


def test_hop_by_hop_request_headers_are_removed(px):
    _, seen = upstream_saw(px, "/py/a", [
        "Connection: keep-alive, X-Hop", "X-Hop: 1", "Keep-Alive: timeout=5", "Proxy-Authorization: Basic eDp5",
        "TE: trailers", "Proxy-Connection: keep-alive", "X-End-To-End: 1",
    ])
    for name in ("x-hop", "keep-alive", "proxy-authorization", "te", "proxy-connection"):
        assert name not in seen, f"hop-by-hop {name} reached the upstream: {seen}"
    assert "x-hop" not in tokens_of(",".join(seen.get("connection", []))), seen
    assert seen.get("x-end-to-end") == ["1"], seen


def test_hop_by_hop_response_headers_are_removed(px):
    gw, _, _ = px
    resp = gw.get("/py/hop")
    assert resp.status == 200, resp
    names = {n.lower() for n, _ in resp.headers}
    assert "x-up-hop" not in names and "keep-alive" not in names, resp.headers
    assert "x-up-hop" not in tokens_of(",".join(resp.all("Connection"))), resp.headers
    assert resp.header("X-Up-Plain") == "kept", resp.headers


def test_upstream_status_and_body_pass_through(px):
    gw, py, _ = px
    for status in (201, 404, 418):
        resp = gw.get(f"/py/status/{status}")
        assert resp.status == status, resp
        assert resp.json()["port"] == py.port, resp


# ---------------------------------------------------------------------------------------------
# Bodies and connections
# ---------------------------------------------------------------------------------------------


def test_content_length_body_reaches_the_upstream(px):
    body = os.urandom(100_000)
    resp, _ = upstream_saw(px, "/py/post", method="POST", body=body)
    doc = resp.json()
    assert doc["body_len"] == len(body) and doc["body_sha256"] == hashlib.sha256(body).hexdigest(), doc


def test_chunked_body_reaches_the_upstream(px):
    gw, _, _ = px
    pieces = [os.urandom(n) for n in (1, 1000, 65536, 3)]
    with HttpConn(gw.port) as conn:
        conn.send(request("POST", "/py/chunked", ["Transfer-Encoding: chunked"]) + chunked(pieces))
        resp = conn.read_response("POST")
    assert resp.status == 200, resp
    whole = b"".join(pieces)
    doc = resp.json()
    assert doc["body_len"] == len(whole) and doc["body_sha256"] == hashlib.sha256(whole).hexdigest(), doc


def test_chunked_echo_through_to_hello(px):
    gw, _, _ = px
    pieces = [b"a" * 10, b"b" * 70000, b"c"]
    with HttpConn(gw.port) as conn:
        conn.send(request("POST", "/h/echo", ["Transfer-Encoding: chunked", "Content-Type: text/x-t"]) + chunked(pieces))
        resp = conn.read_response("POST")
    assert resp.status == 200, resp
    assert resp.body == b"".join(pieces)
    assert resp.header("Content-Type") == "text/x-t", resp


def test_expect_100_continue_through_the_gateway(px):
    gw, _, _ = px
    body = b"z" * 5000
    with HttpConn(gw.port, timeout=10) as conn:
        conn.send(request("POST", "/h/echo", ["Expect: 100-continue", f"Content-Length: {len(body)}"]))
        first = conn.read_head()
        assert first.status == 100, f"expected 100 Continue before the body, got {first!r}"
        conn.send(body)
        resp = conn.read_response("POST")
    assert resp.status == 200 and resp.body == body, resp


def test_keep_alive_many_requests_one_connection(px):
    gw, py, _ = px
    with HttpConn(gw.port) as conn:
        for i in range(20):
            if i % 2:
                conn.send(request("GET", "/h/"))
                assert conn.read_response().body == b'{"hello":"world"}'
            else:
                conn.send(request("POST", f"/py/k{i}", body=b"x" * i))
                resp = conn.read_response("POST")
                assert resp.status == 200 and resp.json()["body_len"] == i, resp


def test_upstream_connections_are_kept_alive_and_reused(px):
    gw, py, _ = px
    before = py.connections
    c = KeepAlive(gw.port)
    for i in range(20):
        assert c.request("GET", f"/py/reuse/{i}")[0] == 200
    c.close()
    for i in range(10):
        assert gw.get(f"/py/fresh/{i}").status == 200
    assert py.connections - before <= 1, f"{py.connections - before} upstream connections for 30 sequential requests"


def test_pipelined_requests_answered_in_order(px):
    gw, py, _ = px
    with HttpConn(gw.port) as conn:
        conn.send(request("GET", "/py/delay/300") + request("GET", "/py/one") + request("GET", "/h/bytes/10"))
        first, second, third = conn.read_response(), conn.read_response(), conn.read_response()
    assert first.status == 200 and first.json()["target"] == "/delay/300", first
    assert second.status == 200 and second.json()["target"] == "/one", second
    assert third.status == 200 and third.body_len == 10, third


def test_http_1_0_request(px):
    gw, _, _ = px
    with HttpConn(gw.port) as conn:
        conn.send(b"GET /h/ HTTP/1.0\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b'{"hello":"world"}', resp
        assert resp.header("Transfer-Encoding") is None, f"chunked sent to an HTTP/1.0 client: {resp!r}"
        conn.assert_closed()


def test_head_through_the_gateway(px):
    gw, _, _ = px
    resp = gw.fetch("HEAD", "/h/bytes/1000")
    assert resp.status == 200 and resp.header("Content-Length") == "1000" and resp.body == b"", resp


def test_access_log_line(px):
    gw, py, _ = px
    rid = "access-log-test-1"
    resp = gw.fetch("POST", "/py/logged?x=1", [f"X-Request-Id: {rid}"], b"12345")
    assert resp.status == 200, resp
    [rec] = gw.wait_access(lambda r: r.get("request_id") == rid)
    missing = [f for f in ACCESS_FIELDS if f not in rec]
    assert not missing, f"access-log line lacks {missing}: {rec}"
    assert rec["method"] == "POST" and rec["status"] == 200 and rec["route"] == "py", rec
    assert rec["path"] in ("/py/logged", "/py/logged?x=1"), rec
    assert rec["client_ip"] == "127.0.0.1", rec
    assert str(py.port) in str(rec["upstream"]), f"upstream field {rec['upstream']!r} does not name the target"
    assert rec["bytes_in"] >= 5 and rec["bytes_out"] >= len(resp.body), rec
    assert rec["user_id"] in (None, ""), rec
    assert isinstance(rec["duration_ms"], (int, float)) and isinstance(rec["upstream_ms"], (int, float)), rec


def test_access_log_stays_valid_json_with_hostile_values(px):
    gw, py, _ = px
    hostile_ids = ['quote"back\\slash', "x" * 2000, "tab\there", "\u00e9t\u00e9".encode().decode("latin-1")]
    for rid in hostile_ids:
        with HttpConn(gw.port) as conn:
            conn.send(f"GET /py/log HTTP/1.1\r\nHost: test\r\nX-Request-Id: {rid}\r\n\r\n".encode("latin-1"))
            resp = conn.read_response()
        if resp.status == 200:
            sent_up = seen_headers(resp).get("x-request-id")
            assert sent_up == [resp.header("X-Request-Id")], (rid[:50], sent_up, resp.header("X-Request-Id"))
    with HttpConn(gw.port) as conn:
        conn.send(b"GET /py/caf\xc3\xa9/%22 HTTP/1.1\r\nHost: test\r\n\r\n")
        conn.read_response()
    gw.wait_access(lambda r: r.get("path") == "/py/log", count=len(hostile_ids))
    bad = []
    for line in gw.stdout().splitlines():
        try:
            json.loads(line)
        except ValueError:
            bad.append(line[:300])
    assert not bad, f"log lines that are not JSON: {bad}"


def test_access_log_line_for_a_gateway_refusal(px):
    gw, _, _ = px
    rid = "access-log-404"
    assert gw.get("/nowhere", [f"X-Request-Id: {rid}"]).status == 404
    [rec] = gw.wait_access(lambda r: r.get("request_id") == rid)
    assert rec["status"] == 404 and rec["method"] == "GET", rec


# ---------------------------------------------------------------------------------------------
# Streaming in flat memory
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stream_px(module_stack, px):
    """A gateway of its own for the memory checks, with ASan's quarantine kept small."""
    _, py, hello = px
    return module_stack.gateway(proxy_config(py, hello), env=small_quarantine_env()), py, hello


def test_download_64_MiB_streams_in_flat_memory(stream_px):
    gw, _, _ = stream_px
    with HttpConn(gw.port) as conn:
        conn.send(request("GET", "/h/bytes/1000000"))
        assert conn.read_response().body_len == 1000000
        baseline = gw.rss_bytes()
        sampler = RssSampler(gw)
        sampler.start()
        try:
            conn.send(request("GET", f"/h/bytes/{BIG}"))
            resp = conn.read_response(sink=lambda d: None)
        finally:
            peak = sampler.stop()
    assert resp.status == 200 and resp.body_len == BIG, resp
    growth = peak - baseline
    assert growth < RSS_GROWTH_MAX, f"gateway RSS grew by {growth / MiB:.1f} MiB for a {BIG // MiB} MiB download"


class Uploader(threading.Thread):
    def __init__(self, conn, total, chunked_coding):
        super().__init__(daemon=True)
        self.conn, self.total, self.chunked_coding = conn, total, chunked_coding
        self.digest = hashlib.sha256()
        self.error = None

    def run(self):
        try:
            block = os.urandom(MiB)
            if self.chunked_coding:
                self.conn.send(request("POST", "/h/echo", ["Transfer-Encoding: chunked"]))
            else:
                self.conn.send(request("POST", "/h/echo", [f"Content-Length: {self.total}"]))
            sent, k = 0, 0
            while sent < self.total:
                n = min((65536, 1000, 262144, 33333)[k % 4], self.total - sent)
                off = (k * 7919) % (len(block) - n)
                piece = block[off: off + n]
                self.conn.send((b"%x\r\n" % n + piece + b"\r\n") if self.chunked_coding else piece)
                self.digest.update(piece)
                sent += n
                k += 1
            if self.chunked_coding:
                self.conn.send(b"0\r\n\r\n")
        except BaseException as e:
            self.error = e


@pytest.mark.parametrize("chunked_coding", [True, False], ids=["chunked", "content-length"])
def test_upload_64_MiB_echo_streams_in_flat_memory(stream_px, chunked_coding):
    gw, _, _ = stream_px
    with HttpConn(gw.port) as conn:
        conn.send(request("POST", "/h/echo", body=b"w" * 300000))
        assert conn.read_response("POST").body_len == 300000
        baseline = gw.rss_bytes()
        sampler = RssSampler(gw)
        sampler.start()
        up = Uploader(conn, BIG, chunked_coding)
        up.start()
        received = hashlib.sha256()
        try:
            resp = conn.read_response("POST", sink=received.update)
        finally:
            up.join(IO_TIMEOUT)
            peak = sampler.stop()
    assert up.error is None, f"upload failed: {up.error!r}"
    assert resp.status == 200 and resp.body_len == BIG, resp
    assert received.hexdigest() == up.digest.hexdigest(), "the echoed bytes differ from the sent ones"
    growth = peak - baseline
    assert growth < RSS_GROWTH_MAX, f"gateway RSS grew by {growth / MiB:.1f} MiB for a {BIG // MiB} MiB upload"
