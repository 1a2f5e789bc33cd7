"""Admin: /api/v1/auth/roles — list, create, read, replace, delete, add permissions."""

import uuid

import pytest
from authclient import PREFIX, RFC3339_MS, UUID_RE

ROLES = f"{PREFIX}/roles"
BUILTIN = ("admin", "customer", "support")


def _name(tag="r"):
    return f"{tag}-{uuid.uuid4().hex[:12]}"


def _all_roles(client, admin):
    r = client.call("GET", f"{ROLES}?per_page=100", token=admin["access"])
    assert r.status == 200, r
    return r.body


def _builtin_id(client, admin, name):
    for role in _all_roles(client, admin)["items"]:
        if role["name"] == name:
            return role["id"]
    raise AssertionError(f"no builtin role {name}")


def _create(client, admin, **body):
    body.setdefault("name", _name())
    r = client.call("POST", ROLES, json=body, token=admin["access"])
    assert r.status == 201, r
    return r


def test_roles_list(client, admin):
    page = _all_roles(client, admin)
    assert page["page"] == 1 and page["per_page"] == 100 and page["total"] >= 3, page
    by_name = {r["name"]: r for r in page["items"]}
    for name in BUILTIN:
        role = by_name.get(name)
        assert role is not None, f"builtin role {name} missing: {sorted(by_name)}"
        assert role["builtin"] is True and UUID_RE.match(role["id"]) and RFC3339_MS.match(role["created_at"]), role
    assert by_name["admin"]["permissions"], "the admin role has no permissions"
    # paging: per_page=1 gives one item and the same total
    r = client.call("GET", f"{ROLES}?per_page=1&page=2", token=admin["access"])
    assert r.status == 200 and len(r.body["items"]) == 1 and r.body["total"] == page["total"], r


def test_role_crud(client, admin):
    name = _name("crud")
    r = _create(client, admin, name=name, description="Reads orders", permissions=["orders:read", "orders.write"])
    role = r.body
    assert role["name"] == name and role["description"] == "Reads orders" and role["builtin"] is False, role
    assert sorted(role["permissions"]) == ["orders.write", "orders:read"], role
    assert r.header("Location") == f"{ROLES}/{role['id']}"
    got = client.call("GET", r.header("Location"), token=admin["access"])
    assert got.status == 200 and got.body == role, (got.body, role)
    # taken
    dup = client.call("POST", ROLES, json={"name": name}, token=admin["access"])
    assert dup.status == 409, dup
    # replace
    new_name = _name("renamed")
    put = client.call(
        "PUT", f"{ROLES}/{role['id']}", json={"name": new_name, "description": "replaced", "permissions": ["x.y"]}, token=admin["access"]
    )
    assert put.status == 200, put
    assert put.body["name"] == new_name and put.body["permissions"] == ["x.y"] and put.body["id"] == role["id"], put.body
    assert client.call("GET", f"{ROLES}/{role['id']}", token=admin["access"]).body["name"] == new_name
    # the old name is free again
    _create(client, admin, name=name)
    # replace with a taken name
    clash = client.call(
        "PUT", f"{ROLES}/{role['id']}", json={"name": "support", "description": "replaced", "permissions": []}, token=admin["access"]
    )
    assert clash.status == 409, clash
    # add permissions (a union)
    add = client.call("POST", f"{ROLES}/{role['id']}/permissions", json={"permissions": ["a.b", "x.y"]}, token=admin["access"])
    assert add.status == 200, add
    assert sorted(set(add.body["permissions"])) == ["a.b", "x.y"] and len(add.body["permissions"]) == 2, add.body
    # delete
    assert client.call("DELETE", f"{ROLES}/{role['id']}", token=admin["access"]).status == 204
    for method, body in (("GET", None), ("DELETE", None), ("PUT", {"name": _name(), "description": "replaced", "permissions": []})):
        kw = {"json": body} if body is not None else {}
        r = client.call(method, f"{ROLES}/{role['id']}", token=admin["access"], **kw)
        assert r.status == 404, (method, r)
    r = client.call("POST", f"{ROLES}/{role['id']}/permissions", json={"permissions": ["a.b"]}, token=admin["access"])
    assert r.status == 404, r


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "A"}, "name"),
        ({"name": "a"}, "name"),
        ({"name": "Upper"}, "name"),
        ({"name": "1abc"}, "name"),
        ({"name": "ab cd"}, "name"),
        ({"name": "a" + "b" * 32}, "name"),
        ({"name": "ab$"}, "name"),
        ({"name": "é-role"}, "name"),
        ({"name": 5}, "name"),
        ({}, "name"),
        ({"name": None, "permissions": []}, "name"),
        ({"permissions": ["Bad"]}, "permissions"),
        ({"permissions": ["1x"]}, "permissions"),
        ({"permissions": [""]}, "permissions"),
        ({"permissions": ["a" * 65]}, "permissions"),
        ({"permissions": ["a b"]}, "permissions"),
        ({"permissions": [5]}, "permissions"),
        ({"permissions": "orders:read"}, "permissions"),
        ({"description": 5}, "description"),
    ],
    ids=lambda v: repr(v)[:30] if not isinstance(v, str) else v,
)
def test_role_create_422(client, admin, body, field):
    name = _name("bad")
    body = dict(body)
    if field != "name":
        body.setdefault("name", name)
    r = client.call("POST", ROLES, json=body, token=admin["access"])
    assert r.status == 422, r
    assert r.body.get("errors"), r.body
    fields = {e["field"] for e in r.body["errors"]}
    assert any(f == field or f.startswith(field) for f in fields), (fields, field)
    if field != "name":
        _create(client, admin, name=name)  # nothing was written


def test_role_boundaries_accepted(client, admin):
    two = "a" + uuid.uuid4().hex[0]  # the shortest name: 2 characters
    longest = "a" + uuid.uuid4().hex[:31]  # the longest: 32
    for name in (two, longest, "z_9-" + uuid.uuid4().hex[:8]):
        assert _create(client, admin, name=name).body["name"] == name
    perms = ["a", "a" * 64, "x.y:z-w_v"]
    r = _create(client, admin, permissions=perms)
    assert sorted(r.body["permissions"]) == sorted(perms), r.body


def test_role_update_and_permissions_422(client, admin):
    role = _create(client, admin, permissions=["p.one"]).body
    for body in (
        {"name": "Bad Name", "description": "replaced", "permissions": []},
        {"name": role["name"], "description": "replaced", "permissions": ["NOPE"]},
        {"name": role["name"], "description": 7, "permissions": []},
    ):
        r = client.call("PUT", f"{ROLES}/{role['id']}", json=body, token=admin["access"])
        assert r.status == 422, (body, r)
    for body in ({"permissions": ["NOPE"]}, {"permissions": "x"}, {}):
        r = client.call("POST", f"{ROLES}/{role['id']}/permissions", json=body, token=admin["access"])
        assert r.status == 422, (body, r)
    got = client.call("GET", f"{ROLES}/{role['id']}", token=admin["access"]).body
    assert got == role, "a refused update changed the role"


def test_builtin_roles_protected(client, admin):
    for name in BUILTIN:
        rid = _builtin_id(client, admin, name)
        r = client.call("DELETE", f"{ROLES}/{rid}", token=admin["access"])
        assert r.status == 409, (name, r)
        r = client.call("PUT", f"{ROLES}/{rid}", json={"name": name + "-x", "description": "replaced", "permissions": []}, token=admin["access"])
        assert r.status == 409, (name, r)
        got = client.call("GET", f"{ROLES}/{rid}", token=admin["access"])
        assert got.status == 200 and got.body["name"] == name and got.body["builtin"] is True, got


@pytest.mark.parametrize(
    "rid",
    ["123", "not-a-uuid", "00000000-0000-0000-0000-00000000000g", "1%27%20OR%20%271%27%3D%271", None],
    ids=["number", "word", "bad hex", "sql", "unknown uuid"],
)
def test_role_bad_id_404(client, admin, rid):
    rid = rid or str(uuid.uuid4())
    for method, body in (
        ("GET", None),
        ("PUT", {"name": _name(), "description": "replaced", "permissions": []}),
        ("DELETE", None),
    ):
        kw = {"json": body} if body is not None else {}
        r = client.call(method, f"{ROLES}/{rid}", token=admin["access"], **kw)
        assert r.status == 404, (method, rid, r)
    r = client.call("POST", f"{ROLES}/{rid}/permissions", json={"permissions": ["a.b"]}, token=admin["access"])
    assert r.status == 404, r


def test_role_delete_removes_it_from_users(client, admin):
    role = _create(client, admin, permissions=["temp.perm"]).body
    s = client.new_user()
    uid = s["user"]["id"]
    r = client.call("POST", f"{PREFIX}/users/{uid}/roles", json={"role": role["name"]}, token=admin["access"])
    assert r.status == 200 and r.body["roles"] == sorted(["customer", role["name"]]), r
    me = client.me(client.login(s["email"], s["password"])["access_token"]).body
    assert "temp.perm" in me["permissions"], me
    assert client.call("DELETE", f"{ROLES}/{role['id']}", token=admin["access"]).status == 204
    got = client.call("GET", f"{PREFIX}/users/{uid}", token=admin["access"])
    assert got.body["roles"] == ["customer"], got.body
    me = client.me(client.login(s["email"], s["password"])["access_token"]).body
    assert "temp.perm" not in me["permissions"], me


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_roles_need_admin(client, customer, direct):
    assert client.call("GET", ROLES, direct=direct).status == 401
    assert client.call("GET", ROLES, token=customer["access"], direct=direct).status == 403
    r = client.call("POST", ROLES, json={"name": _name()}, token=customer["access"], direct=direct)
    assert r.status == 403, r


@pytest.mark.parametrize("query,field", [("page=0", "page"), ("per_page=101", "per_page"), ("per_page=abc", "per_page")])
def test_roles_bad_query_400(client, admin, query, field):
    r = client.call("GET", f"{ROLES}?{query}", token=admin["access"])
    assert r.status == 400, r
    assert field in {e["field"] for e in r.body.get("errors", [])}, r.body
