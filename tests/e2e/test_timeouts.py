"""Header, body and idle timeouts, and slow clients that must not starve the others.

The timeouts here are short and the clients are far slower than them, so each test asserts
what happened (a cut, a 408, a close, a success), never how long it took.
"""

import time

from e2e_helpers import HELLO_BODY, HttpConn, fetch, request

SLOW_BYTE_INTERVAL = 0.1  # the slowloris client sends one byte this often


def assert_408_or_nothing(rest):
    """What a cut client may read: nothing, or a 408 problem response."""
    if not rest:
        return
    assert rest.startswith(b"HTTP/1.1 408 "), f"unexpected bytes on the cut connection: {rest[:300]!r}"
    head, _, body = rest.partition(b"\r\n\r\n")
    assert b"Content-Type: application/problem+json" in head, head
    assert b'"status":408' in body, body


def test_slowloris_head_is_cut_while_others_are_served(start_server):
    srv = start_server("--header-timeout-ms", "500")
    # ~110 bytes at one per 100 ms would take ~11 s: over 20 times the header timeout.
    wire = request("GET", "/", ["X-Slow: " + "s" * 60])
    cut_at = None
    normal = None
    with HttpConn(srv.port) as slow:
        for i in range(len(wire)):
            try:
                slow.send(wire[i : i + 1])
            except (BrokenPipeError, ConnectionResetError):
                cut_at = i
                break
            if i == 2:
                normal = fetch(srv.port, "GET", "/")  # served while the slow head is pending
            if slow.readable(SLOW_BYTE_INTERVAL):
                cut_at = i
                break
        took = len(wire) * SLOW_BYTE_INTERVAL
        assert cut_at is not None, f"the server took a {len(wire)}-byte head sent over ~{took:.0f} s"
        assert cut_at < len(wire) - 1, "the cut came only after the whole head"
        assert_408_or_nothing(slow.read_until_eof())
    assert normal is not None and normal.status == 200, normal
    assert normal.body == HELLO_BODY


def test_slow_but_complete_head_within_the_timeout_is_served(start_server):
    srv = start_server("--header-timeout-ms", "20000")
    wire = request("GET", "/")
    with HttpConn(srv.port) as conn:
        for i in range(len(wire)):
            conn.send(wire[i : i + 1])
            time.sleep(0.005)
        assert conn.read_response().body == HELLO_BODY


def test_idle_keep_alive_connection_is_closed(start_server):
    srv = start_server("--idle-timeout-ms", "300")
    with HttpConn(srv.port) as conn:
        conn.send(request("GET", "/"))
        assert conn.read_response().body == HELLO_BODY
        conn.assert_closed()  # nothing more sent: the idle timeout closes it


def test_connection_that_never_sends_is_closed(start_server):
    srv = start_server("--idle-timeout-ms", "300", "--header-timeout-ms", "300")
    with HttpConn(srv.port) as conn:
        rest = conn.read_until_eof()
        assert_408_or_nothing(rest)


def test_keep_alive_survives_while_busy(start_server):
    # Activity resets the idle clock: requests spaced well under the timeout keep working.
    srv = start_server("--idle-timeout-ms", "5000")
    with HttpConn(srv.port) as conn:
        for _ in range(5):
            conn.send(request("GET", "/"))
            assert conn.read_response().body == HELLO_BODY
            time.sleep(0.05)


def test_stalled_body_gets_408(start_server):
    # /delay has not answered, so a stalled body can still be refused with 408.
    srv = start_server("--body-timeout-ms", "300")
    with HttpConn(srv.port) as conn:
        conn.send(request("GET", "/delay/30000", ["Content-Length: 100"]) + b"x" * 10)
        rest = conn.read_until_eof()
        assert rest, "closed without a 408"
        assert_408_or_nothing(rest)


def test_stalled_echo_body_is_cut(start_server):
    # The echo has sent its 200 head already: the stall can only end in a close, short of the
    # declared length.
    srv = start_server("--body-timeout-ms", "300")
    with HttpConn(srv.port) as conn:
        conn.send(request("POST", "/echo", ["Content-Length: 100"]))
        head = conn.read_head()
        assert head.status == 200, head
        conn.send(b"x" * 10)
        resp = conn.read_body(head, "POST", allow_incomplete=True)
        assert not resp.complete, resp
        assert resp.body == b"x" * 10
        conn.read_until_eof()


def test_slow_body_within_the_timeout_is_echoed(start_server):
    srv = start_server("--body-timeout-ms", "10000")
    with HttpConn(srv.port) as conn:
        conn.send(request("POST", "/echo", ["Content-Length: 5"]))
        head = conn.read_head()
        for b in b"abcde":
            conn.send(bytes([b]))
            time.sleep(0.05)
        assert conn.read_body(head, "POST").body == b"abcde"


def test_200_idle_slowloris_connections_do_not_block_others(start_server):
    srv = start_server("--header-timeout-ms", "60000", "--idle-timeout-ms", "60000")
    conns = []
    try:
        for i in range(200):
            c = HttpConn(srv.port)
            conns.append(c)
            if i % 2 == 0:
                c.send(b"GET / HTTP/1.1\r\nHost: slow\r\nX-Never-Ends: ")  # a head that never ends
        for i in range(20):
            resp = fetch(srv.port, "GET", "/" if i % 2 else "/healthz")
            assert resp.status == 200, f"request {i} with 200 slow clients: {resp!r}"
        with HttpConn(srv.port) as conn:
            conn.send(request("POST", "/echo", body=b"still here"))
            assert conn.read_response("POST").body == b"still here"
        for c in conns:
            assert not c.readable(0), "a slow client was answered or closed early"
    finally:
        for c in conns:
            c.close()
