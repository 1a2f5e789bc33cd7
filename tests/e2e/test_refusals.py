"""Every class of refused request: exact status, a problem+json body, and a close.

Each case runs against its own agora-hello (one worker), all cases at once: a case whose
connection is never closed then costs one shared timeout, not one each, and cannot disturb
the other cases. A last test sends every refusal to one server and checks it still answers.

Regression (a bug found while this suite was written): after any refusal of a request head (every
400/413/414/417/431/501/505 case below that is not about a chunked body) the server sent the
right problem response but never closed the connection: the refused exchange stayed
undispatched, so conn_advance re-entered conn_read_head, whose parser refused again, forever.
The worker thread spun at 100% CPU, served none of its other connections, and the process no
longer exited on SIGTERM.
"""

import threading

import pytest

from e2e_helpers import CLOSE_TIMEOUT, HELLO_BODY, HttpConn, ServerSet, assert_problem, fetch, request

def head(first_line, *fields, host=True):
    """A request head from its first line and field lines (bytes, without CRLF)."""
    lines = [first_line] + ([b"Host: test"] if host else []) + list(fields)
    return b"\r\n".join(lines) + b"\r\n\r\n"


ECHO = b"POST /echo HTTP/1.1"
TE_CHUNKED = b"Transfer-Encoding: chunked"


def chunked_to_delay(body):
    # /delay has not answered when its body is read, so a body refusal can still be a 4xx.
    return head(b"GET /delay/20000 HTTP/1.1", TE_CHUNKED) + body


CASES = [
    # request line
    ("method_not_a_token", head(b"G(T / HTTP/1.1"), 400),
    ("method_with_slash", head(b"GE/T / HTTP/1.1"), 400),
    ("method_empty", head(b" / HTTP/1.1"), 400),
    ("target_with_space", head(b"GET /a b HTTP/1.1"), 400),
    ("target_with_angle_brackets", head(b"GET /<x> HTTP/1.1"), 400),
    ("target_with_bad_escape", head(b"GET /%zz HTTP/1.1"), 400),
    ("target_with_fragment", head(b"GET /a#b HTTP/1.1"), 400),
    ("target_with_del_byte", head(b"GET /a\x7f HTTP/1.1"), 400),
    ("target_with_high_byte", head(b"GET /\xc3\xa9 HTTP/1.1"), 400),
    ("two_spaces_after_method", head(b"GET  / HTTP/1.1"), 400),
    ("version_lower_case", head(b"GET / http/1.1"), 400),
    ("version_malformed", head(b"GET / HTTP/1"), 400),
    ("no_version", head(b"GET /"), 400),
    # line endings
    ("bare_lf", b"GET / HTTP/1.1\nHost: test\n\n", 400),
    ("bare_lf_in_fields", b"GET / HTTP/1.1\r\nHost: test\nX-A: b\r\n\r\n", 400),
    ("bare_cr_in_fields", b"GET / HTTP/1.1\r\nHost: test\rX-A: b\r\n\r\n", 400),
    ("bare_cr_in_request_line", b"GET /\r HTTP/1.1\r\nHost: test\r\n\r\n", 400),
    # field lines
    ("nul_in_value", head(b"GET / HTTP/1.1", b"X-A: a\x00b"), 400),
    ("control_byte_in_value", head(b"GET / HTTP/1.1", b"X-A: a\x01b"), 400),
    ("control_byte_in_name", head(b"GET / HTTP/1.1", b"X-\x01A: b"), 400),
    ("empty_field_name", head(b"GET / HTTP/1.1", b": b"), 400),
    ("field_without_colon", head(b"GET / HTTP/1.1", b"X-A b"), 400),
    ("obs_fold", head(b"GET / HTTP/1.1", b"X-A: a", b" folded"), 400),
    ("space_before_colon", head(b"GET / HTTP/1.1", b"X-A : b"), 400),
    ("tab_before_colon", head(b"GET / HTTP/1.1", b"X-A\t: b"), 400),
    # framing
    ("empty_content_length", head(ECHO, b"Content-Length: "), 400),
    ("non_numeric_content_length", head(ECHO, b"Content-Length: 12a"), 400),
    ("signed_content_length", head(ECHO, b"Content-Length: +5"), 400),
    ("hex_content_length", head(ECHO, b"Content-Length: 0x10"), 400),
    ("duplicate_content_length", head(ECHO, b"Content-Length: 5", b"Content-Length: 5") + b"hello", 400),
    ("listed_content_length", head(ECHO, b"Content-Length: 5, 5") + b"hello", 400),
    ("content_length_with_te", head(ECHO, b"Content-Length: 5", TE_CHUNKED) + b"0\r\n\r\n", 400),
    ("te_last_coding_not_chunked", head(ECHO, b"Transfer-Encoding: chunked, gzip"), 400),
    ("te_gzip_only", head(ECHO, b"Transfer-Encoding: gzip"), 400),
    ("te_chunked_twice", head(ECHO, TE_CHUNKED, TE_CHUNKED), 400),
    ("te_in_http10", head(b"POST /echo HTTP/1.0", TE_CHUNKED, host=False) + b"0\r\n\r\n", 400),
    # chunked bodies
    ("chunk_size_not_hex", chunked_to_delay(b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk_size_17_hex_digits", chunked_to_delay(b"10000000000000000\r\nx\r\n0\r\n\r\n"), 400),
    ("chunk_size_bare_lf", chunked_to_delay(b"5\nhello\r\n0\r\n\r\n"), 400),
    ("chunk_data_longer_than_size", chunked_to_delay(b"3\r\nhello\r\n0\r\n\r\n"), 400),
    # Host
    ("missing_host_http11", head(b"GET / HTTP/1.1", host=False), 400),
    ("duplicate_host", head(b"GET / HTTP/1.1", b"Host: other"), 400),
    ("host_with_space", head(b"GET / HTTP/1.1", b"Host: a b", host=False), 400),
    # limits
    ("request_line_9000_bytes", head(b"GET /" + b"a" * 9000 + b" HTTP/1.1"), 414),
    ("header_section_40_KiB", head(b"GET / HTTP/1.1", *[b"X-Fill-%02d: " % i + b"v" * 1000 for i in range(40)]), 431),
    ("header_101_fields", head(b"GET / HTTP/1.1", *[b"X-F%d: v" % i for i in range(100)]), 431),
    ("content_length_over_max_body", head(ECHO, b"Content-Length: 10485761"), 413),
    ("content_length_20_digits", head(ECHO, b"Content-Length: 99999999999999999999"), 413),
    # not implemented, versions, expectations
    ("te_gzip_then_chunked", head(ECHO, b"Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n", 501),
    ("http_2_0", head(b"GET / HTTP/2.0"), 505),
    ("http_1_2", head(b"GET / HTTP/1.2"), 505),
    ("http_0_9_style_version", head(b"GET / HTTP/0.9"), 505),
    ("unknown_expect", head(ECHO, b"Expect: 200-ok", b"Content-Length: 5"), 417),
]


class Outcome:
    def __init__(self):
        self.response = None
        self.error = None  # why no response could be read
        self.closed = False
        self.close_error = None
        self.after = b""  # bytes after the response, before the close
        self.alive = None  # the server process after the exchange
        self.exit_problems = []  # how its SIGTERM exit went wrong


def send_quietly(conn, data):
    try:
        conn.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before it read everything: the answer may still be there


def run_case(port, wire, outcome):
    try:
        with HttpConn(port, timeout=CLOSE_TIMEOUT) as conn:
            send_quietly(conn, wire)
            try:
                outcome.response = conn.read_response()
            except AssertionError as e:
                outcome.error = str(e)
                return
            try:
                outcome.after = conn.read_until_eof(CLOSE_TIMEOUT)
                outcome.closed = True
            except AssertionError as e:
                outcome.close_error = str(e)
    except Exception as e:  # reported by the case's test
        outcome.error = repr(e)


def run_all(cases, port_for):
    """Runs the cases at once, each on its own connection; returns name -> Outcome."""
    outcomes = {name: Outcome() for name, _, _ in cases}
    threads = [
        threading.Thread(target=run_case, args=(port_for(name), wire, outcomes[name]), daemon=True)
        for name, wire, _ in cases
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(4 * CLOSE_TIMEOUT)
    return outcomes


@pytest.fixture(scope="module")
def outcomes():
    """Runs every case against its own one-worker server, all at once, then stops them all."""
    servers = ServerSet()
    results = {}
    try:
        for name, _, _ in CASES:
            servers.start("--workers", "1")
        ports = {name: srv.port for (name, _, _), srv in zip(CASES, servers.servers)}
        results = run_all(CASES, ports.get)
        for (name, _, _), srv in zip(CASES, servers.servers):
            results[name].alive = srv.alive()
    finally:
        started = len(servers.servers)
        each = servers.finish_each()
    for (name, _, _), found in zip(CASES[:started], each):
        results[name].exit_problems = found
    return results


@pytest.mark.parametrize("name, wire, status", CASES, ids=[c[0] for c in CASES])
def test_refusal(outcomes, name, wire, status):
    outcome = outcomes[name]
    sent = wire[:120]
    assert outcome.error is None, f"{name}: no response to {sent!r}: {outcome.error}"
    resp = outcome.response
    assert resp.status == status, f"{name}: status {resp.status} != {status} for {sent!r}: {resp!r}"
    assert_problem(resp, status)
    assert resp.header("Connection") == "close", f"{name}: the refusal does not announce the close: {resp!r}"
    assert outcome.closed, f"{name}: after the {status} to {sent!r}: {outcome.close_error}"
    assert outcome.after == b"", f"{name}: bytes after the refusal: {outcome.after[:200]!r}"
    assert outcome.alive, f"{name}: the server died"
    assert outcome.exit_problems == [], f"{name}: after {sent!r}: {outcome.exit_problems}"


def test_server_survives_every_refusal(start_server):
    srv = start_server()
    assert fetch(srv.port, "GET", "/").body == HELLO_BODY
    run_all(CASES, lambda name: srv.port)  # each case's own test judges its answer
    assert srv.alive(), "the server died"
    for i in range(16):  # many connections, so that every worker is asked
        with HttpConn(srv.port, timeout=CLOSE_TIMEOUT) as conn:
            conn.send(request("GET", "/"))
            try:
                resp = conn.read_response()
            except AssertionError as e:
                raise AssertionError(f"request {i} after the refusals: {e}") from None
            assert resp.status == 200, f"request {i} after the refusals: {resp!r}"
            assert resp.body == HELLO_BODY
