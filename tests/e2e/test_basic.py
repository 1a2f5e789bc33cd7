"""agora-hello routes, problem responses and command line."""

import subprocess

import pytest

from e2e_helpers import HELLO, HELLO_BODY, HttpConn, assert_problem, fetch, request


def test_root_says_hello(server):
    resp = fetch(server.port, "GET", "/")
    assert resp.status == 200, resp
    assert resp.body == HELLO_BODY
    assert resp.header("Content-Type") == "application/json"
    assert resp.header("Content-Length") == str(len(HELLO_BODY))
    assert resp.header("Date"), resp


def test_healthz(server):
    resp = fetch(server.port, "GET", "/healthz")
    assert resp.status == 200, resp
    assert resp.body == b'{"status":"ok"}'
    assert resp.header("Content-Type") == "application/json"


def test_query_string_is_not_part_of_the_path(server):
    resp = fetch(server.port, "GET", "/?a=1&b=%20")
    assert resp.status == 200, resp
    assert resp.body == HELLO_BODY


@pytest.mark.parametrize("target", ["/nope", "/hello/", "/bytes", "/ECHO"])
def test_unknown_path_is_404_problem(server, target):
    resp = fetch(server.port, "GET", target)
    doc = assert_problem(resp, 404)
    assert doc["title"] == "Not Found", doc


@pytest.mark.parametrize(
    "method, target, allow",
    [
        ("POST", "/", "GET, HEAD"),
        ("DELETE", "/healthz", "GET, HEAD"),
        ("PUT", "/bytes/1", "GET, HEAD"),
        ("POST", "/delay/1", "GET, HEAD"),
        ("GET", "/echo", "POST"),
    ],
)
def test_wrong_method_is_405_with_allow(server, method, target, allow):
    resp = fetch(server.port, method, target)
    doc = assert_problem(resp, 405)
    assert doc["title"] == "Method Not Allowed", doc
    assert resp.header("Allow") == allow, resp


def test_head_has_length_but_no_body(server):
    with HttpConn(server.port) as conn:
        # The GET behind the HEAD shows that no body bytes followed the HEAD response's head.
        conn.send(request("HEAD", "/") + request("GET", "/healthz"))
        head = conn.read_response("HEAD")
        assert head.status == 200, head
        assert head.header("Content-Length") == "17", head
        assert head.header("Content-Type") == "application/json"
        assert head.body == b""
        after = conn.read_response()
        assert after.status == 200, after
        assert after.body == b'{"status":"ok"}'


def test_head_of_bytes_has_length_but_no_body(server):
    with HttpConn(server.port) as conn:
        conn.send(request("HEAD", "/bytes/100000") + request("GET", "/"))
        head = conn.read_response("HEAD")
        assert head.status == 200, head
        assert head.header("Content-Length") == "100000", head
        after = conn.read_response()
        assert after.body == HELLO_BODY, after


@pytest.mark.parametrize("n", [0, 1, 65536, 1000003])
def test_bytes_exact_sizes(server, n):
    with HttpConn(server.port) as conn:
        conn.send(request("GET", f"/bytes/{n}"))
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert resp.header("Content-Length") == str(n), resp
        assert resp.header("Content-Type") == "application/octet-stream"
        assert len(resp.body) == n, f"{len(resp.body)} != {n}"
        # The connection is still usable, so the body ended exactly where it said.
        conn.send(request("GET", "/"))
        assert conn.read_response().body == HELLO_BODY


@pytest.mark.parametrize(
    "target", ["/bytes/abc", "/bytes/-1", "/bytes/1073741825", "/bytes/", "/bytes/1x", "/bytes/99999999999999999999999"]
)
def test_bytes_bad_number_is_400_problem(server, target):
    assert_problem(fetch(server.port, "GET", target), 400)


@pytest.mark.parametrize("target", ["/delay/abc", "/delay/60001", "/delay/"])
def test_delay_bad_number_is_400_problem(server, target):
    assert_problem(fetch(server.port, "GET", target), 400)


def test_delay_answers_hello(server):
    resp = fetch(server.port, "GET", "/delay/50")
    assert resp.status == 200, resp
    assert resp.body == HELLO_BODY
    assert resp.header("Content-Type") == "application/json"


def test_help_lists_routes_and_exits_0():
    done = subprocess.run([HELLO, "--help"], capture_output=True, timeout=30)
    assert done.returncode == 0, done
    text = done.stdout.decode()
    for needle in ["Usage:", "GET  /", "/echo", "/bytes/N", "/delay/MS", "/healthz", "--listen", "--max-body"]:
        assert needle in text, f"{needle!r} missing from --help:\n{text}"


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["--workers", "0"],
        ["--workers", "abc"],
        ["--workers", "257"],
        ["--max-body", "-1"],
        ["--max-body", "10k"],
        ["--header-timeout-ms", "0"],
        ["--idle-timeout-ms", ""],
        ["--body-timeout-ms", "3600001"],
        ["--drain-timeout-ms", "x"],
        ["--log-level", "loud"],
        ["--listen"],
        ["unexpected-positional"],
    ],
)
def test_bad_options_exit_2_with_a_message(args):
    done = subprocess.run([HELLO, "--listen", "127.0.0.1:0", *args], capture_output=True, timeout=30)
    assert done.returncode == 2, f"{args}: exit {done.returncode}, stderr={done.stderr!r}"
    assert done.stderr.strip(), f"{args}: no message on stderr"
    assert b"listening" not in done.stdout, f"{args}: it started anyway: {done.stdout!r}"


def test_absolute_form_target(server):
    resp = fetch(server.port, "GET", "http://test/healthz?x=1")
    assert resp.status == 200, resp
    assert resp.body == b'{"status":"ok"}'


# An absolute-form target without a path means "/" (RFC 9110 §4.2.3).
@pytest.mark.parametrize("target", ["http://test", "http://test?x=1"], ids=["no_path", "no_path_with_query"])
def test_absolute_form_without_path_is_root(server, target):
    resp = fetch(server.port, "GET", target)
    assert resp.status == 200, f"GET {target}: {resp!r}"
    assert resp.body == HELLO_BODY


def test_head_of_a_problem_has_no_body(server):
    with HttpConn(server.port) as conn:
        conn.send(request("HEAD", "/missing") + request("GET", "/"))
        head = conn.read_response("HEAD")
        assert head.status == 404, head
        assert head.header("Content-Type") == "application/problem+json"
        assert int(head.header("Content-Length")) > 0, head
        assert conn.read_response().body == HELLO_BODY


# A malformed --listen is a usage error like any other option: exit 2, message on stderr.
@pytest.mark.parametrize("listen", ["nohost", "127.0.0.1:99999", "127.0.0.1:x"])
def test_malformed_listen_address_exits_2(listen):
    done = subprocess.run([HELLO, "--listen", listen], capture_output=True, timeout=30)
    assert done.returncode == 2, f"--listen {listen}: exit {done.returncode}, stdout={done.stdout!r}"
    assert done.stderr.strip(), f"--listen {listen}: no message on stderr"
