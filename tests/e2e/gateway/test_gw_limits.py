"""Request limits at the gateway: 413 (route and global body limits, Content-Length and chunked),
414, 431 (bytes and count), and slow clients (header and body timeouts, slowloris). None of
these requests may reach the upstream whole."""

import pytest

from gwtest import CLOSE_TIMEOUT, HttpConn, assert_problem, chunked, gateway_config, request, send_body_request, upstream_of


@pytest.fixture(scope="module")
def lim(module_stack):
    py = module_stack.py()
    cfg = gateway_config(
        {"py": upstream_of(py.port)},
        [
            {"name": "small", "match": {"path": "/small", "prefix": True}, "upstream": "py", "max_body_bytes": 1024},
            {"name": "other", "match": {"path": "/", "prefix": True}, "upstream": "py"},
        ],
        limits={"max_body_bytes": 4096, "max_header_bytes": 4096, "max_headers": 30, "max_request_line": 2048,
                "header_timeout_ms": 500, "body_timeout_ms": 500},
    )
    gw = module_stack.gateway(cfg)
    return gw, py


def refused_before_upstream(lim, data, status, method="GET"):
    gw, py = lim
    before = py.count()
    with HttpConn(gw.port) as conn:
        conn.send(data)
        resp = conn.read_response(method)
    doc = assert_problem(resp, status)
    assert py.count() == before, f"the refused request reached the upstream: {py.received()[before:]}"
    return resp, doc


def test_body_over_route_limit_is_413(lim):
    refused_before_upstream(lim, request("POST", "/small", body=b"x" * 1025), 413, "POST")


def test_body_at_route_limit_passes(lim):
    gw, py = lim
    resp = gw.fetch("POST", "/small", body=b"x" * 1024)
    assert resp.status == 200 and resp.json()["body_len"] == 1024, resp


def test_body_over_global_limit_is_413(lim):
    refused_before_upstream(lim, request("POST", "/big", body=b"y" * 4097), 413, "POST")


def test_declared_length_over_limit_is_413_before_the_body(lim):
    gw, py = lim
    before = py.count()
    with HttpConn(gw.port) as conn:
        conn.send(request("POST", "/small", ["Content-Length: 1000000000"]))
        resp = conn.read_response("POST")
    assert_problem(resp, 413)
    assert py.count() == before


def test_chunked_body_growing_past_the_limit_is_413(lim):
    gw, py = lim
    before = py.count()
    with HttpConn(gw.port) as conn:
        conn.send(request("POST", "/small/chunked", ["Transfer-Encoding: chunked"]))
        try:
            conn.send(chunked([b"a" * 600, b"b" * 600, b"c" * 600]))
        except OSError:
            pass  # the gateway may refuse and close before reading it all
        resp = conn.read_response("POST")
    assert_problem(resp, 413)
    assert py.count() == before, f"an over-limit chunked body reached the upstream whole: {py.received()[before:]}"


def test_long_request_line_is_414(lim):
    refused_before_upstream(lim, request("GET", "/" + "a" * 3000), 414)


def test_large_header_section_is_431(lim):
    refused_before_upstream(lim, request("GET", "/", ["X-Big: " + "b" * 5000]), 431)


def test_too_many_header_fields_is_431(lim):
    refused_before_upstream(lim, request("GET", "/", [f"X-H{i}: {i}" for i in range(40)]), 431)


def test_slowloris_head_gets_408_and_is_closed(lim):
    gw, py = lim
    before = py.count()
    with HttpConn(gw.port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: test\r\n")
        closed = False
        for i in range(30):  # a header line every 100 ms, for up to 3 s: never a whole head
            try:
                conn.send(b"X-Slow-%d: 1\r\n" % i)
            except OSError:
                closed = True
                break
            if conn.readable(0.1):
                break
        rest = conn.read_until_eof(CLOSE_TIMEOUT)
    assert closed or rest.startswith(b"HTTP/1.1 408") or rest == b"", f"slowloris answer: {rest[:300]!r}"
    assert py.count() == before, "a slowloris head reached the upstream"


def test_many_slow_clients_do_not_block_others(lim):
    gw, py = lim
    slow = []
    try:
        for _ in range(50):
            c = HttpConn(gw.port)
            c.send(b"GET / HTTP/1.1\r\nHost: te")
            slow.append(c)
        resp = gw.get("/fine")
        assert resp.status == 200, resp
        for c in slow:
            rest = c.read_until_eof(CLOSE_TIMEOUT)
            assert rest == b"" or rest.startswith(b"HTTP/1.1 408"), rest[:200]
    finally:
        for c in slow:
            c.close()


def test_stalled_body_times_out(lim):
    gw, py = lim
    before = py.count()
    with HttpConn(gw.port) as conn:
        conn.send(request("POST", "/stall", ["Content-Length: 100"]) + b"x" * 10)
        rest = conn.read_until_eof(CLOSE_TIMEOUT)
    assert rest == b"" or rest.split(b" ", 2)[1] in (b"408", b"400", b"502", b"504"), rest[:300]
    got = [r for r in py.received()[before:] if r["target"] == "/stall"]
    assert not got, f"a body cut short reached the upstream as a whole request: {got}"


def test_global_limit_is_the_ceiling_for_routes(start_gateway, start_server):
    """docs/gateway.md: a route's max_body_bytes cannot go above limits.max_body_bytes (the
    effective limit is the smaller of the two)."""
    hello = start_server("--max-body", str(16 * 1024 * 1024), "--workers", "1")
    gw = start_gateway(gateway_config(
        {"h": upstream_of(hello.port)},
        [{"name": "uploads", "match": {"path": "/echo"}, "upstream": "h", "max_body_bytes": 8 * 1024 * 1024}],
        limits={"max_body_bytes": 1024 * 1024},
    ))
    body = b"u" * (1024 * 1024)
    resp = send_body_request(gw.port, request("POST", "/echo", [f"Content-Length: {len(body)}"]), body)
    assert resp.status == 200 and resp.body == body, resp
    body = b"u" * (2 * 1024 * 1024)
    resp = send_body_request(gw.port, request("POST", "/echo", [f"Content-Length: {len(body)}"]), body)
    assert_problem(resp, 413)
