"""JWT auth at the gateway, against a real OIDC provider (oidc-provider, JWKS over http) and a
second issuer whose keys are in a jwks_file written by mint.js, which also signs every hostile
token: each refusal class -> 401 with WWW-Authenticate, a missing role -> 403, and a valid token ->
X-User-Id / X-User-Roles / X-Tenant-Id upstream (client-supplied ones never pass)."""

import json
import time

import pytest

from gwtest import (
    MINT_ISSUER,
    assert_problem,
    b64url,
    gateway_config,
    jwt_parts,
    seen_headers,
    upstream_of,
    wait_until,
)

ES_ONLY_ISSUER = "https://mint-es-only.test"


def issuers(oidc, minter):
    return [
        {"issuer": oidc.issuer, "jwks_uri": oidc.jwks_uri, "audiences": ["agora"], "algorithms": ["ES256", "RS256"]},
        {"issuer": MINT_ISSUER, "jwks_file": minter.jwks_path, "audiences": ["agora"], "algorithms": ["ES256", "RS256"]},
        {"issuer": ES_ONLY_ISSUER, "jwks_file": minter.jwks_path, "audiences": ["agora"], "algorithms": ["ES256"]},
    ]


@pytest.fixture(scope="module")
def au(module_stack, oidc, minter):
    py = module_stack.py()
    cfg = gateway_config(
        {"py": upstream_of(py.port)},
        [
            {"name": "secure", "match": {"path": "/secure", "prefix": True}, "upstream": "py", "auth": "required"},
            {"name": "admin", "match": {"path": "/admin", "prefix": True}, "upstream": "py", "auth": "required",
             "roles": ["admin"]},
            {"name": "editors", "match": {"path": "/editors", "prefix": True}, "upstream": "py", "auth": "required",
             "roles": ["editor", "auditor"]},
            {"name": "opt", "match": {"path": "/opt", "prefix": True}, "upstream": "py", "auth": "optional"},
            {"name": "open", "match": {"path": "/open", "prefix": True}, "upstream": "py", "auth": "none"},
        ],
        auth={"issuers": issuers(oidc, minter)},
    )
    gw = module_stack.gateway(cfg)
    return gw, py


def bearer(token):
    return [f"Authorization: Bearer {token}"]


def assert_401(au, resp, token_sent=True):
    assert_problem(resp, 401)
    www = resp.header("WWW-Authenticate")
    assert www and www.split()[0].lower() == "bearer", f"WWW-Authenticate {www!r}: {resp!r}"
    if token_sent:
        assert 'error="invalid_token"' in www, f"WWW-Authenticate for a bad token lacks error=\"invalid_token\": {www!r}"


def refused_upstream(au, target, headers, token_sent=True):
    gw, py = au
    before = py.count()
    resp = gw.get(target, headers)
    assert_401(au, resp, token_sent)
    assert py.count() == before, f"a refused request reached the upstream: {py.received()[before:]}"
    return resp


# ---------------------------------------------------------------------------------------------
# Tokens from the real provider
# ---------------------------------------------------------------------------------------------


def test_no_token_is_401_with_bearer_challenge(au):
    refused_upstream(au, "/secure", [], token_sent=False)


@pytest.mark.parametrize("value", ["Basic YWxpY2U6eA==", "Bearer", "Bearer ", "Token abc", "Bearer a b"])
def test_other_schemes_and_empty_bearer_are_401(au, value):
    refused_upstream(au, "/secure", [f"Authorization: {value}"], token_sent=False)


def test_provider_token_accepted_and_identity_passed_upstream(au, oidc):
    gw, py = au
    for client, roles, tenant in (("alice", ["admin"], "acme"), ("carol", ["viewer", "editor"], "globex")):
        resp = gw.get("/secure/me", bearer(oidc.token(client)))
        assert resp.status == 200, f"{client}: {resp!r}"
        seen = seen_headers(resp)
        assert seen.get("x-user-id") == [client], seen
        assert seen.get("x-tenant-id") == [tenant], seen
        got_roles = [r.strip() for v in seen.get("x-user-roles", []) for r in v.split(",") if r.strip()]
        assert got_roles == roles, f"X-User-Roles {seen.get('x-user-roles')} for roles {roles}"


def test_user_without_roles(au, oidc):
    gw, py = au
    resp = gw.get("/secure/me", bearer(oidc.token("bob")))
    assert resp.status == 200, resp
    seen = seen_headers(resp)
    assert seen.get("x-user-id") == ["bob"], seen
    assert seen.get("x-user-roles", [""]) == [""], seen


def test_lower_case_scheme_accepted(au, oidc):
    gw, _ = au
    assert gw.get("/secure", [f"Authorization: bearer {oidc.token('alice')}"]).status == 200


def test_forged_identity_headers_replaced_by_the_token_claims(au, oidc):
    gw, _ = au
    resp = gw.get("/secure/me", bearer(oidc.token("bob")) + [
        "X-User-Id: alice", "X-User-Roles: admin", "X-Tenant-Id: globex", "X-User-Email: x@y.z"])
    assert resp.status == 200, resp
    seen = seen_headers(resp)
    assert seen.get("x-user-id") == ["bob"], seen
    assert "admin" not in ",".join(seen.get("x-user-roles", [])), seen
    assert seen.get("x-tenant-id") == ["acme"], seen
    assert "x-user-email" not in seen, seen


def test_roles_any_of(au, oidc):
    gw, py = au
    assert gw.get("/admin", bearer(oidc.token("alice"))).status == 200
    assert gw.get("/editors", bearer(oidc.token("carol"))).status == 200
    for target, client in (("/admin", "bob"), ("/admin", "carol"), ("/editors", "alice"), ("/editors", "bob")):
        before = py.count()
        resp = gw.get(target, bearer(oidc.token(client)))
        assert_problem(resp, 403)
        assert py.count() == before, f"{client} on {target} reached the upstream"


def test_optional_route(au, oidc):
    gw, py = au
    resp = gw.get("/opt")
    assert resp.status == 200, resp
    seen = seen_headers(resp)
    assert not [k for k in seen if k.startswith("x-user-") or k == "x-tenant-id"], seen
    resp = gw.get("/opt", bearer(oidc.token("carol")))
    assert resp.status == 200 and seen_headers(resp).get("x-user-id") == ["carol"], resp
    refused_upstream(au, "/opt", bearer("not.a.token"))


def test_route_without_auth_ignores_tokens_and_strips_identity(au):
    gw, _ = au
    resp = gw.get("/open", bearer("garbage") + ["X-User-Id: root"])
    assert resp.status == 200, resp
    seen = seen_headers(resp)
    assert "x-user-id" not in seen, seen


def test_access_log_user_id(au, oidc):
    gw, _ = au
    rid = "auth-log-alice"
    assert gw.get("/secure", bearer(oidc.token("alice")) + [f"X-Request-Id: {rid}"]).status == 200
    [rec] = gw.wait_access(lambda r: r.get("request_id") == rid)
    assert rec["user_id"] == "alice", rec


# ---------------------------------------------------------------------------------------------
# Tokens made by mint.js: controls that pass, and every refusal class
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minted(minter, oidc):
    now = int(time.time())

    def claims(**over):
        c = minter.claims(sub="mallory", roles=["admin"], tenant="acme")
        c.update(over)
        return {k: v for k, v in c.items() if v is not None}

    es = {"alg": "ES256", "typ": "JWT", "kid": "es-a"}
    rs = {"alg": "RS256", "typ": "JWT", "kid": "rs-a"}
    specs = {
        # controls (accepted)
        "ok_es256": (es, claims(), "es-a", None),
        "ok_rs256": (rs, claims(), "rs-a", None),
        "ok_aud_list": (es, claims(aud=["other", "agora"]), "es-a", None),
        "ok_es_only_issuer": (es, claims(iss=ES_ONLY_ISSUER), "es-a", None),
        # refusals
        "alg_none": ({"alg": "none", "typ": "JWT"}, claims(), None, None),
        "alg_none_with_kid": ({"alg": "none", "kid": "es-a"}, claims(), None, None),
        "alg_None_mixed_case": ({"alg": "None", "kid": "es-a"}, claims(), None, None),
        "hs256_with_ec_public_key": ({"alg": "HS256", "typ": "JWT", "kid": "es-a"}, claims(), None, "es-a"),
        "hs256_with_rsa_public_key": ({"alg": "HS256", "typ": "JWT", "kid": "rs-a"}, claims(), None, "rs-a"),
        "hs256_no_kid_rsa_public_key": ({"alg": "HS256", "typ": "JWT"}, claims(), None, "rs-a"),
        "unknown_kid": ({"alg": "ES256", "kid": "nope"}, claims(), "es-other", None),
        "bad_signature": (es, claims(), "es-other", None),
        "bad_signature_no_kid": ({"alg": "ES256"}, claims(), "es-other", None),
        "rs256_header_ec_kid": ({"alg": "RS256", "kid": "es-a"}, claims(), "rs-a", None),
        "es256_header_rsa_kid": ({"alg": "ES256", "kid": "rs-a"}, claims(), "es-a", None),
        "ps256_not_configured": ({"alg": "PS256", "kid": "rs-a"}, claims(), "rs-a", None),
        "expired": (es, claims(iat=now - 7200, exp=now - 3600), "es-a", None),
        "not_yet_valid": (es, claims(nbf=now + 3600), "es-a", None),
        "wrong_issuer": (es, claims(iss="https://evil.test"), "es-a", None),
        "provider_issuer_with_mint_key": (es, claims(iss=oidc.issuer), "es-a", None),
        "wrong_audience": (es, claims(aud="other"), "es-a", None),
        "audience_list_without_agora": (es, claims(aud=["other", "agora2"]), "es-a", None),
        "no_audience": (es, claims(aud=None), "es-a", None),
        "rs256_on_es256_only_issuer": (rs, claims(iss=ES_ONLY_ISSUER), "rs-a", None),
        "oversized_valid_signature": (es, claims(pad="x" * 9000), "es-a", None),
    }
    names = list(specs)
    tokens = minter.sign_many([
        {"header": h, "payload": p, "key": k, "secret_pub": s} for h, p, k, s in specs.values()
    ])
    out = dict(zip(names, tokens))
    # A valid token whose payload was changed afterwards (more roles), signature kept.
    h, p, s = out["ok_es256"].split(".")
    forged = dict(claims(), roles=["admin", "root"])
    out["tampered_payload"] = f"{h}.{b64url(json.dumps(forged).encode())}.{s}"
    # A signature that is valid but DER-encoded rather than JOSE's r||s is not decoded here:
    # malformed shapes follow.
    out["malformed_one_part"] = "abc"
    out["malformed_two_parts"] = f"{h}.{p}"
    out["malformed_four_parts"] = f"{h}.{p}.{s}.x"
    out["malformed_bad_base64"] = "!!!.@@@.###"
    out["malformed_header_not_json"] = f"{b64url(b'not json')}.{p}.{s}"
    out["malformed_payload_not_json"] = f"{h}.{b64url(b'[1,2')}.{s}"
    out["malformed_empty_parts"] = ".."
    out["malformed_padding_chars"] = f"{h}=.{p}.{s}"
    return out


CONTROLS = ["ok_es256", "ok_rs256", "ok_aud_list", "ok_es_only_issuer"]
REFUSALS = [
    "alg_none", "alg_none_with_kid", "alg_None_mixed_case", "hs256_with_ec_public_key", "hs256_with_rsa_public_key",
    "hs256_no_kid_rsa_public_key", "unknown_kid", "bad_signature", "bad_signature_no_kid", "rs256_header_ec_kid",
    "es256_header_rsa_kid", "ps256_not_configured", "expired", "not_yet_valid", "wrong_issuer",
    "provider_issuer_with_mint_key", "wrong_audience", "audience_list_without_agora", "no_audience",
    "rs256_on_es256_only_issuer", "oversized_valid_signature", "tampered_payload", "malformed_one_part",
    "malformed_two_parts", "malformed_four_parts", "malformed_bad_base64", "malformed_header_not_json",
    "malformed_payload_not_json", "malformed_empty_parts", "malformed_padding_chars",
]


@pytest.mark.parametrize("name", CONTROLS)
def test_minted_control_tokens_accepted(au, minted, name):
    gw, _ = au
    resp = gw.get("/admin/x", bearer(minted[name]))
    assert resp.status == 200, f"{name}: {resp!r}"
    assert seen_headers(resp).get("x-user-id") == ["mallory"], resp


@pytest.mark.parametrize("name", REFUSALS)
def test_hostile_token_is_401(au, minted, name):
    token = minted[name]
    if name == "oversized_valid_signature":
        assert len(token) > 8192
    refused_upstream(au, "/secure/x", bearer(token))
    # the same token on an optional route is refused too (a bad token is never "no token")
    refused_upstream(au, "/opt/x", bearer(token))


def test_jwt_failures_counted_in_metrics(au, minted):
    gw, _ = au
    gw.get("/secure", bearer(minted["expired"]))
    lines = [l for l in gw.metrics().splitlines() if not l.startswith("#") and "jwt" in l.lower()]
    assert lines, "no JWT failure metric in /metrics"


def test_two_authorization_headers_are_refused(au, minter):
    """Two bearer tokens (bob's, then alice's): the gateway verifies one, while a service behind
    it may read the other; an ambiguous credential must be refused, not passed on."""
    gw, py = au
    bob, alice = minter.token(sub="bob", roles=[]), minter.token(sub="alice", roles=["admin"])
    before = py.count()
    resp = gw.get("/secure", [f"Authorization: Bearer {bob}", f"Authorization: Bearer {alice}"])
    assert resp.status in (400, 401), f"two Authorization fields: {resp!r}"
    assert py.count() == before


# ---------------------------------------------------------------------------------------------
# RS256 provider, key rotation, provider down
# ---------------------------------------------------------------------------------------------


def one_issuer_gateway(start_gateway, py, provider, **issuer_over):
    iss = {"issuer": provider.issuer, "jwks_uri": provider.jwks_uri, "audiences": ["agora"], "algorithms": ["ES256", "RS256"]}
    iss.update(issuer_over)
    return start_gateway(gateway_config(
        {"py": upstream_of(py.port)},
        [{"name": "secure", "match": {"path": "/", "prefix": True}, "upstream": "py", "auth": "required"}],
        auth={"issuers": [iss]},
    ))


def test_rs256_provider_token_accepted(start_gateway, py_upstream, oidc_rs256):
    gw = one_issuer_gateway(start_gateway, py_upstream, oidc_rs256)
    tok = oidc_rs256.token("carol")
    assert jwt_parts(tok)[0]["alg"] == "RS256"
    resp = gw.get("/x", bearer(tok))
    assert resp.status == 200 and seen_headers(resp).get("x-user-id") == ["carol"], resp


def test_key_rotation_unknown_kid_fetches_the_new_jwks(start_gateway, py_upstream, start_oidc):
    p = start_oidc(kid="rot-1")
    gw = one_issuer_gateway(start_gateway, py_upstream, p)  # refresh_interval_ms: the default (minutes)
    assert gw.get("/x", bearer(p.token("alice"))).status == 200
    p.restart("rot-2")
    new = p.token("alice")
    assert jwt_parts(new)[0]["kid"] == "rot-2"
    statuses = []

    def accepted():
        statuses.append(gw.get("/x", bearer(new)).status)
        return statuses[-1] == 200

    wait_until(accepted, 20, interval=0.5, what="acceptance of a token signed with the rotated key")
    assert statuses[0] == 200 or set(statuses[:-1]) == {401}, statuses


def test_last_good_keys_kept_while_the_provider_is_down(start_gateway, py_upstream, start_oidc):
    p = start_oidc()
    gw = one_issuer_gateway(start_gateway, py_upstream, p, refresh_interval_ms=1000)
    first, second = p.token("alice"), p.token("bob")
    assert gw.get("/x", bearer(first)).status == 200
    p.stop()
    time.sleep(2.5)  # at least two failed refreshes
    resp = gw.get("/x", bearer(second))  # not cached yet: verified with the kept keys
    assert resp.status == 200, f"a valid token was refused while the JWKS endpoint was down: {resp!r}"
    assert gw.admin("GET", "/healthz").status == 200


def test_jwks_refreshed_in_the_background(start_gateway, start_py_upstream, minter):
    jw, py = start_py_upstream(), start_py_upstream()
    with open(minter.jwks_path, "rb") as f:
        jw.files["/jwks.json"] = ("application/json", f.read())
    gw = start_gateway(gateway_config(
        {"py": upstream_of(py.port)},
        [{"name": "s", "match": {"path": "/", "prefix": True}, "upstream": "py", "auth": "required"}],
        auth={"issuers": [{"issuer": MINT_ISSUER, "jwks_uri": f"http://127.0.0.1:{jw.port}/jwks.json",
                           "audiences": ["agora"], "algorithms": ["ES256"], "refresh_interval_ms": 1000}]},
    ))
    fetches = lambda: len([r for r in jw.received() if r["target"] == "/jwks.json"])  # noqa: E731
    wait_until(lambda: fetches() >= 1, 10, what="the JWKS fetch at start")
    assert gw.get("/x", bearer(minter.token())).status == 200
    n0 = fetches()
    wait_until(lambda: fetches() >= n0 + 2, 15, what="two background JWKS refreshes (refresh_interval_ms 1000)")


def test_unknown_kid_refetch_is_rate_limited(start_gateway, start_py_upstream, minter):
    """The JWKS first holds only es-a; then rs-a is added (a rotation). Requests with a token
    under kid rs-a, every 0.2 s, are refused until the gateway fetches the set again on the
    unknown kid; it must, and only a few times however many such requests it refused."""
    jw, py = start_py_upstream(), start_py_upstream()
    with open(minter.jwks_path, "rb") as f:
        full = json.loads(f.read())
    only_es = {"keys": [k for k in full["keys"] if k["kid"] == "es-a"]}
    jw.files["/jwks.json"] = ("application/json", json.dumps(only_es).encode())
    gw = start_gateway(gateway_config(
        {"py": upstream_of(py.port)},
        [{"name": "s", "match": {"path": "/", "prefix": True}, "upstream": "py", "auth": "required"}],
        auth={"issuers": [{"issuer": MINT_ISSUER, "jwks_uri": f"http://127.0.0.1:{jw.port}/jwks.json",
                           "audiences": ["agora"], "algorithms": ["ES256", "RS256"]}]},
    ))
    fetches = lambda: len([r for r in jw.received() if r["target"] == "/jwks.json"])  # noqa: E731
    wait_until(lambda: fetches() >= 1, 10, what="the JWKS fetch at start")
    n0 = fetches()
    rs_token = minter.token(alg="RS256", kid="rs-a")
    assert gw.get("/x", bearer(rs_token)).status == 401
    jw.files["/jwks.json"] = ("application/json", json.dumps(full).encode())
    statuses = []

    def accepted():
        statuses.append(gw.get("/x", bearer(rs_token)).status)
        return statuses[-1] == 200

    wait_until(accepted, 25, interval=0.2, what="acceptance after the JWKS gained the token's kid")
    extra = fetches() - n0
    assert set(statuses[:-1]) <= {401}, statuses
    assert 1 <= extra <= 3, f"{extra} JWKS fetches for {len(statuses) + 1} requests with an unknown kid"


def test_cached_token_is_refused_once_expired(start_gateway, py_upstream, minter):
    """A verified token is cached, but never past its exp (clock_skew_s 0 here)."""
    gw = start_gateway(gateway_config(
        {"py": upstream_of(py_upstream.port)},
        [{"name": "s", "match": {"path": "/", "prefix": True}, "upstream": "py", "auth": "required"}],
        auth={"issuers": [{"issuer": MINT_ISSUER, "jwks_file": minter.jwks_path, "audiences": ["agora"],
                           "algorithms": ["ES256"], "clock_skew_s": 0}]},
    ))
    token = minter.token(ttl=2)
    assert gw.get("/x", bearer(token)).status == 200
    assert gw.get("/x", bearer(token)).status == 200  # from the cache
    exp = jwt_parts(token)[1]["exp"]
    time.sleep(max(0.0, exp - time.time()) + 1.2)
    before = py_upstream.count()
    resp = gw.get("/x", bearer(token))
    assert_401(None, resp)
    assert py_upstream.count() == before, "an expired (cached) token reached the upstream"


def test_cached_token_still_checked_for_roles(au, minter):
    gw, py = au
    token = minter.token(sub="dave", roles=["viewer"])
    assert gw.get("/secure", bearer(token)).status == 200
    before = py.count()
    assert_problem(gw.get("/admin", bearer(token)), 403)
    assert gw.get("/editors", bearer(token)).status == 403
    assert py.count() == before
