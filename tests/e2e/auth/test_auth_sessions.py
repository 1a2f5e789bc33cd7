"""Login, lockout, refresh rotation and the reuse attack, logout, /me, password change and reset."""

import concurrent.futures

import pytest
from authclient import PREFIX, jwt_parts, strong_password, unique_email

LOGIN = f"{PREFIX}/login"
REFRESH = f"{PREFIX}/refresh"
LOGOUT = f"{PREFIX}/logout"
PASSWORD = f"{PREFIX}/password"
RESET = f"{PREFIX}/password-reset"
CONFIRM = f"{PREFIX}/password-reset/confirm"


def _problem_core(body):
    return {k: body.get(k) for k in ("type", "title", "status", "detail")}


def _assert_pair(body):
    assert body["token_type"] == "Bearer", body
    assert body["expires_in"] == 900, body
    assert isinstance(body["access_token"], str) and body["access_token"].count(".") == 2, body
    assert isinstance(body["refresh_token"], str) and len(body["refresh_token"]) >= 32, body
    assert body["refresh_token"] != body["access_token"]


def _refresh(client, token):
    return client.call("POST", REFRESH, json={"refresh_token": token})


# ---- login ----


def test_login_success(client):
    user, email, password = client.register()
    r = client.call("POST", LOGIN, json={"email": email, "password": password})
    assert r.status == 200, r
    _assert_pair(r.body)
    header, claims = jwt_parts(r.body["access_token"])
    assert claims["sub"] == user["id"]
    me = client.me(r.body["access_token"])
    assert me.status == 200 and me.body["id"] == user["id"], me
    # two logins are two sessions: different tokens
    again = client.login(email, password)
    assert again["refresh_token"] != r.body["refresh_token"]
    assert again["access_token"] != r.body["access_token"]


def test_login_unknown_and_wrong_password_look_the_same(client):
    _, email, _ = client.register()
    wrong = client.call("POST", LOGIN, json={"email": email, "password": strong_password()})
    unknown = client.call("POST", LOGIN, json={"email": unique_email("nobody"), "password": strong_password()})
    assert wrong.status == 401 and unknown.status == 401, (wrong, unknown)
    assert _problem_core(wrong.body) == _problem_core(unknown.body), (wrong.body, unknown.body)
    assert email not in str(wrong.body)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"email": "a@example.com"}, "password"),
        ({"password": "pw-0123456789abc"}, "email"),
        ({"email": 7, "password": "pw-0123456789abc"}, "email"),
        ({"email": "a@example.com", "password": ["x"]}, "password"),
        ({}, None),
    ],
    ids=["no password", "no email", "email number", "password array", "empty"],
)
def test_login_shape_422(client, body, field):
    r = client.call("POST", LOGIN, json=body)
    assert r.status == 422, r
    fields = {e["field"] for e in r.body.get("errors", [])}
    assert r.body.get("errors"), r.body
    if field:
        assert field in fields, r.body


@pytest.mark.parametrize(
    "email",
    ["a" + "\u00e9" * 200 + "@example.com", "\u00e9" * 300, "\u4e2d" * 100 + "@example.com"],
    ids=["odd cut in a 2-byte char", "2-byte chars only", "3-byte chars"],
)
def test_login_long_unicode_email_401(client, email):
    """An address over 254 bytes is cut to key the lockout; never inside a UTF-8 character
    (PostgreSQL refused the text: 500)."""
    r = client.call("POST", LOGIN, json={"email": email, "password": strong_password()}, direct=True)
    assert r.status == 401, r


def test_login_malformed_and_not_json(client):
    assert client.call("POST", LOGIN, raw=b'{"email":').status == 400
    r = client.call("POST", LOGIN, raw=b'{"email":"a@b.io","password":"x"}', headers={"Content-Type": "text/plain"})
    assert r.status == 415, r


def test_login_disabled_user(client, admin):
    user, email, password = client.register()
    tokens = client.login(email, password)
    r = client.call("PATCH", f"{PREFIX}/users/{user['id']}", json={"disabled": True}, token=admin["access"])
    assert r.status == 200 and r.body["disabled"] is True, r
    refused = client.call("POST", LOGIN, json={"email": email, "password": password})
    assert refused.status == 401, refused
    wrong = client.call("POST", LOGIN, json={"email": unique_email("nobody"), "password": password})
    assert _problem_core(refused.body) == _problem_core(wrong.body), "a disabled account must not be told apart"
    assert _refresh(client, tokens["refresh_token"]).status == 401
    r = client.call("PATCH", f"{PREFIX}/users/{user['id']}", json={"disabled": False}, token=admin["access"])
    assert r.status == 200 and r.body["disabled"] is False, r
    client.login(email, password)


# ---- lockout ----


def _assert_locked(r):
    assert r.status == 429, r
    retry = r.header("Retry-After")
    assert retry is not None and retry.isdigit(), f"Retry-After: {retry!r}"
    assert 1 <= int(retry) <= 900, retry


def test_lockout_known_email(client):
    _, email, password = client.register()
    variants = [email, email.upper(), email, email.upper(), email]  # one account, normalised
    for i, variant in enumerate(variants):
        r = client.call("POST", LOGIN, json={"email": variant, "password": strong_password()})
        assert r.status == 401, f"failure {i + 1}: {r}"
    _assert_locked(client.call("POST", LOGIN, json={"email": email, "password": strong_password()}))
    # the right password does not open it either
    _assert_locked(client.call("POST", LOGIN, json={"email": email, "password": password}))
    _assert_locked(client.call("POST", LOGIN, json={"email": email.upper(), "password": password}))
    # another account is not affected
    _, other, other_password = client.register()
    client.login(other, other_password)


def test_lockout_unknown_email(client):
    email = unique_email("ghost")
    for i in range(5):
        r = client.call("POST", LOGIN, json={"email": email, "password": strong_password()})
        assert r.status == 401, f"failure {i + 1}: {r}"
    _assert_locked(client.call("POST", LOGIN, json={"email": email, "password": strong_password()}))
    # registering the address now does not lift the lock (failures count per e-mail)
    _, _, password = client.register(email=email)
    _assert_locked(client.call("POST", LOGIN, json={"email": email, "password": password}))


def test_lockout_holds_under_concurrent_guesses(client):
    """Guesses sent at once (more than the service has workers) try at most 5 passwords: an
    attempt counts before its password is checked, not after."""
    _, email, password = client.register()

    def guess(_):
        return client.call("POST", LOGIN, json={"email": email, "password": strong_password()}, direct=True)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(guess, range(16)))
    statuses = sorted(r.status for r in replies)
    assert statuses == [401] * 5 + [429] * 11, statuses
    _assert_locked(client.call("POST", LOGIN, json={"email": email, "password": password}))


def test_login_disabled_user_counts_as_failure(client, admin):
    """A disabled account's right password is refused like a wrong one and counts the same."""
    s = client.new_user()
    r = client.call("PATCH", f"{PREFIX}/users/{s['user']['id']}", json={"disabled": True}, token=admin["access"])
    assert r.status == 200, r
    for i in range(5):
        r = client.call("POST", LOGIN, json={"email": s["email"], "password": s["password"]})
        assert r.status == 401, f"attempt {i + 1}: {r}"
    _assert_locked(client.call("POST", LOGIN, json={"email": s["email"], "password": s["password"]}))


# ---- refresh ----


def test_refresh_race_one_winner(client):
    """One refresh token presented several times at once: exactly one new pair, and since the
    others are reuse, the winner's token is revoked with its family."""
    s = client.new_user()

    def present(_):
        return client.call("POST", REFRESH, json={"refresh_token": s["refresh"]}, direct=True)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(present, range(4)))
    wins = [r for r in replies if r.status == 200]
    assert len(wins) == 1 and all(r.status == 401 for r in replies if r.status != 200), [r.status for r in replies]
    assert _refresh(client, wins[0].body["refresh_token"]).status == 401


def test_refresh_rotates_and_spends(client):
    s = client.new_user()
    r = _refresh(client, s["refresh"])
    assert r.status == 200, r
    _assert_pair(r.body)
    assert r.body["refresh_token"] != s["refresh"]
    me = client.me(r.body["access_token"])
    assert me.status == 200 and me.body["id"] == s["user"]["id"], me
    # the new token can be spent in its turn
    r2 = _refresh(client, r.body["refresh_token"])
    assert r2.status == 200, r2


def test_refresh_reuse_revokes_the_family(client):
    s = client.new_user()
    other_session = client.login(s["email"], s["password"])  # a second family of the same user
    a = s["refresh"]
    r = _refresh(client, a)
    assert r.status == 200, r
    b = r.body["refresh_token"]
    replay = _refresh(client, a)  # the attacker replays the spent token
    assert replay.status == 401, replay
    after = _refresh(client, b)  # the whole family is revoked, so the newest token fails too
    assert after.status == 401, after
    assert _refresh(client, a).status == 401
    # the other family is not touched
    r = _refresh(client, other_session["refresh_token"])
    assert r.status == 200, r


@pytest.mark.parametrize(
    "token",
    ["", "not-a-token", "A" * 43, "x' OR '1'='1", "\u00e9" * 10],
    ids=["empty", "junk", "base64url-like", "sql", "unicode"],
)
def test_refresh_unknown_401(client, token):
    r = _refresh(client, token)
    if token == "":
        assert r.status in (401, 422), r  # an empty string may be refused as a shape error
    else:
        assert r.status == 401, r


def test_refresh_with_access_token_401(client):
    s = client.new_user()
    assert _refresh(client, s["access"]).status == 401


@pytest.mark.parametrize("body", [{}, {"refresh_token": 5}, {"refresh_token": None}], ids=["missing", "number", "null"])
def test_refresh_shape_422(client, body):
    r = client.call("POST", REFRESH, json=body)
    assert r.status == 422, r


# ---- logout ----


def test_logout_revokes_the_family(client):
    s = client.new_user()
    r = _refresh(client, s["refresh"])
    newest = r.body["refresh_token"]
    out = client.call("POST", LOGOUT, json={"refresh_token": newest})
    assert out.status == 204, out
    assert _refresh(client, newest).status == 401
    # logging out again, or with a token nobody issued, is still 204
    assert client.call("POST", LOGOUT, json={"refresh_token": newest}).status == 204
    assert client.call("POST", LOGOUT, json={"refresh_token": "never-issued-" + strong_password()}).status == 204


def test_logout_spent_token_revokes_the_family(client):
    s = client.new_user()
    b = _refresh(client, s["refresh"]).body["refresh_token"]
    assert client.call("POST", LOGOUT, json={"refresh_token": s["refresh"]}).status == 204
    assert _refresh(client, b).status == 401


@pytest.mark.parametrize("body", [{}, {"refresh_token": []}], ids=["missing", "array"])
def test_logout_shape_422(client, body):
    assert client.call("POST", LOGOUT, json=body).status == 422


# ---- /me ----


def test_me(client, admin):
    s = client.new_user(name="Me Myself")
    r = client.me(s["access"])
    assert r.status == 200, r
    me = r.body
    assert me["id"] == s["user"]["id"] and me["email"] == s["email"] and me["name"] == "Me Myself"
    assert me["roles"] == ["customer"]
    assert me["tenant"] == "default"
    assert me["permissions"] == sorted(set(me["permissions"])), me
    a = client.me(admin["access"]).body
    assert a["roles"] == sorted(a["roles"]) and {"admin", "customer"} <= set(a["roles"]), a
    assert a["permissions"] == sorted(set(a["permissions"])), a
    assert set(me["permissions"]) <= set(a["permissions"]), (me, a)
    assert len(a["permissions"]) > len(me["permissions"]), "admin has no permission a customer lacks"


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_me_refusals_401(client, direct):
    s = client.new_user()
    r = client.call("GET", f"{PREFIX}/me", direct=direct)
    assert r.status == 401, r
    assert client.call("GET", f"{PREFIX}/me", token="garbage", direct=direct).status == 401
    head, payload, sig = s["access"].split(".")
    tampered = f"{head}.{payload}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"
    assert client.call("GET", f"{PREFIX}/me", token=tampered, direct=direct).status == 401
    basic = client.call("GET", f"{PREFIX}/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}, direct=direct)
    assert basic.status == 401, basic
    # the refresh token is not an access token
    assert client.call("GET", f"{PREFIX}/me", token=s["refresh"], direct=direct).status == 401


# ---- password change ----


def test_password_change_revokes_every_session(client):
    s = client.new_user()
    second = client.login(s["email"], s["password"])
    new_password = strong_password()
    r = client.call("PUT", PASSWORD, json={"current_password": s["password"], "new_password": new_password}, token=s["access"])
    assert r.status == 204, r
    assert _refresh(client, s["refresh"]).status == 401
    assert _refresh(client, second["refresh_token"]).status == 401
    assert client.call("POST", LOGIN, json={"email": s["email"], "password": s["password"]}).status == 401
    client.login(s["email"], new_password)


def test_password_change_wrong_current_403(client):
    s = client.new_user()
    r = client.call("PUT", PASSWORD, json={"current_password": strong_password(), "new_password": strong_password()}, token=s["access"])
    assert r.status == 403, r
    detail = r.body.get("detail", "").lower()
    assert "current" in detail and "password" in detail, r.body
    client.login(s["email"], s["password"])  # unchanged
    assert _refresh(client, s["refresh"]).status == 200  # and nothing revoked


@pytest.mark.parametrize(
    "new_password",
    ["short", "1234567890", "é" * 9, "x" * 257, None],
    ids=["short", "common", "9 code points", "too long", "password = e-mail"],
)
def test_password_change_weak_422(client, new_password):
    s = client.new_user()
    new_password = s["email"] if new_password is None else new_password
    r = client.call("PUT", PASSWORD, json={"current_password": s["password"], "new_password": new_password}, token=s["access"])
    assert r.status == 422, r
    assert "new_password" in {e["field"] for e in r.body["errors"]}, r.body
    client.login(s["email"], s["password"])


def test_password_change_shape_and_auth(client):
    s = client.new_user()
    r = client.call("PUT", PASSWORD, json={"current_password": s["password"], "new_password": strong_password()})
    assert r.status == 401, r
    r = client.call("PUT", PASSWORD, json={"new_password": strong_password()}, token=s["access"])
    assert r.status == 422, r
    r = client.call(
        "PUT", PASSWORD, json={"current_password": s["password"], "new_password": strong_password(), "extra": 1}, token=s["access"]
    )
    assert r.status == 422, r
    client.login(s["email"], s["password"])


# ---- password reset ----


def test_password_reset_flow(client, platform):
    s = client.new_user()
    unknown = unique_email("nobody")
    r = client.call("POST", RESET, json={"email": unknown})
    assert r.status == 202, r
    r = client.call("POST", RESET, json={"email": s["email"].upper()})
    assert r.status == 202, r
    token = platform.reset_token(s["email"])
    assert all(rec.get("email", "").lower() != unknown for rec in platform.service_records() if rec.get("msg") == "password reset token")
    # four failures before the reset...
    for _ in range(4):
        assert client.call("POST", LOGIN, json={"email": s["email"], "password": strong_password()}).status == 401
    # a weak password is refused and does not spend the token
    r = client.call("POST", CONFIRM, json={"token": token, "new_password": "1234567890"})
    assert r.status == 422, r
    new_password = strong_password()
    r = client.call("POST", CONFIRM, json={"token": token, "new_password": new_password})
    assert r.status == 204, r
    # single use
    r = client.call("POST", CONFIRM, json={"token": token, "new_password": strong_password()})
    assert r.status == 400, r
    # sessions revoked
    assert _refresh(client, s["refresh"]).status == 401
    # ...were cleared: four more failures are still 401, not 429
    assert client.call("POST", LOGIN, json={"email": s["email"], "password": s["password"]}).status == 401
    for _ in range(3):
        assert client.call("POST", LOGIN, json={"email": s["email"], "password": strong_password()}).status == 401
    client.login(s["email"], new_password)


def test_password_reset_confirm_refusals(client):
    for token in ("unknown-token", "A" * 43, "x' OR 1=1 --"):
        r = client.call("POST", CONFIRM, json={"token": token, "new_password": strong_password()})
        assert r.status == 400, r
    for body in ({"token": "A" * 43}, {"new_password": strong_password()}, {"token": 1, "new_password": strong_password()}):
        r = client.call("POST", CONFIRM, json=body)
        assert r.status == 422, r


def test_password_reset_shape_422(client):
    for body in ({}, {"email": 5}, {"email": ["a@b.io"]}):
        r = client.call("POST", RESET, json=body)
        assert r.status == 422, r
