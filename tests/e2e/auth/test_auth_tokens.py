"""Discovery, JWKS, the access token's claims and signature, `agora token`, forged and foreign
tokens at the gateway and directly at the service, and `agora keys rotate`."""

import time

import pytest
from authclient import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    HAVE_CRYPTOGRAPHY,
    PREFIX,
    forge_token,
    jwt_parts,
    jwt_verify_es256,
)

JWKS = "/.well-known/jwks.json"
DISCOVERY = "/.well-known/openid-configuration"


def _jwks(client, direct=False):
    r = client.call("GET", JWKS, direct=direct)
    assert r.status == 200, r
    return r


def _key(jwks_body, kid):
    for k in jwks_body["keys"]:
        if k.get("kid") == kid:
            return k
    return None


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_discovery(client, platform, direct):
    r = client.call("GET", DISCOVERY, direct=direct)
    assert r.status == 200, r
    d = r.body
    assert d["issuer"] == platform.issuer
    assert d["jwks_uri"] == platform.issuer + JWKS
    assert isinstance(d["token_endpoint"], str) and d["token_endpoint"].startswith(platform.issuer), d
    assert d["grant_types_supported"] == ["password", "refresh_token"]
    assert d["id_token_signing_alg_values_supported"] == ["ES256"]
    assert d["response_types_supported"] == ["token"]
    assert d["subject_types_supported"] == ["public"]


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_jwks(client, direct):
    r = _jwks(client, direct)
    assert r.header("Cache-Control") == "public, max-age=300", r.header("Cache-Control")
    keys = r.body["keys"]
    assert len(keys) >= 1
    kids = [k["kid"] for k in keys]
    assert len(kids) == len(set(kids)), kids
    for k in keys:
        assert k["kty"] == "EC" and k["crv"] == "P-256", k
        assert k.get("alg", "ES256") == "ES256" and k.get("use", "sig") == "sig", k
        for private in ("d", "p", "q", "dp", "dq", "qi"):
            assert private not in k, f"the JWKS publishes private member {private}: {k}"


def test_access_token_claims_and_signature(client, platform):
    s = client.new_user()
    header, claims = jwt_parts(s["access"])
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt" and header.get("kid"), header
    assert claims["sub"] == s["user"]["id"]
    assert claims["iss"] == platform.issuer
    aud = claims["aud"]
    assert aud == "agora" or (isinstance(aud, list) and "agora" in aud), aud
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 900, claims
    assert abs(claims["iat"] - time.time()) < 300, "iat is not the current time"
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16, claims
    assert claims["roles"] == ["customer"]
    assert claims["tenant"] == "default"
    other = client.login(s["email"], s["password"])["access_token"]
    assert jwt_parts(other)[1]["jti"] != claims["jti"], "two tokens share a jti"
    key = _key(_jwks(client).body, header["kid"])
    assert key is not None, f"the token's kid {header['kid']} is not in the JWKS"
    if HAVE_CRYPTOGRAPHY:
        assert jwt_verify_es256(s["access"], key), "the access token's signature does not verify with the JWKS key"


def _admin_only(client, token, direct):
    return client.call("GET", f"{PREFIX}/users?per_page=1", token=token, direct=direct)


def _claims_like(platform, admin, **over):
    now = int(time.time())
    claims = {
        "iss": platform.issuer,
        "aud": "agora",
        "sub": admin["id"],
        "tenant": "default",
        "roles": ["admin", "customer"],
        "iat": now,
        "exp": now + 600,
        "jti": "forged-" + str(now),
    }
    claims.update(over)
    return claims


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_role_enforcement(client, platform, admin, direct):
    """No token 401, forged 401, other issuer 401, alg none 401, customer 403, admin 200."""
    assert _admin_only(client, None, direct).status == 401
    kid = jwt_parts(admin["access"])[0]["kid"]
    forged = forge_token({"alg": "ES256", "typ": "at+jwt", "kid": kid}, _claims_like(platform, admin))
    r = _admin_only(client, forged, direct)
    assert r.status == 401, r
    _, payload, _ = admin["access"].split(".")
    none_head = forge_token({"alg": "none", "typ": "at+jwt", "kid": kid}, jwt_parts(admin["access"])[1]).split(".")[0]
    assert _admin_only(client, f"{none_head}.{payload}.", direct).status == 401
    customer = client.new_user()
    r = _admin_only(client, customer["access"], direct)
    assert r.status == 403, r
    # the customer's real header and signature on a payload that grants admin: refused
    c_head, _, c_sig = customer["access"].split(".")
    escalated = jwt_parts(customer["access"])[1]
    escalated["roles"] = ["admin", "customer"]
    escalated_payload = forge_token({"alg": "ES256"}, escalated).split(".")[1]
    assert _admin_only(client, f"{c_head}.{escalated_payload}.{c_sig}", direct).status == 401
    r = _admin_only(client, admin["access"], direct)
    assert r.status == 200, r


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_agora_token_cli(client, platform, admin, direct):
    cp = platform.agora(
        "token", "--user", admin["id"], "--roles", "admin", "--keys", platform.keys_dir, "--issuer", platform.issuer
    )
    token = cp.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token, cp.stdout
    header, claims = jwt_parts(token)
    assert claims["sub"] == admin["id"] and claims["iss"] == platform.issuer and claims["roles"] == ["admin"], claims
    assert header["alg"] == "ES256"
    r = _admin_only(client, token, direct)
    assert r.status == 200, r
    # the same key, but an issuer nobody trusts: refused
    cp = platform.agora(
        "token", "--user", admin["id"], "--roles", "admin", "--keys", platform.keys_dir, "--issuer", "http://evil.example"
    )
    r = _admin_only(client, cp.stdout.strip(), direct)
    assert r.status == 401, r
    # a customer-only dev token is still a customer
    cp = platform.agora(
        "token", "--user", admin["id"], "--roles", "customer", "--keys", platform.keys_dir, "--issuer", platform.issuer
    )
    assert _admin_only(client, cp.stdout.strip(), direct).status == 403


def test_keys_rotate(client, platform):
    s = client.new_user()
    old_token = s["access"]
    old_kid = jwt_parts(old_token)[0]["kid"]
    cp = platform.agora("keys", "rotate", "--keys", platform.keys_dir)
    new_kid = cp.stdout.strip().split()[-1] if cp.stdout.strip() else ""
    assert new_kid and new_kid != old_kid, cp.stdout
    # the service notices the new state within a second or so: poll, bounded
    deadline = time.monotonic() + 20
    while True:
        tokens = client.login(s["email"], s["password"])
        kid = jwt_parts(tokens["access_token"])[0]["kid"]
        if kid != old_kid or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert kid == new_kid, f"logins still sign with {kid} after rotating to {new_kid}"
    jwks = _jwks(client).body
    assert _key(jwks, new_kid) is not None and _key(jwks, old_kid) is not None, jwks
    for token in (tokens["access_token"], old_token):
        for direct in (False, True):
            r = client.me(token, direct=direct)
            assert r.status == 200 and r.body["id"] == s["user"]["id"], (direct, r)
    if HAVE_CRYPTOGRAPHY:
        assert jwt_verify_es256(tokens["access_token"], _key(jwks, new_kid))
    # the admin can still log in and act
    admin_tokens = client.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert _admin_only(client, admin_tokens["access_token"], False).status == 200
