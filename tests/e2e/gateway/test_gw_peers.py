"""The real peers themselves, without the gateway: Redis answers, the OIDC provider issues JWT
access tokens with the claims the gateway tests rely on, and mint.js signs what it is told."""

import time

from gwtest import IDENTITIES, MINT_ISSUER, jwt_parts


def test_redis_answers(redis_server):
    redis_server.flush()
    assert redis_server.command("SET", "k", "v") == b"+OK"
    assert redis_server.command("DBSIZE") == b":1"
    redis_server.flush()


def test_redis_stop_and_start(start_redis):
    r = start_redis()
    r.stop()
    r.start()
    assert r.command("PING") == b"+PONG"


def test_oidc_issues_jwt_access_tokens_with_roles_and_tenant(oidc):
    assert oidc.discovery["jwks_uri"].startswith(oidc.issuer + "/")
    jwks = oidc.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [oidc.kid]
    assert jwks["keys"][0]["kty"] == "EC" and jwks["keys"][0]["crv"] == "P-256"
    for client, who in IDENTITIES.items():
        header, claims = jwt_parts(oidc.token(client))
        assert header["alg"] == "ES256" and header["kid"] == oidc.kid, header
        assert claims["iss"] == oidc.issuer and claims["aud"] == "agora" and claims["sub"] == client, claims
        assert claims["roles"] == who["roles"] and claims["tenant"] == who["tenant"], claims
        assert claims["exp"] > time.time() > claims["iat"] - 5, claims


def test_oidc_rs256(oidc_rs256):
    header, claims = jwt_parts(oidc_rs256.token("alice"))
    assert header["alg"] == "RS256" and header["kid"] == oidc_rs256.kid
    assert oidc_rs256.jwks()["keys"][0]["kty"] == "RSA"


def test_oidc_restart_with_a_new_kid(start_oidc):
    p = start_oidc(kid="first")
    port = p.port
    assert jwt_parts(p.token("bob"))[0]["kid"] == "first"
    p.restart("second")
    assert p.port == port
    assert jwt_parts(p.token("bob"))[0]["kid"] == "second"
    assert [k["kid"] for k in p.jwks()["keys"]] == ["second"]


def test_minter_signs_as_told(minter):
    tok = minter.token(sub="zed")
    header, claims = jwt_parts(tok)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": "es-a"}
    assert claims["iss"] == MINT_ISSUER and claims["sub"] == "zed"
    none = minter.sign_many([{"header": {"alg": "none"}, "payload": {"sub": "x"}}])[0]
    assert none.endswith(".")
