"""Admin: /api/v1/auth/users — search and paging, read, patch, delete, role grants, the last admin,
tenant isolation."""

import urllib.parse
import uuid

import pytest
from authclient import ADMIN_EMAIL, ADMIN_PASSWORD, PREFIX, jwt_parts, strong_password, unique_email

USERS = f"{PREFIX}/users"


def _search(client, admin, q, **params):
    query = urllib.parse.urlencode({"q": q, **params})
    r = client.call("GET", f"{USERS}?{query}", token=admin["access"])
    assert r.status == 200, r
    return r.body


def _get(client, admin, uid):
    return client.call("GET", f"{USERS}/{uid}", token=admin["access"])


def test_users_search_and_paging(client, admin):
    tag = uuid.uuid4().hex[:10]
    made = [client.register(name=f"Paging {tag} #{i}")[0] for i in range(3)]
    page = _search(client, admin, tag)
    assert page["total"] == 3 and page["page"] == 1, page
    ids = [u["id"] for u in page["items"]]
    assert ids == [u["id"] for u in made], "not sorted by created_at then id"
    keys = [(u["created_at"], u["id"]) for u in page["items"]]
    assert keys == sorted(keys)
    # case-insensitive, on the name and on the e-mail
    assert _search(client, admin, tag.upper())["total"] == 3
    assert [u["id"] for u in _search(client, admin, made[1]["email"].upper())["items"]] == [made[1]["id"]]
    # pages
    p1 = _search(client, admin, tag, per_page=2, page=1)
    p2 = _search(client, admin, tag, per_page=2, page=2)
    p3 = _search(client, admin, tag, per_page=2, page=3)
    assert (p1["total"], p2["total"], p3["total"]) == (3, 3, 3)
    assert p1["per_page"] == 2 and p2["page"] == 2
    assert [u["id"] for u in p1["items"] + p2["items"]] == ids and p3["items"] == []
    for u in page["items"]:
        assert "password" not in str(u).lower() and "disabled" in u, u


def test_users_search_wildcards_are_literal(client, admin):
    tag = uuid.uuid4().hex[:10]
    pct = client.register(name=f"pct {tag}%x")[0]
    und = client.register(name=f"und {tag}_y")[0]
    client.register(name=f"plain {tag}ab")
    assert _search(client, admin, tag)["total"] == 3
    assert [u["id"] for u in _search(client, admin, f"{tag}%")["items"]] == [pct["id"]]
    assert [u["id"] for u in _search(client, admin, f"{tag}_")["items"]] == [und["id"]]
    assert _search(client, admin, f"{tag}\\")["total"] == 0
    assert _search(client, admin, f"{tag}' OR '1'='1")["total"] == 0
    assert _search(client, admin, "%")["total"] >= 1  # pct's name holds a literal %


@pytest.mark.parametrize(
    "query,field",
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
        ("per_page=x", "per_page"),
        ("per_page=99999999999999999999999", "per_page"),
    ],
)
def test_users_bad_query_400(client, admin, query, field):
    r = client.call("GET", f"{USERS}?{query}", token=admin["access"])
    assert r.status == 400, r
    assert field in {e["field"] for e in r.body.get("errors", [])}, r.body


def test_users_per_page_bounds_accepted(client, admin):
    for per_page in (1, 100):
        r = client.call("GET", f"{USERS}?per_page={per_page}", token=admin["access"])
        assert r.status == 200 and r.body["per_page"] == per_page and len(r.body["items"]) <= per_page, r


@pytest.mark.parametrize(
    "uid",
    ["123", "not-a-uuid", "00000000-0000-0000-0000-00000000000g", "1%27%20OR%20%271%27%3D%271", "me", None],
    ids=["number", "word", "bad hex", "sql", "me", "unknown uuid"],
)
def test_users_bad_id_404(client, admin, uid):
    uid = uid or str(uuid.uuid4())
    for method, body in (("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)):
        kw = {"json": body} if body is not None else {}
        r = client.call(method, f"{USERS}/{uid}", token=admin["access"], **kw)
        assert r.status == 404, (method, uid, r)
    r = client.call("POST", f"{USERS}/{uid}/roles", json={"role": "support"}, token=admin["access"])
    assert r.status == 404, r
    r = client.call("DELETE", f"{USERS}/{uid}/roles/customer", token=admin["access"])
    assert r.status == 404, r


def test_user_patch(client, admin):
    s = client.new_user(name="Before")
    uid = s["user"]["id"]
    r = client.call("PATCH", f"{USERS}/{uid}", json={"name": "After"}, token=admin["access"])
    assert r.status == 200, r
    assert r.body["name"] == "After" and r.body["email"] == s["email"] and r.body["disabled"] is False, r.body
    assert r.body["updated_at"] >= s["user"]["updated_at"] and r.body["created_at"] == s["user"]["created_at"], r.body
    new_email = unique_email("moved")
    r = client.call("PATCH", f"{USERS}/{uid}", json={"email": new_email.upper()}, token=admin["access"])
    assert r.status == 200 and r.body["email"].lower() == new_email, r
    client.login(new_email, s["password"])
    assert client.call("POST", f"{PREFIX}/login", json={"email": s["email"], "password": s["password"]}).status == 401
    # the old address is free again, the new one is taken
    client.register(email=s["email"])
    r = client.call("POST", f"{PREFIX}/register", json={"email": new_email, "password": strong_password(), "name": "n"})
    assert r.status == 409, r
    # an empty patch changes nothing
    r = client.call("PATCH", f"{USERS}/{uid}", json={}, token=admin["access"])
    assert r.status in (200, 422), r


def test_user_patch_refusals(client, admin):
    s = client.new_user(name="Stable")
    other = client.new_user()
    uid = s["user"]["id"]
    before = _get(client, admin, uid).body
    r = client.call("PATCH", f"{USERS}/{uid}", json={"email": other["email"].upper()}, token=admin["access"])
    assert r.status == 409, r
    r = client.call("PATCH", f"{USERS}/{uid}", json={"email": ADMIN_EMAIL}, token=admin["access"])
    assert r.status == 409, r
    for body in (
        {"name": "x", "roles": ["admin"]},
        {"password": "new-password-123"},
        {"email": "not-an-email"},
        {"email": 5},
        {"name": ""},
        {"name": "a\u202eb"},
        {"name": "é" * 101},
        {"disabled": "yes"},
        {"disabled": 1},
        {"name": "ok", "email": "bad@@x"},  # one bad member: nothing is written
    ):
        r = client.call("PATCH", f"{USERS}/{uid}", json=body, token=admin["access"])
        assert r.status == 422, (body, r)
    assert _get(client, admin, uid).body == before, "a refused patch changed the user"
    r = client.call("PATCH", f"{USERS}/{uid}", raw=b'{"name":', token=admin["access"])
    assert r.status == 400, r
    r = client.call("PATCH", f"{USERS}/{uid}", json={"name": "a\u0000b"}, token=admin["access"])
    assert r.status in (400, 422), r  # refused by the JSON parser or by the field check
    assert _get(client, admin, uid).body == before, "a refused patch changed the user"
    client.login(s["email"], s["password"])


def test_user_delete(client, admin):
    s = client.new_user()
    uid = s["user"]["id"]
    assert client.call("DELETE", f"{USERS}/{uid}", token=admin["access"]).status == 204
    assert _get(client, admin, uid).status == 404
    assert client.call("DELETE", f"{USERS}/{uid}", token=admin["access"]).status == 404
    assert client.call("POST", f"{PREFIX}/refresh", json={"refresh_token": s["refresh"]}).status == 401
    assert client.call("POST", f"{PREFIX}/login", json={"email": s["email"], "password": s["password"]}).status == 401
    user, _, password = client.register(email=s["email"])
    assert user["id"] != uid
    client.login(s["email"], password)


def test_user_roles(client, admin):
    s = client.new_user()
    uid = s["user"]["id"]
    r = client.call("POST", f"{USERS}/{uid}/roles", json={"role": "support"}, token=admin["access"])
    assert r.status == 200 and r.body["roles"] == ["customer", "support"], r
    tokens = client.login(s["email"], s["password"])
    assert sorted(jwt_parts(tokens["access_token"])[1]["roles"]) == ["customer", "support"]
    # support is not admin
    assert client.call("GET", USERS, token=tokens["access_token"]).status == 403
    assert client.call("GET", USERS, token=tokens["access_token"], direct=True).status == 403
    for body in ({"role": "no-such-role"}, {"role": 5}, {}, {"role": "support", "extra": 1}):
        r = client.call("POST", f"{USERS}/{uid}/roles", json=body, token=admin["access"])
        assert r.status == 422, (body, r)
    r = client.call("DELETE", f"{USERS}/{uid}/roles/support", token=admin["access"])
    assert r.status == 200 and r.body["roles"] == ["customer"], r
    for role in ("support", "no-such-role", "admin"):
        r = client.call("DELETE", f"{USERS}/{uid}/roles/{role}", token=admin["access"])
        assert r.status == 404, (role, r)
    assert _get(client, admin, uid).body["roles"] == ["customer"]


def _admins(client, admin):
    out, page = [], 1
    while True:
        r = client.call("GET", f"{USERS}?per_page=100&page={page}", token=admin["access"])
        assert r.status == 200, r
        out += [u for u in r.body["items"] if "admin" in u["roles"]]
        if page * 100 >= r.body["total"]:
            return out
        page += 1


def test_last_admin_is_protected(client, admin):
    admins = _admins(client, admin)
    assert [u["id"] for u in admins] == [admin["id"]], f"expected the first-start admin alone: {admins}"
    boot = admin["id"]
    r = client.call("DELETE", f"{USERS}/{boot}", token=admin["access"])
    assert r.status == 409, r
    r = client.call("DELETE", f"{USERS}/{boot}/roles/admin", token=admin["access"])
    assert r.status == 409, r
    # with a second admin the first can lose the role; then the second is the last one
    s = client.new_user()
    second = s["user"]["id"]
    r = client.call("POST", f"{USERS}/{second}/roles", json={"role": "admin"}, token=admin["access"])
    assert r.status == 200 and "admin" in r.body["roles"], r
    second_token = client.login(s["email"], s["password"])["access_token"]
    try:
        r = client.call("DELETE", f"{USERS}/{boot}/roles/admin", token=second_token)
        assert r.status == 200 and "admin" not in r.body["roles"], r
        assert client.call("DELETE", f"{USERS}/{second}/roles/admin", token=second_token).status == 409
        assert client.call("DELETE", f"{USERS}/{second}", token=second_token).status == 409
    finally:
        r = client.call("POST", f"{USERS}/{boot}/roles", json={"role": "admin"}, token=second_token)
        assert r.status == 200 and "admin" in r.body["roles"], r
    assert client.call("DELETE", f"{USERS}/{second}/roles/admin", token=admin["access"]).status == 200
    assert [u["id"] for u in _admins(client, admin)] == [boot]
    client.login(ADMIN_EMAIL, ADMIN_PASSWORD)


def test_last_admin_cannot_be_disabled(client, admin):
    """Disabling the last enabled admin would leave the tenant without one for good (the
    bootstrap only acts when nobody holds the role): refused like deleting or demoting it."""
    boot = admin["id"]
    r = client.call("PATCH", f"{USERS}/{boot}", json={"disabled": True}, token=admin["access"])
    if r.status == 200:  # put it back before failing, so the rest of the session can go on
        client.call("PATCH", f"{USERS}/{boot}", json={"disabled": False}, token=admin["access"])
    assert r.status == 409, r
    assert _get(client, admin, boot).body["disabled"] is False
    # a second admin who is disabled does not count: the first is still the last one
    s = client.new_user()
    second = s["user"]["id"]
    assert client.call("POST", f"{USERS}/{second}/roles", json={"role": "admin"}, token=admin["access"]).status == 200
    try:
        r = client.call("PATCH", f"{USERS}/{second}", json={"disabled": True}, token=admin["access"])
        assert r.status == 200 and r.body["disabled"] is True, r
        assert client.call("PATCH", f"{USERS}/{boot}", json={"disabled": True}, token=admin["access"]).status == 409
        assert client.call("DELETE", f"{USERS}/{boot}/roles/admin", token=admin["access"]).status == 409
        assert client.call("DELETE", f"{USERS}/{boot}", token=admin["access"]).status == 409
    finally:
        assert client.call("DELETE", f"{USERS}/{second}", token=admin["access"]).status == 204
    client.login(ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_users_need_admin(client, customer, direct):
    uid = customer["user"]["id"]
    for method, path, body in (
        ("GET", USERS, None),
        ("GET", f"{USERS}/{uid}", None),
        ("PATCH", f"{USERS}/{uid}", {"name": "x"}),
        ("DELETE", f"{USERS}/{uid}", None),
        ("POST", f"{USERS}/{uid}/roles", {"role": "admin"}),
        ("DELETE", f"{USERS}/{uid}/roles/customer", None),
    ):
        kw = {"json": body} if body is not None else {}
        assert client.call(method, path, direct=direct, **kw).status == 401, (method, path)
        r = client.call(method, path, token=customer["access"], direct=direct, **kw)
        assert r.status == 403, (method, path, r)
    me = client.me(customer["access"]).body
    assert me["roles"] == ["customer"] and me["name"] != "x", me


def test_tenant_isolation(client, platform, admin):
    """An admin of another tenant sees none of the default tenant's users."""
    s = client.new_user()
    cp = platform.agora(
        "token", "--user", admin["id"], "--roles", "admin", "--tenant", "other-tenant",
        "--keys", platform.keys_dir, "--issuer", platform.issuer,
    )
    other = cp.stdout.strip()
    r = client.call("GET", f"{USERS}?{urllib.parse.urlencode({'q': s['email']})}", token=other)
    assert r.status == 200 and r.body["total"] == 0, r
    assert client.call("GET", f"{USERS}/{s['user']['id']}", token=other).status == 404
    r = client.call("PATCH", f"{USERS}/{s['user']['id']}", json={"name": "hijacked"}, token=other)
    assert r.status == 404, r
    assert client.call("DELETE", f"{USERS}/{s['user']['id']}", token=other).status == 404
    assert _get(client, admin, s["user"]["id"]).body["name"] != "hijacked"
