"""Configuration refused at start (exit 2, `file:line: key.path: problem` on stderr, nothing
served), ${VAR:-default} expansion, and the admin endpoints."""

import json
import os
import re

import pytest

from gwtest import gateway_config, run_gateway_expecting_exit, upstream_of

BASE = """listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
workers: 1
upstreams:
  u:
    targets: [ { address: "127.0.0.1:9", weight: 1 } ]
    timeout_ms: 1000
routes:
  - name: r
    match: { path: /x, methods: [GET] }
    upstream: u
"""


def with_line(n, text, base=BASE):
    """BASE with line n (1-based) replaced by text."""
    lines = base.split("\n")
    lines[n - 1] = text
    return "\n".join(lines)


def appended(text):
    return BASE + text + "\n"


BAD = {
    # name: (configuration, line, key path)
    "unknown_top_key": (appended("colour: red"), 12, "colour"),
    "unknown_nested_key": (with_line(10, "    match: { path: /x, hots: a }"), 10, "routes[0].match.hots"),
    "unknown_upstream_key": (with_line(7, "    timeout: 1000"), 7, "upstreams.u.timeout"),
    "wrong_type_workers": (with_line(3, "workers: many"), 3, "workers"),
    "wrong_type_duration": (with_line(7, "    timeout_ms: soon"), 7, "upstreams.u.timeout_ms"),
    "wrong_type_list": (with_line(6, "    targets: 127.0.0.1:9"), 6, "upstreams.u.targets"),
    "out_of_range_weight": (with_line(6, '    targets: [ { address: "127.0.0.1:9", weight: 0 } ]'), 6, "weight"),
    "missing_upstream": (with_line(11, "    upstream: nope"), 11, "routes[0].upstream"),
    "bad_balance": (with_line(7, "    timeout_ms: 1000\n    balance: fastest"), 8, "upstreams.u.balance"),
    "hmac_algorithm": (
        appended("auth:\n  issuers:\n    - issuer: https://x.test\n      jwks_file: /dev/null\n      algorithms: [HS256]"),
        16, "auth.issuers[0].algorithms",
    ),
    "bad_listen": (with_line(1, "listen: nowhere"), 1, "listen"),
    "bad_rate_limit_store": (appended("rate_limit_store: postgres://x"), 12, "rate_limit_store"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_configuration_exits_2_with_file_line_and_key(name):
    text, line, key = BAD[name]
    code, out, err, path = run_gateway_expecting_exit(text)
    assert code == 2, f"{name}: exit {code}; stderr={err!r}"
    m = re.search(rf"{re.escape(path)}:(\d+): ([^:]+):", err)
    assert m, f"{name}: no 'file:line: key.path:' on stderr: {err!r}"
    assert int(m.group(1)) == line, f"{name}: line {m.group(1)} (expected {line}): {err!r}"
    assert key in m.group(2), f"{name}: key path {m.group(2)!r} (expected {key!r}): {err!r}"
    assert '"listening"' not in out, f"{name}: it listened: {out!r}"


def test_yaml_syntax_error_exits_2_with_file_and_line():
    code, out, err, path = run_gateway_expecting_exit(BASE + "oops: [1, 2\n")
    assert code == 2, err
    assert re.search(rf"{re.escape(path)}:\d+:", err), err


def test_missing_required_key():
    text = BASE.replace("    match: { path: /x, methods: [GET] }\n", "")
    code, out, err, path = run_gateway_expecting_exit(text)
    assert code == 2, err
    assert re.search(rf"{re.escape(path)}:\d+: routes\[0\]", err) and "match" in err, err


def test_duplicate_key_is_refused():
    code, out, err, path = run_gateway_expecting_exit(BASE + "workers: 2\n")
    assert code == 2, f"a key given twice was accepted (exit {code}): {err!r}"
    assert re.search(rf"{re.escape(path)}:12: workers", err), err


def test_missing_file_and_bad_usage_exit_2():
    code, _, err, _ = run_gateway_expecting_exit("", args=["-c", "/nonexistent/agora-gateway.yaml"])
    assert code == 2 and "/nonexistent/agora-gateway.yaml" in err, (code, err)
    code, _, err, _ = run_gateway_expecting_exit("", args=["--no-such-option"])
    assert code == 2, (code, err)
    code, _, err, _ = run_gateway_expecting_exit("", args=[])
    assert code == 2, (code, err)


def test_environment_variables_with_defaults(start_gateway, py_upstream):
    text = BASE.replace("listen: 127.0.0.1:0\n", "listen: ${AGORA_E2E_UNSET_LISTEN:-127.0.0.1:0}\n", 1)
    text = text.replace('address: "127.0.0.1:9"', 'address: "${AGORA_E2E_TARGET}"')
    env = dict(os.environ, AGORA_E2E_TARGET=f"127.0.0.1:{py_upstream.port}")
    gw = start_gateway(text, env=env)
    resp = gw.get("/x")
    assert resp.status == 200 and resp.json()["port"] == py_upstream.port, resp


# ---------------------------------------------------------------------------------------------
# Admin endpoints
# ---------------------------------------------------------------------------------------------


def test_admin_endpoints(start_gateway, py_upstream):
    gw = start_gateway(gateway_config(
        {"u": upstream_of(py_upstream.port)},
        [{"name": "things", "match": {"path": "/things", "prefix": True}, "upstream": "u"}],
    ))
    assert gw.get("/things/1").status == 200
    assert gw.get("/nothing").status == 404
    assert gw.admin("GET", "/healthz").status == 200
    assert gw.admin("GET", "/readyz").status == 200
    routes = gw.admin("GET", "/routes")
    assert routes.status == 200 and "things" in json.dumps(json.loads(routes.body)), routes
    m = gw.admin("GET", "/metrics")
    assert m.status == 200 and m.header("Content-Type").startswith("text/plain"), m
    text = m.body.decode()
    lines = [l for l in text.splitlines() if l.startswith("agora_gateway_requests_total") and 'route="things"' in l]
    assert lines and any(float(l.split()[-1]) >= 1 for l in lines), f"no request counted for route things: {lines}"
    assert "agora_gateway_request_duration_seconds" in text
    assert gw.admin("GET", "/nope").status == 404
