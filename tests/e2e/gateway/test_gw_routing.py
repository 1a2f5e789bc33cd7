"""Routing: host (exact, *.suffix, *), methods, exact and prefix paths on a segment boundary,
{param} templates, most specific wins, strip_prefix, 404/405 as problem+json with Allow.

Every route has an upstream of its own (a PyUpstream), so the port in the answer says which
route took the request, whatever the gateway rewrote.
"""

import pytest

from gwtest import MINT_ISSUER, assert_problem, gateway_config, tokens_of, upstream_of

ROUTES = [
    ("exact", {"path": "/exact"}),
    ("prefix_api", {"path": "/api", "prefix": True}),
    ("deeper", {"path": "/api/v1/users", "prefix": True}),
    ("template", {"path": "/api/v1/users/{id}/orders"}),
    ("items_literal", {"path": "/items/special"}),
    ("items_template", {"path": "/items/{id}"}),
    ("host_exact", {"host": "shop.example", "path": "/host"}),
    ("host_wild", {"host": "*.example.com", "path": "/host"}),
    ("host_any", {"host": "*", "path": "/host"}),
    ("methods", {"path": "/m", "methods": ["GET", "POST"]}),
    ("multi_get", {"path": "/multi", "methods": ["GET"]}),
    ("multi_delete", {"path": "/multi", "methods": ["DELETE"]}),
    ("strip", {"path": "/svc/v1/hello", "prefix": True}),
    ("rewrite", {"path": "/old", "prefix": True}),
    ("open", {"path": "/open", "prefix": True}),
    ("secret", {"path": "/secret", "prefix": True}),
]


@pytest.fixture(scope="module")
def rt(module_stack, minter):
    ups = {name: module_stack.py() for name, _ in ROUTES}
    routes = []
    for name, match in ROUTES:
        r = {"name": name, "match": match, "upstream": name}
        if name == "strip":
            r["strip_prefix"] = "/svc/v1"
        if name == "rewrite":
            r["strip_prefix"] = "/old"
            r["add_prefix"] = "/new/v2"
        if name == "secret":
            r["auth"] = "required"
        routes.append(r)
    cfg = gateway_config(
        {name: upstream_of(up.port) for name, up in ups.items()},
        routes,
        auth={"issuers": [{"issuer": MINT_ISSUER, "jwks_file": minter.jwks_path, "audiences": ["agora"],
                           "algorithms": ["ES256"]}]},
    )
    gw = module_stack.gateway(cfg)
    port_to_route = {up.port: name for name, up in ups.items()}

    class R:
        pass

    r = R()
    r.gw, r.ups, r.port_to_route = gw, ups, port_to_route

    def route_of(method, target, headers=(), host="test"):
        resp = gw.fetch(method, target, headers, host=host)
        assert resp.status == 200, f"{method} {target} (Host {host}): {resp!r}"
        return port_to_route[resp.json()["port"]], resp.json()

    r.route_of = route_of
    return r


@pytest.mark.parametrize(
    "target, route",
    [
        ("/exact", "exact"),
        ("/exact?q=1", "exact"),
        ("/api", "prefix_api"),
        ("/api/", "prefix_api"),
        ("/api/x/y", "prefix_api"),
        ("/api/v1", "prefix_api"),
        ("/api/v1/users", "deeper"),
        ("/api/v1/users/42", "deeper"),
        ("/api/v1/users/42/orders", "template"),
        ("/api/v1/users/42/orders/7", "deeper"),
        ("/items/special", "items_literal"),
        ("/items/123", "items_template"),
        ("/svc/v1/hello/x", "strip"),
    ],
)
def test_path_routing_most_specific_wins(rt, target, route):
    got, _ = rt.route_of("GET", target)
    assert got == route, f"GET {target} went to route {got}, expected {route}"


@pytest.mark.parametrize("target", ["/exact/more", "/exactly", "/apix", "/api-v2", "/items", "/items/a/b", "/nothing", "/"])
def test_no_route_is_404_problem(rt, target):
    resp = rt.gw.get(target)
    assert_problem(resp, 404)


def test_prefix_matches_on_a_segment_boundary_only(rt):
    # /api is a prefix route: /apix and /api-v2 are not below it (404 above); /api/x is.
    assert rt.route_of("GET", "/api/x")[0] == "prefix_api"
    assert rt.gw.get("/apix").status == 404


@pytest.mark.parametrize(
    "host, route",
    [
        ("shop.example", "host_exact"),
        ("SHOP.Example", "host_exact"),
        ("shop.example:8080", "host_exact"),
        ("a.example.com", "host_wild"),
        ("api.example.com:443", "host_wild"),
        ("example.com", "host_any"),
        ("other.test", "host_any"),
        ("shop.example.org", "host_any"),
    ],
)
def test_host_routing(rt, host, route):
    got, _ = rt.route_of("GET", "/host", host=host)
    assert got == route, f"Host {host} went to {got}, expected {route}"


def test_absolute_form_target_routes_by_its_own_host(rt):
    """RFC 9112 3.2.2: with an absolute-form target the Host field is ignored; routing on the
    Host while the target names another host would let the two disagree. Refusing is fine."""
    from gwtest import HttpConn
    with HttpConn(rt.gw.port) as conn:
        conn.send(b"GET http://shop.example/host HTTP/1.1\r\nHost: other.test\r\n\r\n")
        resp = conn.read_response()
    if resp.status == 200:
        route = rt.port_to_route[resp.json()["port"]]
        seen = {k.lower(): v for k, v in resp.json()["headers"]}
        assert route == "host_exact", (
            f"absolute-form http://shop.example/host with Host: other.test routed as {route} (by the Host field); "
            f"upstream got target {resp.json()['target']!r}, Host {seen.get('host')!r}"
        )
        assert resp.json()["target"] == "/host", resp.json()
    else:
        assert resp.status == 400, resp


def test_method_not_allowed_is_405_problem_with_allow(rt):
    resp = rt.gw.fetch("PUT", "/m", body=b"x")
    assert_problem(resp, 405)
    allow = tokens_of(resp.header("Allow"))
    assert {"get", "post"} <= allow and "put" not in allow, resp
    assert rt.ups["methods"].count() == 0 or all(r["method"] != "PUT" for r in rt.ups["methods"].received())


def test_head_goes_with_get(rt):
    resp = rt.gw.fetch("HEAD", "/m")
    assert resp.status == 200, resp
    assert rt.ups["methods"].received()[-1]["method"] == "HEAD"


def test_same_path_different_methods(rt):
    assert rt.route_of("GET", "/multi")[0] == "multi_get"
    assert rt.route_of("DELETE", "/multi")[0] == "multi_delete"
    resp = rt.gw.fetch("PATCH", "/multi", body=b"{}")
    assert_problem(resp, 405)
    allow = tokens_of(resp.header("Allow"))
    assert {"get", "delete"} <= allow and "patch" not in allow, resp


def test_strip_prefix_and_query_pass(rt):
    _, doc = rt.route_of("GET", "/svc/v1/hello/x?a=1&b=%20")
    assert doc["target"] == "/hello/x?a=1&b=%20", doc


def test_strip_and_add_prefix(rt):
    assert rt.route_of("GET", "/old/items/7?x=1")[1]["target"] == "/new/v2/items/7?x=1"
    assert rt.route_of("GET", "/old")[1]["target"] in ("/new/v2", "/new/v2/")


def test_path_passed_unchanged(rt):
    _, doc = rt.route_of("GET", "/api/a%20b/caf%C3%A9?x=%41&y=/z")
    assert doc["target"] == "/api/a%20b/caf%C3%A9?x=%41&y=/z", doc


@pytest.mark.parametrize(
    "target",
    ["/open/../secret", "/open/..%2fsecret", "/open/%2e%2e/secret", "/open/./../secret/x", "/open/x/../../secret"],
)
def test_dot_segments_cannot_escape_a_public_route(rt, target):
    """/open is public, /secret needs a token. A path that resolves to /secret must not reach an
    upstream through the public route: refused (400), or routed as /secret (401), are both safe;
    the /open upstream receiving dot segments (which it, or a server behind it, may resolve to
    /secret) is not, nor is the /open upstream receiving /secret."""
    before_open = rt.ups["open"].count()
    before_secret = rt.ups["secret"].count()
    resp = rt.gw.get(target)
    got_open = [r["target"] for r in rt.ups["open"].received()[before_open:]]
    for t in got_open:
        low = t.lower()
        assert t == "/open" or t.startswith("/open/") or t.startswith("/open?"), (
            f"GET {target}: the public route's upstream received {t!r} (status {resp.status})"
        )
        assert not any(bad in low for bad in ("/..", "%2e%2e", "%2e.", ".%2e", "..%2f", "..%5c")), (
            f"GET {target}: the public route's upstream received dot segments {t!r} (status {resp.status})"
        )
    assert rt.ups["secret"].count() == before_secret, f"GET {target} reached the secret upstream without a token"


def test_routes_admin_endpoint_lists_routes(rt):
    resp = rt.gw.admin("GET", "/routes")
    assert resp.status == 200, resp
    assert resp.header("Content-Type").startswith("application/json"), resp
    text = resp.body.decode()
    for name, _ in ROUTES:
        assert f'"{name}"' in text, f"route {name} missing from /routes: {text[:2000]}"


def test_admin_endpoints_are_not_on_the_public_port(rt):
    for target in ("/metrics", "/healthz", "/readyz", "/routes", "/reload"):
        resp = rt.gw.get(target)
        assert resp.status == 404, f"GET {target} on the public port: {resp!r}"
    resp = rt.gw.fetch("POST", "/reload")
    assert resp.status in (404, 405), resp
