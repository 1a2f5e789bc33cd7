"""Request smuggling: ambiguous or malformed framing is refused (400, or 501 for an unknown
transfer coding) and the connection closed, before anything reaches the upstream, which records
every byte it receives. Broken chunked bodies that carry a second request never let that
request through. An upstream response with ambiguous framing is refused with 502 and that
upstream connection is closed."""

import time

import pytest

from gwtest import CLOSE_TIMEOUT, HttpConn, assert_problem, gateway_config, upstream_of, wait_until

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture(scope="module")
def sm(module_stack):
    py = module_stack.py()
    cfg = gateway_config(
        {"py": upstream_of(py.port, breaker={"enabled": False}, passive={"consecutive_failures": 0},
                           retries={"attempts": 1})},
        [{"name": "all", "match": {"path": "/", "prefix": True}, "upstream": "py"}],
    )
    gw = module_stack.gateway(cfg)
    # one good request first: the upstream connection pool is warm, so a forwarded attack would
    # travel on an established connection
    assert gw.get("/warm").status == 200
    return gw, py


def head(*lines, first=b"POST / HTTP/1.1", host=b"Host: t"):
    out = [first] + ([host] if host else []) + list(lines)
    return b"\r\n".join(out) + b"\r\n\r\n"


HEAD_ATTACKS = {
    "cl_then_te": head(b"Content-Length: 6", b"Transfer-Encoding: chunked") + b"0\r\n\r\nX",
    "te_then_cl": head(b"Transfer-Encoding: chunked", b"Content-Length: 6") + b"0\r\n\r\nX",
    "cl_te_smuggle": head(b"Content-Length: 40", b"Transfer-Encoding: chunked") + b"0\r\n\r\n" + SMUGGLED,
    "two_different_cl": head(b"Content-Length: 3", b"Content-Length: 5") + b"abcde",
    "cl_list": head(b"Content-Length: 3, 5") + b"abcde",
    "te_xchunked": head(b"Transfer-Encoding: xchunked") + b"0\r\n\r\n",
    "te_space_before_colon": head(b"Transfer-Encoding : chunked") + b"0\r\n\r\n",
    "te_obs_folded": head(b"X-A: b", b" Transfer-Encoding: chunked") + b"0\r\n\r\n",
    "te_chunked_then_identity": head(b"Transfer-Encoding: chunked, identity") + b"0\r\n\r\n",
    "te_chunked_not_last": head(b"Transfer-Encoding: chunked, gzip") + b"0\r\n\r\n",
    "te_chunked_twice": head(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked") + b"0\r\n\r\n",
    "te_vertical_tab": head(b"Transfer-Encoding:\x0bchunked") + b"0\r\n\r\n",
    "te_quoted": head(b'Transfer-Encoding: "chunked"') + b"0\r\n\r\n",
    "te_nul": head(b"Transfer-Encoding: chunked\x00") + b"0\r\n\r\n",
    "cl_plus": head(b"Content-Length: +5") + b"abcde",
    "cl_negative": head(b"Content-Length: -1") + b"abcde",
    "cl_hex": head(b"Content-Length: 0x5") + b"abcde",
    "cl_overflow": head(b"Content-Length: 184467440737095516160") + b"abcde",
    "cl_two_numbers": head(b"Content-Length: 1 2") + b"abcde",
    "cl_space_before_colon": head(b"Content-Length : 5") + b"abcde",
    "bare_lf_head": b"POST / HTTP/1.1\nHost: t\nContent-Length: 5\n\nabcde",
    "bare_lf_one_line": b"GET / HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n",
    "bare_cr_in_value": head(b"X-A: a\rb", first=b"GET / HTTP/1.1"),
    "nul_in_value": head(b"X-A: a\x00b", first=b"GET / HTTP/1.1"),
    "obs_fold": head(b"X-A: a", b" b", first=b"GET / HTTP/1.1"),
    "obs_fold_tab": head(b"X-A: a", b"\tb", first=b"GET / HTTP/1.1"),
    "two_hosts": head(b"Host: other", first=b"GET / HTTP/1.1"),
    "no_host_http11": head(first=b"GET / HTTP/1.1", host=None),
    "space_in_target": head(first=b"GET /a b HTTP/1.1"),
    "tab_in_request_line": head(first=b"GET\t/ HTTP/1.1"),
    "bad_header_name": head(b"X(y): 1", first=b"GET / HTTP/1.1"),
    "high_byte_header_name": head(b"X\xff: 1", first=b"GET / HTTP/1.1"),
    "empty_header_name": head(b": 1", first=b"GET / HTTP/1.1"),
    "leading_whitespace_first_header": b"GET / HTTP/1.1\r\n Host: t\r\n\r\n",
}


@pytest.mark.parametrize("name", list(HEAD_ATTACKS))
def test_ambiguous_request_framing_never_reaches_the_upstream(sm, name):
    gw, py = sm
    before_requests, before_garbage = py.count(include_health=True), len(py.garbage)
    with HttpConn(gw.port) as conn:
        conn.send(HEAD_ATTACKS[name])
        resp = conn.read_response("POST")
        allowed = (400, 413, 501) if name == "cl_overflow" else (400, 501)
        assert resp.status in allowed, f"{name}: {resp!r}"
        assert_problem(resp, resp.status)
        rest = conn.read_until_eof(CLOSE_TIMEOUT)
        assert b"HTTP/1.1" not in rest, f"{name}: a second response after the refusal: {rest[:300]!r}"
    time.sleep(0.05)
    got = py.received(include_health=True)[before_requests:]
    assert not got, f"{name}: the upstream received {[(r['method'], r['target']) for r in got]}"
    assert len(py.garbage) == before_garbage, f"{name}: the upstream received bytes {py.garbage[before_garbage:]}"


CHUNKED = head(b"Transfer-Encoding: chunked")

BODY_ATTACKS = {
    "chunk_size_bad_char": CHUNKED + b"5x\r\nabcde\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_size_overflow": CHUNKED + b"fffffffffffffffff1\r\nabcde\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_size_negative": CHUNKED + b"-1\r\nabcde\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_lf_only": CHUNKED + b"5\nabcde\n0\n\n" + SMUGGLED,
    "chunk_data_longer_than_size": CHUNKED + b"3\r\nabcde\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_ext_bare_cr": CHUNKED + b"5;a\rb\r\nabcde\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_size_leading_space": CHUNKED + b" 5\r\nabcde\r\n0\r\n\r\n" + SMUGGLED,
    "last_chunk_bad_trailer": CHUNKED + b"0\r\nX-T: a\rb\r\n\r\n" + SMUGGLED,
}


@pytest.mark.parametrize("name", list(BODY_ATTACKS))
def test_broken_chunked_body_never_smuggles_a_request(sm, name):
    gw, py = sm
    with HttpConn(gw.port) as conn:
        conn.send(BODY_ATTACKS[name])
        data = conn.read_until_eof(CLOSE_TIMEOUT)
    time.sleep(0.1)
    assert data.startswith(b"HTTP/1.1 400") or data.startswith(b"HTTP/1.1 502") or data == b"", (
        f"{name}: answer {data[:300]!r}"
    )
    assert data.count(b"HTTP/1.1 ") <= 1, f"{name}: more than one response: {data[:600]!r}"
    smuggled = [r for r in py.received(include_health=True) if "smuggled" in r["target"]]
    assert not smuggled, f"{name}: the smuggled request reached the upstream"
    assert not [g for g in py.garbage if b"smuggled" in g], f"{name}: the smuggled bytes reached the upstream"


# (An unknown coding alone, "Transfer-Encoding: xchunked", is not in this list: RFC 9112 section
# 6.3 makes such a response body close-delimited, which is not ambiguous.)
@pytest.mark.parametrize("kind", ["cl_te", "te_cl", "two_cl", "cl_list", "te_chunked_twice", "cl_sign",
                                  "cl_space_colon", "obs_fold", "bare_lf"])
def test_ambiguous_upstream_response_is_502_and_the_connection_closed(sm, kind):
    gw, py = sm
    resp = gw.get(f"/bad/{kind}")
    assert_problem(resp, 502)
    [rec] = [r for r in py.received() if r["target"] == f"/bad/{kind}"][-1:]
    wait_until(lambda: rec["conn"] in py.closed_by_peer, CLOSE_TIMEOUT,
               what=f"the gateway closing the upstream connection that sent /bad/{kind}")
    after = gw.get("/after")
    assert after.status == 200, after
