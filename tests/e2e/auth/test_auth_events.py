"""auth's events on the local bus: auth.user.created, auth.user.updated and
auth.password_reset.requested reach the log file (AGORA_BUS=local:$AGORA_VAR/bus.db) with a
CloudEvents envelope, only for changes that committed, never with a secret in them."""

import json
import os
import sqlite3
import time
import uuid

from authclient import ADMIN_EMAIL, PREFIX, unique_email

WAIT_S = 15  # the relay publishes within its poll interval; this only bounds a broken bus


def _events(platform, type_=None, subject=None):
    path = os.path.join(platform.var, "bus.db")
    if not os.path.exists(path):
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        sql = "SELECT type, source, envelope FROM events WHERE 1 = 1"
        args = []
        if type_:
            sql += " AND type = ?"
            args.append(type_)
        rows = conn.execute(sql + " ORDER BY seq", args).fetchall()
    except sqlite3.OperationalError:
        return []  # the log exists but its table is not made yet
    finally:
        conn.close()
    out = []
    for t, source, envelope in rows:
        env = json.loads(envelope)
        assert env["type"] == t and env["source"] == source
        if subject is None or env["subject"] == subject:
            out.append(env)
    return out


def _wait_events(platform, type_, subject, count=1):
    deadline = time.monotonic() + WAIT_S
    while True:
        found = _events(platform, type_, subject)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{type_} for {subject}: {len(found)} of {count} on the bus"
        time.sleep(0.05)


def _check_envelope(env, type_, subject):
    assert env["specversion"] == "1.0"
    assert env["type"] == type_ and env["subject"] == subject
    assert env["source"] == "agora/auth"
    assert env["datacontenttype"] == "application/json"
    assert env["tenant"] == "default"
    uuid.UUID(env["id"])
    assert env["time"].endswith("Z") and "T" in env["time"]
    assert isinstance(env["data"], dict)
    for secret in ("password", "password_hash", "token", "hash"):
        assert secret not in env["data"], f"{secret} in {type_}: {env['data']}"


def test_first_admin_created_event(platform, admin):
    env = _wait_events(platform, "auth.user.created", admin["id"])[0]
    _check_envelope(env, "auth.user.created", admin["id"])
    assert env["data"]["email"] == ADMIN_EMAIL
    assert "admin" in env["data"]["roles"]


def test_register_update_roles_events(client, platform, admin):
    trace = "00-" + uuid.uuid4().hex + "-" + uuid.uuid4().hex[:16] + "-01"
    email = unique_email("events")
    r = client.call(
        "POST",
        f"{PREFIX}/register",
        json={"email": email, "password": "a long enough pass phrase", "name": "Ev Ents"},
        headers={"traceparent": trace},
    )
    assert r.status == 201, r
    uid = r.body["id"]
    created = _wait_events(platform, "auth.user.created", uid)
    assert len(created) == 1
    env = created[0]
    _check_envelope(env, "auth.user.created", uid)
    assert env["data"]["email"] == email and env["data"]["roles"] == ["customer"]
    # the same trace; the gateway in between is a span of its own, so the parent id may differ
    assert env["traceparent"].split("-")[1] == trace.split("-")[1], "the request's trace is carried by its events"

    # a refused duplicate commits nothing, so it says nothing
    r = client.call("POST", f"{PREFIX}/register", json={"email": email, "password": "another long pass", "name": "X"})
    assert r.status == 409

    r = client.call("PATCH", f"{PREFIX}/users/{uid}", json={"name": "Renamed"}, token=admin["access"])
    assert r.status == 200, r
    updated = _wait_events(platform, "auth.user.updated", uid)
    assert updated[-1]["data"]["name"] == "Renamed" and updated[-1]["data"]["changed"] == ["name"]
    assert "traceparent" in updated[-1]  # made here when the client sent none

    r = client.call("POST", f"{PREFIX}/users/{uid}/roles", json={"role": "support"}, token=admin["access"])
    assert r.status == 200, r
    updated = _wait_events(platform, "auth.user.updated", uid, 2)
    assert updated[-1]["data"]["changed"] == ["roles"] and "support" in updated[-1]["data"]["roles"]

    r = client.call("PATCH", f"{PREFIX}/users/{uid}", json={"disabled": True}, token=admin["access"])
    assert r.status == 200, r
    updated = _wait_events(platform, "auth.user.updated", uid, 3)
    assert updated[-1]["data"]["changed"] == ["disabled"] and updated[-1]["data"]["disabled"] is True

    # every event id is unique; the created event came before the updates
    log = _events(platform)
    ids = [e["id"] for e in log]
    assert len(ids) == len(set(ids))
    order = [e["type"] for e in log if e["subject"] == uid]
    assert order[0] == "auth.user.created", f"the log for {uid}: {order}"
    assert order.count("auth.user.created") == 1, f"the log for {uid}: {order}"
    # the refused duplicate registration (before the updates, which the relay published after it)
    # made no created event of its own, under any id
    same_email = [e["subject"] for e in log if e["type"] == "auth.user.created" and e["data"].get("email") == email]
    assert same_email == [uid], f"auth.user.created events for {email}: {same_email}"


def test_password_events_never_carry_the_token(client, platform):
    user = client.new_user()
    uid, email = user["user"]["id"], user["email"]
    r = client.call("POST", f"{PREFIX}/password-reset", json={"email": email})
    assert r.status == 202
    env = _wait_events(platform, "auth.password_reset.requested", uid)[0]
    _check_envelope(env, "auth.password_reset.requested", uid)
    assert set(env["data"]) == {"user_id", "email", "expires_at"}
    assert env["data"]["user_id"] == uid and env["data"]["email"] == email
    token = platform.reset_token(email)
    assert token not in json.dumps(env)

    # an unknown address: the same 202, no event
    before = len(_events(platform, "auth.password_reset.requested"))
    r = client.call("POST", f"{PREFIX}/password-reset", json={"email": unique_email("nobody")})
    assert r.status == 202
    r = client.call("POST", f"{PREFIX}/password-reset/confirm", json={"token": token, "new_password": "a brand new pass phrase"})
    assert r.status == 204
    updated = _wait_events(platform, "auth.user.updated", uid)
    assert updated[-1]["data"]["changed"] == ["password"]
    assert len(_events(platform, "auth.password_reset.requested")) == before
    # the change through PUT /password too
    tokens = client.login(email, "a brand new pass phrase")
    r = client.call(
        "PUT",
        f"{PREFIX}/password",
        json={"current_password": "a brand new pass phrase", "new_password": "yet another pass phrase"},
        token=tokens["access_token"],
    )
    assert r.status == 204
    _wait_events(platform, "auth.user.updated", uid, 2)


def test_dead_event_routes(client, admin, customer):
    """The kit's dead-event endpoints on the service's own port: admin only, checked bodies."""
    r = client.call("GET", "/_kit/events/dead", token=admin["access"], direct=True, check=False)
    assert r.status == 200, r
    assert r.body["items"] == [] and r.body["total"] == 0 and r.body["page"] == 1
    r = client.call("GET", "/_kit/events/dead?per_page=1000", token=admin["access"], direct=True, check=False)
    assert r.status == 400
    r = client.call("GET", "/_kit/events/dead", token=customer["access"], direct=True, check=False)
    assert r.status == 403
    r = client.call("GET", "/_kit/events/dead", direct=True, check=False)
    assert r.status == 401
    r = client.call("POST", "/_kit/events/replay", json={"all": True}, token=admin["access"], direct=True, check=False)
    assert r.status == 202 and r.body == {"requested": 0}, r
    r = client.call("POST", "/_kit/events/replay", json={"ids": ["nope"]}, token=admin["access"], direct=True, check=False)
    assert r.status == 202 and r.body == {"requested": 0}, r
    for bad in ({}, {"all": False}, {"ids": []}, {"ids": [1]}, {"ids": ["a"], "all": True}, {"ids": ["a"] * 1001}, {"other": 1}):
        r = client.call("POST", "/_kit/events/replay", json=bad, token=admin["access"], direct=True, check=False)
        assert r.status == 422, (bad, r)
    r = client.call("POST", "/_kit/events/replay", raw=b"[", token=admin["access"], direct=True, check=False)
    assert r.status == 400
    r = client.call("GET", "/readyz", direct=True, check=False)
    assert r.status == 200 and r.body["bus"] == "reachable", r
