"""Persistent connections, HTTP/1.0 rules, Connection: close and pipelining."""

import time

from e2e_helpers import HELLO_BODY, HttpConn, chunked, request


def test_keep_alive_100_requests_on_one_socket(server):
    with HttpConn(server.port) as conn:
        for i in range(100):
            target = "/" if i % 2 == 0 else f"/bytes/{i}"
            conn.send(request("GET", target))
            resp = conn.read_response()
            assert resp.status == 200, f"request {i}: {resp!r}"
            assert resp.header("Connection") is None, f"request {i}: {resp!r}"
            expected = HELLO_BODY if i % 2 == 0 else b"\0" * i
            assert resp.body == expected, f"request {i}"
        assert not conn.eof


def test_http10_closes_by_default(server):
    with HttpConn(server.port) as conn:
        conn.send(request("GET", "/", version="HTTP/1.0", host=None))
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert resp.body == HELLO_BODY
        assert resp.header("Connection") == "close", resp
        conn.assert_closed()


def test_http10_keep_alive_when_asked(server):
    with HttpConn(server.port) as conn:
        for i in range(3):
            conn.send(request("GET", "/", ["Connection: keep-alive"], version="HTTP/1.0", host=None))
            resp = conn.read_response()
            assert resp.status == 200, f"request {i}: {resp!r}"
            assert resp.header("Connection").lower() == "keep-alive", resp
            assert resp.body == HELLO_BODY
        # Without the option again, the last one closes.
        conn.send(request("GET", "/healthz", version="HTTP/1.0", host=None))
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert resp.header("Connection") == "close", resp
        conn.assert_closed()


def test_http10_echo_of_unknown_length_ends_with_close(server):
    # An HTTP/1.0 client cannot read chunked: the echo of a Content-Length body keeps its length.
    with HttpConn(server.port) as conn:
        conn.send(request("POST", "/echo", ["Connection: keep-alive"], b"ten bytes!", version="HTTP/1.0", host=None))
        resp = conn.read_response("POST")
        assert resp.status == 200, resp
        assert resp.body == b"ten bytes!"
        assert resp.header("Transfer-Encoding") is None, resp


def test_connection_close_is_honoured(server):
    with HttpConn(server.port) as conn:
        conn.send(request("GET", "/", ["Connection: close"]))
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert resp.header("Connection") == "close", resp
        conn.assert_closed()


def test_connection_close_among_other_options(server):
    with HttpConn(server.port) as conn:
        conn.send(request("GET", "/", ["Connection: TE, Close"]))
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert resp.header("Connection") == "close", resp
        conn.assert_closed()


def test_requests_after_connection_close_are_not_answered(server):
    with HttpConn(server.port) as conn:
        conn.send(request("GET", "/", ["Connection: close"]) + request("GET", "/healthz"))
        resp = conn.read_response()
        assert resp.body == HELLO_BODY, resp
        conn.assert_closed()


def pipeline_mix(count):
    """count requests of four kinds, with the body each response must carry."""
    reqs, expected = [], []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            reqs.append(request("GET", "/"))
            expected.append(("GET", HELLO_BODY))
        elif kind == 1:
            reqs.append(request("GET", "/bytes/10"))
            expected.append(("GET", b"\0" * 10))
        elif kind == 2:
            reqs.append(request("GET", "/delay/20"))
            expected.append(("GET", HELLO_BODY))
        else:
            body = f"pipelined body number {i} ".encode() * (i + 1)
            if i % 8 == 3:
                reqs.append(request("POST", "/echo", ["Content-Type: text/plain"], body))
            else:
                wire = chunked([body[:7], body[7:]])
                reqs.append(request("POST", "/echo", ["Content-Type: text/plain", "Transfer-Encoding: chunked"], wire))
            expected.append(("POST", body))
    return reqs, expected


def read_all_in_order(conn, expected):
    for i, (method, body) in enumerate(expected):
        resp = conn.read_response(method)
        assert resp.status == 200, f"response {i}: {resp!r}"
        assert resp.body == body, f"response {i}: {resp.body[:80]!r} != {body[:80]!r}"


def test_pipelining_50_requests_in_one_send(server):
    reqs, expected = pipeline_mix(50)
    with HttpConn(server.port) as conn:
        conn.send(b"".join(reqs))
        read_all_in_order(conn, expected)
        conn.send(request("GET", "/", ["Connection: close"]))
        assert conn.read_response().body == HELLO_BODY
        conn.assert_closed()


def test_pipelining_split_at_odd_boundaries(server):
    reqs, expected = pipeline_mix(24)
    wire = b"".join(reqs)
    sizes = [1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53]
    with HttpConn(server.port) as conn:
        pos, k = 0, 0
        while pos < len(wire):
            n = sizes[k % len(sizes)]
            conn.send(wire[pos : pos + n])
            pos += n
            k += 1
            if k % 3 == 0:
                time.sleep(0.002)  # let separate segments reach the server
        read_all_in_order(conn, expected)


def test_pipelining_one_byte_at_a_time(server):
    reqs, expected = pipeline_mix(8)
    wire = b"".join(reqs)
    with HttpConn(server.port) as conn:
        for i in range(len(wire)):
            conn.send(wire[i : i + 1])
            if i % 16 == 0:
                time.sleep(0.001)
        read_all_in_order(conn, expected)


def test_pipelined_head_split_inside_crlf(server):
    with HttpConn(server.port) as conn:
        wire = request("GET", "/") + request("GET", "/healthz")
        cut = wire.index(b"\r\n\r\n") + 1  # between CR and LF of the first empty line
        conn.send(wire[:cut])
        time.sleep(0.05)
        conn.send(wire[cut:])
        assert conn.read_response().body == HELLO_BODY
        assert conn.read_response().body == b'{"status":"ok"}'


def test_ignored_body_is_skipped_before_the_next_request(server):
    with HttpConn(server.port) as conn:
        conn.send(
            request("GET", "/healthz", body=b"ignored body")
            + request("POST", "/", body=b"refused body")  # 405, body dropped
            + request("POST", "/", ["Transfer-Encoding: chunked"], chunked([b"chunked", b" refused"]))
            + request("GET", "/")
        )
        assert conn.read_response().body == b'{"status":"ok"}'
        assert conn.read_response("POST").status == 405
        assert conn.read_response("POST").status == 405
        assert conn.read_response().body == HELLO_BODY
        assert not conn.eof


def test_large_ignored_body_ends_the_connection(server):
    # Skipping megabytes nobody reads is not worth it: answer, then close.
    body = b"b" * (3 * 1024 * 1024)
    with HttpConn(server.port) as conn:
        conn.send(request("POST", "/", [f"Content-Length: {len(body)}"]))
        resp = conn.read_response("POST")
        assert resp.status == 405, resp
        try:
            conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        conn.read_until_eof()


def test_pipelined_large_response_then_small_ones(server):
    with HttpConn(server.port) as conn:
        conn.send(request("GET", "/bytes/3000000") + request("GET", "/") + request("GET", "/bytes/5"))
        assert conn.read_response().body_len == 3000000
        assert conn.read_response().body == HELLO_BODY
        assert conn.read_response().body == b"\0" * 5
