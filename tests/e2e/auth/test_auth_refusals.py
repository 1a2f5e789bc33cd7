"""Refusals every JSON endpoint shares: malformed JSON 400, not JSON 415, and (admin routes)
no token 401 / customer 403, at the gateway and directly at the service. Nothing is written."""

import uuid

import pytest
from authclient import PREFIX

# (method, path with {id}/{role} to fill, who calls it: "anon", "customer" or "admin")
JSON_ENDPOINTS = [
    ("POST", "/register", "anon"),
    ("POST", "/login", "anon"),
    ("POST", "/refresh", "anon"),
    ("POST", "/logout", "anon"),
    ("POST", "/password-reset", "anon"),
    ("POST", "/password-reset/confirm", "anon"),
    ("PUT", "/password", "customer"),
    ("POST", "/roles", "admin"),
    ("PUT", "/roles/{role_id}", "admin"),
    ("POST", "/roles/{role_id}/permissions", "admin"),
    ("PATCH", "/users/{user_id}", "admin"),
    ("POST", "/users/{user_id}/roles", "admin"),
]

ADMIN_ENDPOINTS = [
    ("GET", "/roles", None),
    ("POST", "/roles", {"name": "never-made"}),
    ("GET", "/roles/{role_id}", None),
    ("PUT", "/roles/{role_id}", {"name": "never-made", "description": "x", "permissions": []}),
    ("DELETE", "/roles/{role_id}", None),
    ("POST", "/roles/{role_id}/permissions", {"permissions": ["never.made"]}),
    ("GET", "/users", None),
    ("GET", "/users/{user_id}", None),
    ("PATCH", "/users/{user_id}", {"name": "never made"}),
    ("DELETE", "/users/{user_id}", None),
    ("POST", "/users/{user_id}/roles", {"role": "admin"}),
    ("DELETE", "/users/{user_id}/roles/customer", None),
]


@pytest.fixture(scope="module")
def targets(client, admin):
    """A role and a user the refused calls name (and must leave untouched)."""
    r = client.call("POST", f"{PREFIX}/roles", json={"name": f"target-{uuid.uuid4().hex[:8]}"}, token=admin["access"])
    assert r.status == 201, r
    s = client.new_user(name="Target")
    return {"role": r.body, "user": s}


def _path(template, targets):
    return PREFIX + template.format(role_id=targets["role"]["id"], user_id=targets["user"]["user"]["id"])


def _token(who, targets, admin):
    return {"anon": None, "customer": targets["user"]["access"], "admin": admin["access"]}[who]


def _unchanged(client, admin, targets):
    role = client.call("GET", f"{PREFIX}/roles/{targets['role']['id']}", token=admin["access"])
    assert role.status == 200 and role.body == targets["role"], role
    user = client.call("GET", f"{PREFIX}/users/{targets['user']['user']['id']}", token=admin["access"])
    assert user.status == 200 and user.body["name"] == "Target" and user.body["roles"] == ["customer"], user


@pytest.mark.parametrize("method,template,who", JSON_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in JSON_ENDPOINTS])
@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_malformed_json_400_and_not_json_415(client, admin, targets, method, template, who, direct):
    path, token = _path(template, targets), _token(who, targets, admin)
    for body in (b'{"a":', b"[1, 2]", b'{"a": 1, "a": 2}', b"\xff\xfe{}"):
        r = client.call(method, path, raw=body, token=token, direct=direct)
        assert r.status == 400, (body, r)
    r = client.call(method, path, raw=b"name=x", token=token, headers={"Content-Type": "application/x-www-form-urlencoded"}, direct=direct)
    assert r.status == 415, r
    r = client.call(method, path, raw=b"{}", token=token, headers={"Content-Type": None}, direct=direct)
    assert r.status == 415, r
    _unchanged(client, admin, targets)


@pytest.mark.parametrize("method,template,body", ADMIN_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ADMIN_ENDPOINTS])
@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_admin_routes_refuse_anonymous_and_customers(client, admin, targets, method, template, body, direct):
    path = _path(template, targets)
    kw = {"json": body} if body is not None else {}
    r = client.call(method, path, direct=direct, **kw)
    assert r.status == 401, r
    assert r.header("WWW-Authenticate") is not None and r.header("WWW-Authenticate").lower().startswith("bearer"), r
    r = client.call(method, path, token=targets["user"]["access"], direct=direct, **kw)
    assert r.status == 403, r
    _unchanged(client, admin, targets)
