"""CORS per route (preflight answered at the gateway, actual requests decorated) and security
headers on every response, the gateway's own errors included."""

import pytest

from gwtest import (
    MINT_ISSUER,
    HttpConn,
    gateway_config,
    refused_port,
    request,
    tokens_of,
    upstream_of,
)

ORIGIN = "https://shop.example"
SECURITY = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


@pytest.fixture(scope="module")
def ch(module_stack, minter):
    py = module_stack.py()
    cors = {"origins": [ORIGIN], "methods": ["GET", "POST"], "headers": ["Authorization", "Content-Type"],
            "expose": ["X-Request-Id", "X-Upstream-Port"], "max_age_s": 600, "credentials": True}
    cfg = gateway_config(
        {"py": upstream_of(py.port), "dead": upstream_of(refused_port(), retries={"attempts": 1},
                                                          breaker={"enabled": False})},
        [
            {"name": "cors", "match": {"path": "/cors", "prefix": True, "methods": ["GET", "POST"]}, "upstream": "py",
             "cors": cors},
            {"name": "plain", "match": {"path": "/plain", "prefix": True}, "upstream": "py", "strip_prefix": "/plain"},
            {"name": "get_only", "match": {"path": "/get-only", "methods": ["GET"]}, "upstream": "py"},
            {"name": "secure", "match": {"path": "/secure", "prefix": True}, "upstream": "py", "auth": "required"},
            {"name": "limited", "match": {"path": "/limited", "prefix": True}, "upstream": "py",
             "rate_limit": {"key": "ip", "rate": 1, "per": "1m", "burst": 1}},
            {"name": "small", "match": {"path": "/small", "prefix": True}, "upstream": "py", "max_body_bytes": 10},
            {"name": "dead", "match": {"path": "/dead", "prefix": True}, "upstream": "dead"},
            {"name": "slow", "match": {"path": "/slow", "prefix": True}, "upstream": "py", "timeout_ms": 200,
             "strip_prefix": "/slow"},
        ],
        auth={"issuers": [{"issuer": MINT_ISSUER, "jwks_file": minter.jwks_path, "audiences": ["agora"],
                           "algorithms": ["ES256"]}]},
        limits={"max_header_bytes": 16384},
    )
    return module_stack.gateway(cfg), py


def lower(resp):
    out = {}
    for k, v in resp.headers:
        out.setdefault(k.lower(), []).append(v)
    return out


def preflight(gw, origin=ORIGIN, method="POST", req_headers="content-type, authorization", target="/cors/x"):
    hs = [f"Origin: {origin}", f"Access-Control-Request-Method: {method}"]
    if req_headers:
        hs.append(f"Access-Control-Request-Headers: {req_headers}")
    return gw.fetch("OPTIONS", target, hs)


# ---------------------------------------------------------------------------------------------
# CORS
# ---------------------------------------------------------------------------------------------


def test_preflight_answered_at_the_gateway(ch):
    gw, py = ch
    before = py.count()
    resp = preflight(gw)
    assert resp.status in (200, 204), resp
    h = lower(resp)
    assert h.get("access-control-allow-origin") == [ORIGIN], h
    assert "post" in tokens_of(",".join(h.get("access-control-allow-methods", []))), h
    assert {"content-type", "authorization"} <= tokens_of(",".join(h.get("access-control-allow-headers", []))), h
    assert h.get("access-control-max-age") == ["600"], h
    assert h.get("access-control-allow-credentials") == ["true"], h
    assert "origin" in tokens_of(",".join(h.get("vary", []))), f"no Vary: Origin on the preflight: {h}"
    assert py.count() == before, "the preflight reached the upstream"


@pytest.mark.parametrize("origin, method, req_headers", [
    ("https://evil.example", "POST", "content-type"),
    ("https://shop.example.evil.example", "GET", None),
    ("http://shop.example", "GET", None),
    ("null", "GET", None),
])
def test_preflight_from_another_origin_is_not_allowed(ch, origin, method, req_headers):
    gw, py = ch
    resp = preflight(gw, origin, method, req_headers)
    h = lower(resp)
    assert "access-control-allow-origin" not in h, f"{origin} allowed: {h}"


def test_preflight_for_a_method_not_allowed(ch):
    gw, _ = ch
    resp = preflight(gw, method="DELETE", req_headers=None)
    h = lower(resp)
    allowed = tokens_of(",".join(h.get("access-control-allow-methods", [])))
    assert "access-control-allow-origin" not in h or "delete" not in allowed, h


def test_preflight_for_a_header_not_allowed(ch):
    gw, _ = ch
    resp = preflight(gw, req_headers="x-evil")
    h = lower(resp)
    allowed = tokens_of(",".join(h.get("access-control-allow-headers", [])))
    assert "access-control-allow-origin" not in h or "x-evil" not in allowed, h


def test_actual_request_from_the_allowed_origin(ch):
    gw, _ = ch
    resp = gw.get("/cors/x", [f"Origin: {ORIGIN}"])
    assert resp.status == 200, resp
    h = lower(resp)
    assert h.get("access-control-allow-origin") == [ORIGIN], h
    assert h.get("access-control-allow-credentials") == ["true"], h
    assert {"x-request-id", "x-upstream-port"} <= tokens_of(",".join(h.get("access-control-expose-headers", []))), h
    assert "origin" in tokens_of(",".join(h.get("vary", []))), h


def test_actual_request_from_another_origin_or_without_origin(ch):
    gw, _ = ch
    for headers in (["Origin: https://evil.example"], []):
        resp = gw.get("/cors/x", headers)
        assert resp.status == 200, resp
        assert "access-control-allow-origin" not in lower(resp), (headers, resp.headers)


def test_route_without_cors_sends_no_cors_headers(ch):
    gw, _ = ch
    resp = gw.get("/plain", [f"Origin: {ORIGIN}"])
    assert resp.status == 200
    assert not [k for k in lower(resp) if k.startswith("access-control-")], resp.headers


# ---------------------------------------------------------------------------------------------
# Security headers
# ---------------------------------------------------------------------------------------------


def assert_security_headers(resp, what):
    h = lower(resp)
    for name, value in SECURITY.items():
        assert h.get(name) == [value], f"{what}: {name} is {h.get(name)} (expected [{value!r}]); {resp.headers}"
    assert "strict-transport-security" not in h, f"{what}: HSTS over plain HTTP: {resp.headers}"


def raw(gw, data, method="GET"):
    with HttpConn(gw.port) as conn:
        conn.send(data)
        return conn.read_response(method)


CASES = {
    "200 proxied": lambda gw: gw.get("/plain"),
    "404 no route": lambda gw: gw.get("/nowhere"),
    "405 method": lambda gw: gw.fetch("DELETE", "/get-only"),
    "401 no token": lambda gw: gw.get("/secure"),
    "413 body": lambda gw: gw.fetch("POST", "/small", body=b"x" * 100),
    "431 headers": lambda gw: gw.get("/plain", ["X-Big: " + "b" * 20000]),
    "414 line": lambda gw: gw.get("/" + "a" * 10000),
    "400 bad request": lambda gw: raw(gw, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    "502 refused": lambda gw: gw.get("/dead"),
    "504 timeout": lambda gw: gw.get("/slow/delay/2000"),
    "preflight": lambda gw: preflight(gw),
    "upstream 500": lambda gw: gw.get("/plain/status/500"),
    "413 global limit": lambda gw: raw(gw, request("POST", "/plain", ["Content-Length: 20000000"]), "POST"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_security_headers_on_every_response(ch, case):
    gw, _ = ch
    resp = CASES[case](gw)
    expect = case.split()[0]
    if expect.isdigit():
        assert resp.status == int(expect), f"{case}: {resp!r}"
    assert_security_headers(resp, case)


def test_security_headers_on_429(ch):
    gw, _ = ch
    first = gw.get("/limited")
    second = gw.get("/limited")
    assert (first.status, second.status) == (200, 429), (first, second)
    assert_security_headers(second, "429")


def test_csp_on_html_only_and_upstream_csp_kept(ch):
    gw, _ = ch
    resp = gw.get("/plain/html")
    assert resp.status == 200
    csp = resp.all("Content-Security-Policy")
    assert csp == ["default-src 'self'; frame-ancestors 'none'; base-uri 'none'"], resp.headers
    own = gw.get("/plain/html-csp").all("Content-Security-Policy")
    assert own == ["default-src 'none'"], f"the upstream's own CSP was not kept alone: {own}"


def test_security_headers_from_the_configuration(start_gateway, py_upstream):
    gw = start_gateway(gateway_config(
        {"u": upstream_of(py_upstream.port)},
        [{"name": "r", "match": {"path": "/", "prefix": True}, "upstream": "u"}],
        security_headers={"frame_options": "SAMEORIGIN", "referrer_policy": "strict-origin",
                          "content_security_policy": "default-src 'none'"},
    ))
    for resp in (gw.get("/html"), gw.fetch("OPTIONS", "/x", ["Origin: https://a.example",
                                                                 "Access-Control-Request-Method: GET"])):
        h = lower(resp)
        assert h.get("x-frame-options") == ["SAMEORIGIN"] and h.get("referrer-policy") == ["strict-origin"], h
    assert lower(gw.get("/html")).get("content-security-policy") == ["default-src 'none'"]
