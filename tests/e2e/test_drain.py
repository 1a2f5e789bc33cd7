"""Graceful drain on SIGTERM: in-flight requests finish, new connections are refused, exit 0."""

import signal
import socket
import time

from e2e_helpers import HELLO_BODY, IO_TIMEOUT, HttpConn, request

IN_FLIGHT = 20


def wait_until(predicate, what, timeout=IO_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def connect_refused(port):
    """True once a new connection is refused (or reset before it is served)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the probe reached a listener's accept queue just as the drain closed it.
        return True
    s.close()  # a listener was still open: try again
    return False


def test_drain_finishes_in_flight_requests(start_server):
    srv = start_server()
    listeners = srv.workers  # one SO_REUSEPORT listener per worker
    conns = [HttpConn(srv.port) for _ in range(IN_FLIGHT)]
    # One longer request keeps the drain going while the test checks that new connections are
    # refused, so that the refusal is seen during the drain and not after the exit.
    keeper = HttpConn(srv.port)
    try:
        for c in conns:
            c.send(request("GET", "/delay/500"))
        keeper.send(request("GET", "/delay/4000"))
        wait_until(lambda: srv.socket_fd_count() >= listeners + IN_FLIGHT + 1, "accepting every connection")
        time.sleep(0.1)
        srv.terminate()
        wait_until(lambda: connect_refused(srv.port), "refusing new connections")
        assert srv.alive(), "the server exited before the in-flight requests ended"
        for i, c in enumerate(conns):
            resp = c.read_response()
            assert resp.status == 200, f"in-flight request {i}: {resp!r}"
            assert resp.body == HELLO_BODY, f"in-flight request {i}"
            assert resp.header("Connection") == "close", f"in-flight request {i} during a drain: {resp!r}"
            c.assert_closed()
        resp = keeper.read_response()
        assert resp.status == 200 and resp.body == HELLO_BODY, resp
        keeper.assert_closed()
        assert srv.wait() == 0
    finally:
        for c in conns + [keeper]:
            c.close()


def test_drain_closes_idle_keep_alive_connections(start_server):
    srv = start_server()
    with HttpConn(srv.port) as idle:
        idle.send(request("GET", "/"))
        assert idle.read_response().body == HELLO_BODY
        srv.terminate()
        idle.assert_closed()
        assert srv.wait() == 0


def test_drain_with_nothing_in_flight_exits_0(start_server):
    srv = start_server()
    srv.terminate()
    assert srv.wait() == 0
    assert "stopped after draining" in srv.stdout()


def test_sigint_drains_too(start_server):
    srv = start_server()
    with HttpConn(srv.port) as conn:
        conn.send(request("GET", "/delay/300"))
        time.sleep(0.1)
        srv.proc.send_signal(signal.SIGINT)
        resp = conn.read_response()
        assert resp.status == 200, resp
    assert srv.wait() == 0


def test_drain_timeout_cuts_a_long_request_and_exits_0(start_server):
    srv = start_server("--drain-timeout-ms", "200")
    listeners = srv.workers  # one SO_REUSEPORT listener per worker
    with HttpConn(srv.port) as conn:
        conn.send(request("GET", "/delay/5000"))
        wait_until(lambda: srv.socket_fd_count() > listeners, "accepting the connection")
        time.sleep(0.1)
        srv.terminate()
        assert srv.wait() == 0
        # The request was cut: no complete response, just the close.
        rest = conn.read_until_eof()
        assert rest == b"", f"a cut request got bytes: {rest[:300]!r}"
