"""Request bodies: Content-Length and chunked echo, 100-continue, streaming in flat memory, 413."""

import hashlib
import os
import threading

import pytest

from e2e_helpers import (
    CLOSE_TIMEOUT,
    HELLO_BODY,
    IO_TIMEOUT,
    HttpConn,
    RssSampler,
    assert_problem,
    chunked,
    request,
)

MiB = 1024 * 1024
RSS_GROWTH_MAX = 32 * MiB  # a memory bound, generous: the server holds a few 16-64 KiB buffers


def test_echo_with_content_length(server):
    body = bytes(range(256)) * 16
    with HttpConn(server.port) as conn:
        conn.send(request("POST", "/echo", ["Content-Type: text/x-test; charset=utf-8"], body))
        resp = conn.read_response("POST")
        assert resp.status == 200, resp
        assert resp.header("Content-Type") == "text/x-test; charset=utf-8", resp
        assert resp.header("Content-Length") == str(len(body)), resp
        assert resp.body == body
        # Keep-alive goes on after a body.
        conn.send(request("GET", "/"))
        assert conn.read_response().body == HELLO_BODY


def test_echo_default_content_type(server):
    with HttpConn(server.port) as conn:
        conn.send(request("POST", "/echo", body=b"abc"))
        resp = conn.read_response("POST")
        assert resp.status == 200, resp
        assert resp.header("Content-Type") == "application/octet-stream", resp
        assert resp.body == b"abc"


def test_echo_empty_body(server):
    with HttpConn(server.port) as conn:
        conn.send(request("POST", "/echo", ["Content-Length: 0"]) + request("POST", "/echo"))
        for _ in range(2):
            resp = conn.read_response("POST")
            assert resp.status == 200, resp
            assert resp.body == b""
            assert resp.header("Content-Length") == "0", resp


# Regression (a bug found while this suite was written): when the first read of a request held its
# head and so much body that less than 4096 bytes (BODY_SPACE_MIN) of the 16 KiB input block
# were free, the server could not reserve body space in an input buffer capped at that block and
# answered 503 {"detail":"out of memory"}. Example, sent in one write:
#   b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 12300\r\n\r\n" + b"x" * 12300
# 12200 bytes passed; 12300, 16384 and 100000 got the 503.
@pytest.mark.parametrize("size", [12200, 12300, 16384, 100_000])
def test_echo_body_arriving_with_its_head(server, size):
    body = os.urandom(size)
    with HttpConn(server.port) as conn:
        conn.send(request("POST", "/echo", body=body))
        resp = conn.read_response("POST")
        assert resp.status == 200, resp
        assert resp.body == body


def test_echo_body_sent_in_pieces(server):
    body = os.urandom(200_000)
    with HttpConn(server.port) as conn:
        conn.send(request("POST", "/echo", [f"Content-Length: {len(body)}"]))
        # The echo answers its head at once; waiting for it keeps the body out of the head's
        # read (test_echo_body_arriving_with_its_head covers the other case).
        head = conn.read_head()
        assert head.status == 200, head
        for i in range(0, len(body), 7919):
            conn.send(body[i : i + 7919])
        resp = conn.read_body(head, "POST")
        assert resp.body == body


def test_chunked_echo_with_extensions_and_trailers(server):
    wire = (
        b"5;name=value\r\nhello\r\n"
        b"6 ; x ; y=\"q s\"\r\n world\r\n"
        b"A\r\n0123456789\r\n"
        b"0;last\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n"
    )
    with HttpConn(server.port) as conn:
        conn.send(request("POST", "/echo", ["Transfer-Encoding: chunked", "Content-Type: text/plain"], wire))
        resp = conn.read_response("POST")
        assert resp.status == 200, resp
        assert resp.header("Transfer-Encoding") == "chunked", resp
        assert resp.header("Content-Type") == "text/plain"
        assert resp.body == b"hello world0123456789"
        conn.send(request("GET", "/"))
        assert conn.read_response().body == HELLO_BODY


def test_chunked_echo_split_everywhere(server):
    pieces = [os.urandom(n) for n in (1, 2, 15, 16, 17, 4095, 4096, 16384, 40000)]
    wire = request("POST", "/echo", ["Transfer-Encoding: chunked"], chunked(pieces, b";e=1", [b"T: v"]))
    with HttpConn(server.port) as conn:
        for i in range(0, len(wire), 3):
            conn.send(wire[i : i + 3])
        resp = conn.read_response("POST")
        assert resp.status == 200, resp
        assert resp.body == b"".join(pieces)


def test_chunked_echo_upper_case_hex(server):
    with HttpConn(server.port) as conn:
        body = b"x" * 0x1AB
        conn.send(request("POST", "/echo", ["Transfer-Encoding: chunked"], b"1AB\r\n" + body + b"\r\n0\r\n\r\n"))
        assert conn.read_response("POST").body == body


# Regression (a bug found while this suite was written): the request bytes
#   b"POST /echo HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 26\r\n\r\n"
# were answered at once with the echo's b"HTTP/1.1 200 OK\r\n..." head and never with
# b"HTTP/1.1 100 Continue\r\n\r\n", because the echo starts its response in on_request and the
# server sent 100 only while no response had started.
def test_expect_100_continue_echo(server):
    body = b"abcdefghijklmnopqrstuvwxyz"
    with HttpConn(server.port) as conn:
        conn.send(request("POST", "/echo", ["Expect: 100-continue", f"Content-Length: {len(body)}"]))
        interim = conn.read_head()
        assert interim.status == 100, f"expected the interim 100 before sending the body, got {interim!r}"
        assert interim.raw_head == b"HTTP/1.1 100 Continue\r\n", interim.raw_head  # no fields
        conn.send(body)
        resp = conn.read_response("POST")
        assert resp.status == 200, resp
        assert resp.body == body


def test_expect_100_continue_on_a_route_that_answers_later(server):
    # /delay does not start its response at once, so the server must ask for the body with 100.
    body = b"0123456789"
    with HttpConn(server.port) as conn:
        conn.send(request("GET", "/delay/300", ["Expect: 100-continue", f"Content-Length: {len(body)}"]))
        interim = conn.read_head()
        assert interim.status == 100, interim
        assert interim.raw_head == b"HTTP/1.1 100 Continue\r\n", interim.raw_head  # no fields
        conn.send(body)
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert resp.body == HELLO_BODY
        conn.send(request("GET", "/healthz"))
        assert conn.read_response().status == 200


# Regression (a bug found while this suite was written): Expect: 100-continue with the body sent at
# once, which RFC 9110 §10.1.1 allows:
#   b"POST /echo HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"
#   + b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
# The echo was answered in full (a 200 without Connection: close), then the connection was
# closed and the pipelined GET dropped: ag_http_response_end, called from on_body(last), took
# "no 100 sent yet" for "the client waits for 100" although the whole body had been read.
def test_expect_100_continue_with_the_body_sent_at_once(server):
    with HttpConn(server.port) as conn:
        conn.send(
            request("POST", "/echo", ["Expect: 100-continue"], b"hello")
            + request("GET", "/")
        )
        resp = conn.read_response("POST")
        assert resp.status == 200, resp
        assert resp.body == b"hello"
        assert resp.header("Connection") is None, resp
        nxt = conn.read_response()
        assert nxt.body == HELLO_BODY, nxt


def test_expect_100_continue_pipelined_behind_another_response(server):
    # The 100 for the second request must come after the first response, before the 200 head.
    with HttpConn(server.port) as conn:
        second = request("POST", "/echo", ["Expect: 100-continue", "Content-Length: 5"])
        conn.send(request("GET", "/bytes/300000") + second)
        assert conn.read_response().body_len == 300000
        interim = conn.read_head()
        assert interim.status == 100, interim
        conn.send(b"hello")
        resp = conn.read_response("POST")
        assert resp.status == 200, resp
        assert resp.body == b"hello"


def test_expect_100_continue_not_sent_when_refused_early(server):
    with HttpConn(server.port) as conn:
        conn.send(request("POST", "/", ["Expect: 100-continue", "Content-Length: 100000"]))
        first = conn.read_head()
        assert first.status == 405, f"expected 405 without a 100 first, got {first!r}"
        assert_problem(conn.read_body(first), 405)
        # The body was never asked for: the server must not read it as a next request either.
        rest = conn.read_until_eof()
        assert b"100 Continue" not in rest, rest[:300]
        assert rest == b"", rest[:300]


def test_expect_100_continue_not_sent_for_404(server):
    with HttpConn(server.port) as conn:
        conn.send(request("PUT", "/missing", ["Expect: 100-continue", "Content-Length: 10"]))
        first = conn.read_head()
        assert first.status == 404, f"expected 404 without a 100 first, got {first!r}"
        assert_problem(conn.read_body(first), 404)
        conn.assert_closed()


def test_expect_100_continue_ignored_for_http10(server):
    with HttpConn(server.port) as conn:
        conn.send(request("POST", "/echo", ["Expect: 100-continue"], b"12345", version="HTTP/1.0", host=None))
        resp = conn.read_head()
        assert resp.status == 200, f"HTTP/1.0 has no 100 Continue, got {resp!r}"
        assert conn.read_body(resp, "POST").body == b"12345"


class ChunkedUploader(threading.Thread):
    """Sends a chunked POST /echo of total bytes in varied pieces, hashing what it sent."""

    def __init__(self, conn, total, block):
        super().__init__(daemon=True)
        self.conn, self.total, self.block = conn, total, block
        self.digest = hashlib.sha256()
        self.error = None
        self.head_seen = threading.Event()

    def run(self):
        try:
            self.conn.send(request("POST", "/echo", ["Transfer-Encoding: chunked"]))
            # Body bytes wait for the echo's head, so this test is about streaming only
            # (test_echo_body_arriving_with_its_head covers a body that comes with its head).
            if not self.head_seen.wait(IO_TIMEOUT):
                raise AssertionError("no response head for the upload")
            sent, k = 0, 0
            sizes = (65536, 1000, 33333, 262144, 17)
            while sent < self.total:
                n = min(sizes[k % len(sizes)], self.total - sent)
                off = (k * 7919) % (len(self.block) - n)
                piece = self.block[off : off + n]
                self.conn.send(b"%x\r\n" % n + piece + b"\r\n")
                self.digest.update(piece)
                sent += n
                k += 1
            self.conn.send(b"0\r\n\r\n")
        except BaseException as e:  # reported by the reading thread
            self.error = e


def test_chunked_echo_100_MB_streams_in_flat_memory(start_server):
    total = 100 * MiB
    srv = start_server("--max-body", str(2 * total))
    block = os.urandom(MiB)
    with HttpConn(srv.port) as conn:
        # Warm up the worker's pools, then take the baseline.
        conn.send(request("POST", "/echo", [f"Content-Length: {300000}"]))
        head = conn.read_head()
        conn.send(block[:300000])
        assert conn.read_body(head, "POST").body == block[:300000]
        baseline = srv.rss_bytes()
        sampler = RssSampler(srv)
        sampler.start()
        uploader = ChunkedUploader(conn, total, block)
        uploader.start()
        received = hashlib.sha256()
        try:
            head = conn.read_head()
            uploader.head_seen.set()
            resp = conn.read_body(head, "POST", sink=received.update)
        finally:
            uploader.join(IO_TIMEOUT)
            peak = sampler.stop()
        assert uploader.error is None, f"upload failed: {uploader.error!r}"
        assert resp.status == 200, resp
        assert resp.body_len == total, f"echoed {resp.body_len} of {total} bytes"
        assert received.hexdigest() == uploader.digest.hexdigest(), "echoed bytes differ from the sent ones"
        growth = peak - baseline
        assert growth < RSS_GROWTH_MAX, f"RSS grew by {growth / MiB:.1f} MiB (baseline {baseline / MiB:.1f} MiB)"
        conn.send(request("GET", "/"))
        assert conn.read_response().body == HELLO_BODY


def test_bytes_1_GiB_download_in_flat_memory(server):
    total = 1024 * MiB
    with HttpConn(server.port) as conn:
        conn.send(request("GET", "/bytes/1000000"))
        assert conn.read_response().body_len == 1000000
        baseline = server.rss_bytes()
        sampler = RssSampler(server)
        sampler.start()
        nonzero = [0]

        def count(data):
            if data.count(0) != len(data):
                nonzero[0] += 1

        try:
            conn.send(request("GET", f"/bytes/{total}"))
            resp = conn.read_response(sink=count)
        finally:
            peak = sampler.stop()
        assert resp.status == 200, resp
        assert resp.header("Content-Length") == str(total), resp
        assert resp.body_len == total, f"received {resp.body_len} of {total} bytes"
        assert nonzero[0] == 0, "the filler bytes changed"
        growth = peak - baseline
        assert growth < RSS_GROWTH_MAX, f"RSS grew by {growth / MiB:.1f} MiB (baseline {baseline / MiB:.1f} MiB)"
        conn.send(request("GET", "/"))
        assert conn.read_response().body == HELLO_BODY


def test_content_length_over_max_body_is_413(start_server):
    srv = start_server("--max-body", "1000")
    with HttpConn(srv.port) as conn:
        conn.send(request("POST", "/echo", ["Content-Length: 1001"]))
        resp = conn.read_response("POST")
        assert_problem(resp, 413)
        assert resp.header("Connection") == "close", resp
        conn.assert_closed(CLOSE_TIMEOUT)


def test_content_length_at_max_body_is_echoed(start_server):
    srv = start_server("--max-body", "1000")
    with HttpConn(srv.port) as conn:
        conn.send(request("POST", "/echo", body=b"y" * 1000))
        assert conn.read_response("POST").body == b"y" * 1000


def send_quietly(conn, data):
    """Sends what the server takes: it may refuse and close before reading everything."""
    try:
        conn.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def test_chunked_body_growing_past_max_body_is_413(start_server):
    # /delay has not answered yet when the body passes the limit, so the refusal is a 413.
    srv = start_server("--max-body", "1000")
    with HttpConn(srv.port) as conn:
        send_quietly(conn, request("GET", "/delay/20000", ["Transfer-Encoding: chunked"], chunked([b"z" * 300] * 10)))
        assert_problem(conn.read_response(), 413)
        conn.assert_closed(CLOSE_TIMEOUT)


def test_chunked_echo_growing_past_max_body_is_cut(start_server):
    # /echo has sent its 200 head before the body passes the limit: the only way left to say
    # "failed" is to close without the last chunk.
    srv = start_server("--max-body", "1000")
    with HttpConn(srv.port) as conn:
        send_quietly(conn, request("POST", "/echo", ["Transfer-Encoding: chunked"], chunked([b"z" * 300] * 10)))
        resp = conn.read_response("POST", allow_incomplete=True)
        assert resp.status in (200, 413), resp
        if resp.status == 200:
            assert not resp.complete, f"a body over --max-body was echoed completely: {resp.body_len} bytes"
            assert resp.body_len <= 1000, resp.body_len
        conn.read_until_eof()
