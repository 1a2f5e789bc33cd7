"""POST /api/v1/auth/register: the success shape and every refusal (bad input never writes).

Each refusal is a 4xx problem+json (never 500, checked by the client for every answer), and
after a refused register the e-mail is still free: the correct register then answers 201.
"""

import uuid

import pytest
from authclient import ADMIN_EMAIL, PREFIX, RFC3339_MS, UUID_RE, strong_password, unique_email

REGISTER = f"{PREFIX}/register"


def _error_fields(body):
    errors = body.get("errors")
    assert isinstance(errors, list) and errors, f"422 without errors[]: {body}"
    for e in errors:
        assert isinstance(e, dict) and isinstance(e.get("field"), str) and isinstance(e.get("message"), str), body
    return {e["field"] for e in errors}


def _assert_still_free(client, email):
    """No partial write: the refused e-mail registers now, and exactly once."""
    user, _, password = client.register(email=email)
    assert user["email"].lower() == email.lower()
    r = client.call("POST", REGISTER, json={"email": email, "password": strong_password(), "name": "again"})
    assert r.status == 409, r


def test_register_success_shape(client, admin):
    email = unique_email("shape")
    name = "Ada Lovelace"
    password = strong_password()
    r = client.call("POST", REGISTER, json={"email": email, "password": password, "name": name})
    assert r.status == 201, r
    user = r.body
    assert UUID_RE.match(user["id"]), user
    assert user["email"] == email
    assert user["name"] == name
    assert user["roles"] == ["customer"]
    assert RFC3339_MS.match(user["created_at"]), user
    assert RFC3339_MS.match(user["updated_at"]), user
    assert r.header("Location") == f"{PREFIX}/users/{user['id']}"
    text = str(user).lower()
    assert "password" not in text and "argon2" not in text, f"the user object leaks a secret: {user}"
    # the Location names the stored user
    got = client.call("GET", r.header("Location"), token=admin["access"])
    assert got.status == 200, got
    for key in ("id", "email", "name", "roles", "created_at"):
        assert got.body[key] == user[key], (key, got.body, user)
    assert got.body.get("disabled") is False
    # and the account works
    tokens = client.login(email, password)
    me = client.me(tokens["access_token"])
    assert me.status == 200 and me.body["id"] == user["id"], me


def test_register_email_case_insensitive(client):
    tag = uuid.uuid4().hex[:12]
    upper = f"Case-{tag.upper()}@X.io"
    lower = upper.lower()
    user, _, password = client.register(email=upper)
    r = client.call("POST", REGISTER, json={"email": lower, "password": strong_password(), "name": "twin"})
    assert r.status == 409, r
    r = client.call("POST", REGISTER, json={"email": upper, "password": strong_password(), "name": "twin"})
    assert r.status == 409, r
    # one account, reachable by any case
    for variant in (lower, upper, f"cASE-{tag}@x.IO"):
        tokens = client.login(variant, password)
        me = client.me(tokens["access_token"])
        assert me.body["id"] == user["id"], (variant, me.body, user)


def test_register_duplicate_changes_nothing(client, admin):
    user, email, password = client.register(name="original")
    r = client.call("POST", REGISTER, json={"email": email, "password": strong_password(), "name": "intruder"})
    assert r.status == 409, r
    got = client.call("GET", f"{PREFIX}/users/{user['id']}", token=admin["access"])
    assert got.body["name"] == "original", got
    client.login(email, password)  # the original password still works


# (what is wrong, body factory taking the e-mail, fields expected in errors[] or None)
INVALID_422 = [
    ("missing email", lambda e: {"password": strong_password(), "name": "n"}, "email"),
    ("missing password", lambda e: {"email": e, "name": "n"}, "password"),
    ("missing name", lambda e: {"email": e, "password": strong_password()}, "name"),
    ("empty object", lambda e: {}, None),
    ("unknown member role", lambda e: {"email": e, "password": strong_password(), "name": "n", "role": "admin"}, "role"),
    ("unknown member roles", lambda e: {"email": e, "password": strong_password(), "name": "n", "roles": ["admin"]}, "roles"),
    ("email is a number", lambda e: {"email": 5, "password": strong_password(), "name": "n"}, "email"),
    ("password is a number", lambda e: {"email": e, "password": 123456789012345, "name": "n"}, "password"),
    ("password is a boolean", lambda e: {"email": e, "password": True, "name": "n"}, "password"),
    ("name is null", lambda e: {"email": e, "password": strong_password(), "name": None}, "name"),
    ("name is an array", lambda e: {"email": e, "password": strong_password(), "name": ["n"]}, "name"),
    ("name is an object", lambda e: {"email": e, "password": strong_password(), "name": {"n": 1}}, "name"),
    ("password 9 chars", lambda e: {"email": e, "password": "abcdefghi", "name": "n"}, "password"),
    ("password 9 code points, 18 bytes", lambda e: {"email": e, "password": "é" * 9, "name": "n"}, "password"),
    ("password 257 chars", lambda e: {"email": e, "password": "x" * 257, "name": "n"}, "password"),
    ("common password", lambda e: {"email": e, "password": "1234567890", "name": "n"}, "password"),
    ("common password, other case", lambda e: {"email": e, "password": "QWERTYUIOP", "name": "n"}, "password"),
    ("password equals the e-mail", lambda e: {"email": e, "password": e, "name": "n"}, "password"),
    ("empty name", lambda e: {"email": e, "password": strong_password(), "name": ""}, "name"),
    ("name 101 code points", lambda e: {"email": e, "password": strong_password(), "name": "é" * 101}, "name"),
    ("name with BEL", lambda e: {"email": e, "password": strong_password(), "name": "ring\u0007bell"}, "name"),
    ("name with a newline", lambda e: {"email": e, "password": strong_password(), "name": "two\nlines"}, "name"),
    ("name with DEL", lambda e: {"email": e, "password": strong_password(), "name": "del\u007f"}, "name"),
    ("name with C1 control", lambda e: {"email": e, "password": strong_password(), "name": "c1\u0085"}, "name"),
    ("name with RLO U+202E", lambda e: {"email": e, "password": strong_password(), "name": "evil\u202etxt.exe"}, "name"),
    ("name with LRE U+202A", lambda e: {"email": e, "password": strong_password(), "name": "a\u202ab"}, "name"),
    ("name with LRI U+2066", lambda e: {"email": e, "password": strong_password(), "name": "a\u2066b"}, "name"),
    ("name with PDI U+2069", lambda e: {"email": e, "password": strong_password(), "name": "a\u2069b"}, "name"),
    ("name with ZWSP U+200B", lambda e: {"email": e, "password": strong_password(), "name": "a\u200bb"}, "name"),
    ("name with ZWJ U+200D", lambda e: {"email": e, "password": strong_password(), "name": "a\u200db"}, "name"),
    ("name with BOM U+FEFF", lambda e: {"email": e, "password": strong_password(), "name": "\ufeffname"}, "name"),
]


@pytest.mark.parametrize("what,make,field", INVALID_422, ids=[c[0] for c in INVALID_422])
def test_register_refused_422(client, what, make, field):
    email = unique_email("r422")
    r = client.call("POST", REGISTER, json=make(email))
    assert r.status == 422, f"{what}: {r.status} {r.body}"
    fields = _error_fields(r.body)
    if field is not None:
        assert field in fields, f"{what}: errors[] names {fields}, expected {field!r}"
    _assert_still_free(client, email)


BAD_EMAILS = [
    "no-at-sign.example.com",
    "trailing-at@",
    "@leading.example.com",
    "two@@example.com",
    "sp ace@example.com",
    "a@b@example.com",
    "",
    "x" * 300 + "@example.com",
    "ctl\u0001@example.com",
    "nl\n@example.com",
    "zw\u200bsp@example.com",
    "bidi\u202e@example.com",
    "bom\ufeff@example.com",
]


@pytest.mark.parametrize("email", BAD_EMAILS, ids=[repr(e)[:40] for e in BAD_EMAILS])
def test_register_bad_email(client, email):
    r = client.call("POST", REGISTER, json={"email": email, "password": strong_password(), "name": "n"})
    assert r.status == 422, r
    assert "email" in _error_fields(r.body)


def test_register_unicode_lookalike_of_admin(client, admin):
    """A homoglyph of the admin's e-mail is refused or becomes a distinct customer account."""
    local, domain = ADMIN_EMAIL.split("@")
    for trick in ("\uff45" + local[1:], "\u0435" + local[1:]):  # fullwidth e, Cyrillic e
        email = f"{trick}@{domain}"
        password = strong_password()
        r = client.call("POST", REGISTER, json={"email": email, "password": password, "name": "lookalike"})
        assert r.status in (201, 422), r
        if r.status == 201:
            assert r.body["id"] != admin["id"] and r.body["roles"] == ["customer"], r.body
            me = client.me(client.login(email, password)["access_token"])
            assert me.body["id"] == r.body["id"] and "admin" not in me.body["roles"], me.body
    # the real admin account is untouched, and its case variant is the same account
    r = client.call("POST", REGISTER, json={"email": ADMIN_EMAIL.upper(), "password": strong_password(), "name": "x"})
    assert r.status == 409, r


@pytest.mark.parametrize(
    "password",
    ["é" * 10, "x" * 256, "correct horse battery staple"],
    ids=["10 code points, 20 bytes", "256 chars", "passphrase with spaces"],
)
def test_register_password_bounds_accepted(client, password):
    user, email, _ = client.register(password=password)
    client.login(email, password)


@pytest.mark.parametrize(
    "name",
    [
        "é" * 100,
        "Robert'); DROP TABLE users;--",
        "\" OR 1=1 -- ",
        "100% _under_ \\back\\slash $1 ? :name",
        "名前 🦄 Ωmega",
        "x",
    ],
    ids=["100 code points", "sql quote", "sql or", "like and params", "unicode", "one char"],
)
def test_register_name_stored_verbatim(client, admin, name):
    user, email, password = client.register(name=name)
    assert user["name"] == name
    me = client.me(client.login(email, password)["access_token"])
    assert me.body["name"] == name, me.body
    got = client.call("GET", f"{PREFIX}/users/{user['id']}", token=admin["access"])
    assert got.body["name"] == name, got.body
    # the table is still there and whole
    assert client.call("GET", f"{PREFIX}/users?per_page=1", token=admin["access"]).status == 200


def test_register_sql_metacharacters_in_email(client):
    email = f"o'brien-{uuid.uuid4().hex[:10]}@e2e.example.com"
    password = strong_password()
    r = client.call("POST", REGISTER, json={"email": email, "password": password, "name": "O'Brien"})
    assert r.status in (201, 422), r
    if r.status == 201:
        assert r.body["email"] == email
        client.login(email, password)
        # a quote-injection login for another account does not log in
        r = client.call("POST", f"{PREFIX}/login", json={"email": "x' OR '1'='1", "password": password})
        assert r.status in (401, 422), r


# ---- refusals that are not field validation ----


def _raw(client, body, content_type="application/json", direct=False):
    headers = {"Content-Type": content_type}
    return client.call("POST", REGISTER, raw=body, headers=headers, direct=direct)


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_register_malformed_json(client, direct):
    email = unique_email("malformed")
    for body in (
        b'{"email": "' + email.encode() + b'", "password": ',
        b"{'email': 'single@quotes.io'}",
        b'{"email": "' + email.encode() + b'",}',
        b"",
        b"[]",
        b'"just a string"',
        b"null",
        b'{"email": "a@b.io", "email": "' + email.encode() + b'", "password": "pw-0123456789abc", "name": "n"}',
        b'{"email": "' + email.encode() + b'", "password": "pw-0123456789abc", "name": "\xff\xfe"}',
        b'{"email": "' + email.encode() + b'", "password": "pw-0123456789abc", "name": "n\\u0000"}',
    ):
        r = _raw(client, body, direct=direct)
        if b"\\u0000" in body or b"\xff" in body:
            assert r.status in (400, 422), (body, r)  # the JSON parser or the field check
        else:
            assert r.status == 400, (body, r)
    _assert_still_free(client, email)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", None],
    ids=["text", "form", "xml", "none"],
)
def test_register_not_json_415(client, content_type):
    email = unique_email("ctype")
    body = ('{"email": "%s", "password": "%s", "name": "n"}' % (email, strong_password())).encode()
    r = client.call("POST", REGISTER, raw=body, headers={"Content-Type": content_type})
    assert r.status == 415, r
    _assert_still_free(client, email)


def test_register_json_with_charset_accepted(client):
    email = unique_email("charset")
    body = ('{"email": "%s", "password": "%s", "name": "n"}' % (email, strong_password())).encode()
    r = client.call("POST", REGISTER, raw=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 201, r


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_register_body_over_1mib_413(client, direct):
    email = unique_email("big")
    body = ('{"email": "%s", "password": "%s", "name": "%s"}' % (email, strong_password(), "n" * (1 << 20))).encode()
    assert len(body) > (1 << 20)
    r = client.call("POST", REGISTER, raw=body, direct=direct)
    assert r.status == 413, r
    _assert_still_free(client, email)

