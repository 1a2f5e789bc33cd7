"""Inventory reservations: hold / commit / release, idempotent retries, all or nothing (each
refusal followed by a read-back of every product's stock), the expiry sweep, tenant isolation,
every bad input, and the issue's reliability case — 200 concurrent requests for the last 50 units
reserve exactly 50. Runs on SQLite and PostgreSQL (`platform`)."""

import calendar
import json
import threading
import time
import uuid

import pytest

from catalogclient import get_product, new_product
from test_inventory import change_stock, inventory_events, stock_of, stocked_product

RES = "/api/v1/inventory/reservations"
EXPIRY_WAIT_S = 30  # the sweep runs every second; a deadline for polling, not a measurement


def rid(tag="r"):
    return f"{tag}-{uuid.uuid4().hex[:12]}"


def reserve(client, token, reservation_id, items, expires_in_s=None, expect=201):
    body = {"reservation_id": reservation_id, "items": [{"product_id": p, "quantity": q} for p, q in items]}
    if expires_in_s is not None:
        body["expires_in_s"] = expires_in_s
    r = client.call("POST", RES, json=body, token=token)
    assert r.status == expect, f"reserve {body}: {r.status} {r.body!r:.300}"
    return r


def stock_triplet(client, pid):
    s = stock_of(client, pid)
    return (s["on_hand"], s["reserved"], s["available"])


# ---- the life of a reservation ----


def test_hold_commit(client, admin_token, service_token):
    a = stocked_product(client, admin_token, 10)["id"]
    b = stocked_product(client, admin_token, 5)["id"]
    reservation_id = rid("commit")
    before = time.time()
    r = reserve(client, service_token, reservation_id, [(a, 3), (b, 5)])
    assert r.headers["Location"] == f"{RES}/{reservation_id}"
    body = r.body
    assert body["reservation_id"] == reservation_id and body["state"] == "held"
    assert body["items"] == sorted([{"product_id": a, "quantity": 3}, {"product_id": b, "quantity": 5}], key=lambda i: i["product_id"])
    expires = calendar.timegm(time.strptime(body["expires_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert before + 900 - 60 < expires < before + 900 + 60, body["expires_at"]  # default 900 s
    assert stock_triplet(client, a) == (10, 3, 7)
    assert stock_triplet(client, b) == (5, 5, 0)
    got = client.call("GET", f"{RES}/{reservation_id}", token=service_token)
    assert got.status == 200 and got.body == body

    c = client.call("POST", f"{RES}/{reservation_id}/commit", token=service_token)
    assert c.status == 200, c.body
    assert c.body["state"] == "committed" and c.body["items"] == body["items"]
    assert stock_triplet(client, a) == (7, 0, 7)
    assert stock_triplet(client, b) == (0, 0, 0)
    # idempotent commit; a committed reservation cannot be released
    again = client.call("POST", f"{RES}/{reservation_id}/commit", token=service_token)
    assert again.status == 200 and again.body["state"] == "committed"
    assert client.call("DELETE", f"{RES}/{reservation_id}", token=service_token).status == 409
    assert stock_triplet(client, a) == (7, 0, 7)
    # a retry of the create answers the reservation as it is now
    retry = reserve(client, service_token, reservation_id, [(b, 5), (a, 3)], expect=200)
    assert retry.body["state"] == "committed"


def test_hold_release(client, admin_token, service_token):
    pid = stocked_product(client, admin_token, 4)["id"]
    reservation_id = rid("release")
    reserve(client, admin_token, reservation_id, [(pid, 4)])  # admin may reserve too
    assert stock_triplet(client, pid) == (4, 4, 0)
    assert client.call("DELETE", f"{RES}/{reservation_id}", token=service_token).status == 204
    assert stock_triplet(client, pid) == (4, 0, 4)
    assert client.call("DELETE", f"{RES}/{reservation_id}", token=service_token).status == 204
    assert stock_triplet(client, pid) == (4, 0, 4)
    r = client.call("POST", f"{RES}/{reservation_id}/commit", token=service_token)
    assert r.status == 409 and "released" in r.body["detail"], r.body
    assert client.call("GET", f"{RES}/{reservation_id}", token=service_token).body["state"] == "released"
    assert stock_triplet(client, pid) == (4, 0, 4)


def test_idempotency(client, admin_token, service_token, other_tenant_admin_token):
    a = stocked_product(client, admin_token, 10)["id"]
    b = stocked_product(client, admin_token, 10)["id"]
    reservation_id = rid("idem")
    first = reserve(client, service_token, reservation_id, [(a, 2), (b, 1)], expires_in_s=600).body
    second = reserve(client, service_token, reservation_id, [(b, 1), (a, 2)], expires_in_s=600, expect=200).body
    assert second == first
    # units were held once
    assert stock_triplet(client, a) == (10, 2, 8)
    for items in ([(a, 3), (b, 1)], [(a, 2)], [(a, 2), (b, 1), (stocked_product(client, admin_token, 1)["id"], 1)]):
        r = reserve(client, service_token, reservation_id, items, expect=409)
        assert reservation_id in r.body["detail"]
    assert stock_triplet(client, a) == (10, 2, 8)
    assert stock_triplet(client, b) == (10, 1, 9)
    # the same id in another tenant is another reservation: t2 does not see this one, and making
    # its own under the same id is a new reservation (201), which leaves this one as it was
    assert client.call("GET", f"{RES}/{reservation_id}", token=other_tenant_admin_token).status == 404
    c = stocked_product(client, other_tenant_admin_token, 4)["id"]
    theirs = reserve(client, other_tenant_admin_token, reservation_id, [(c, 3)], expires_in_s=600).body
    assert theirs["items"] == [{"product_id": c, "quantity": 3}], theirs
    r = client.call("GET", f"{RES}/{reservation_id}", token=other_tenant_admin_token)
    assert r.status == 200 and r.body["items"] == theirs["items"], r.body
    assert get_product(client, c, token=other_tenant_admin_token)["stock"]["reserved"] == 3
    assert client.call("GET", f"{RES}/{reservation_id}", token=service_token).body["items"] == first["items"]
    assert stock_triplet(client, a) == (10, 2, 8)
    assert stock_triplet(client, b) == (10, 1, 9)


def test_events(client, platform, request, admin_token, service_token):
    pid = new_product(client, admin_token, low_threshold=2)["id"]
    change_stock(client, admin_token, pid, set=5)
    reservation_id = rid("events")
    reserve(client, service_token, reservation_id, [(pid, 3)])  # available 5 -> 2: low
    assert client.call("POST", f"{RES}/{reservation_id}/commit", token=service_token).status == 200
    events = inventory_events(platform, request, pid)
    assert [e["type"] for e in events] == [
        "products.inventory.updated",  # set 5
        "products.inventory.updated",  # reserve 3
        "products.inventory.low",
        "products.inventory.updated",  # commit
    ], [e["type"] for e in events]
    assert events[1]["data"] == {"product_id": pid, "sku": events[0]["data"]["sku"], "on_hand": 5, "reserved": 3, "available": 2, "low_threshold": 2}
    assert events[3]["data"]["on_hand"] == 2 and events[3]["data"]["reserved"] == 0


# ---- all or nothing ----


def test_all_or_nothing(client, admin_token, service_token):
    plenty = stocked_product(client, admin_token, 100)["id"]
    scarce = stocked_product(client, admin_token, 2)["id"]
    reservation_id = rid("aon")
    r = reserve(client, service_token, reservation_id, [(plenty, 10), (scarce, 3)], expect=409)
    assert scarce in r.body["detail"] and "2 available" in r.body["detail"], r.body["detail"]
    assert stock_triplet(client, plenty) == (100, 0, 100)
    assert stock_triplet(client, scarce) == (2, 0, 2)
    assert client.call("GET", f"{RES}/{reservation_id}", token=service_token).status == 404
    # an unknown product: 422 naming the item, nothing held
    ghost = str(uuid.uuid4())
    r = reserve(client, service_token, reservation_id, [(plenty, 10), (ghost, 1)], expect=422)
    assert "items[1].product_id" in [e["field"] for e in r.body["errors"]], r.body
    assert stock_triplet(client, plenty) == (100, 0, 100)
    assert client.call("GET", f"{RES}/{reservation_id}", token=service_token).status == 404
    # the id is still free afterwards
    reserve(client, service_token, reservation_id, [(plenty, 10), (scarce, 2)])
    assert stock_triplet(client, scarce) == (2, 2, 0)


def test_inactive_product_409(client, admin_token, service_token):
    pid = stocked_product(client, admin_token, 5)["id"]
    r = client.call("PATCH", f"/api/v1/products/{pid}", json={"active": False}, token=admin_token)
    assert r.status == 200, r.body
    r = reserve(client, service_token, rid("inactive"), [(pid, 1)], expect=409)
    assert "not active" in r.body["detail"]
    assert get_product(client, pid, token=admin_token)["stock"]["reserved"] == 0


# ---- expiry ----


def test_expiry_releases(client, platform, request, admin_token, service_token):
    pid = stocked_product(client, admin_token, 3)["id"]
    reservation_id = rid("expire")
    reserve(client, service_token, reservation_id, [(pid, 2)], expires_in_s=1)
    deadline = time.monotonic() + EXPIRY_WAIT_S
    state = "held"
    while state == "held" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = client.call("GET", f"{RES}/{reservation_id}", token=service_token).body["state"]
    assert state == "expired"
    assert stock_triplet(client, pid) == (3, 0, 3)
    released = inventory_events(platform, request, pid)[-1]  # emitted by the sweep's own connection
    assert released["source"] == "agora/products" and released["tenant"] == "default", released
    assert released["data"]["reserved"] == 0 and released["data"]["available"] == 3
    r = client.call("POST", f"{RES}/{reservation_id}/commit", token=service_token)
    assert r.status == 409 and "expired" in r.body["detail"]
    assert client.call("DELETE", f"{RES}/{reservation_id}", token=service_token).status == 204
    assert stock_triplet(client, pid) == (3, 0, 3)


def test_commit_after_expires_at_409(client, admin_token, service_token):
    """Swept or not yet, a reservation past expires_at cannot be committed."""
    pid = stocked_product(client, admin_token, 3)["id"]
    reservation_id = rid("late")
    reserve(client, service_token, reservation_id, [(pid, 1)], expires_in_s=1)
    time.sleep(1.1)
    r = client.call("POST", f"{RES}/{reservation_id}/commit", token=service_token)
    assert r.status == 409, r.body
    assert "expired" in r.body["detail"], r.body
    assert stock_of(client, pid)["on_hand"] == 3


# ---- access ----


def test_access(client, platform, admin_token, service_token, customer_token, other_tenant_admin_token):
    pid = stocked_product(client, admin_token, 5)["id"]
    reservation_id = rid("access")
    body = {"reservation_id": reservation_id, "items": [{"product_id": pid, "quantity": 1}]}
    assert client.call("POST", RES, json=body).status == 401
    assert client.call("POST", RES, json=body, token=customer_token).status == 403
    reserve(client, service_token, reservation_id, [(pid, 1)])
    for method, path in (("GET", f"{RES}/{reservation_id}"), ("POST", f"{RES}/{reservation_id}/commit"), ("DELETE", f"{RES}/{reservation_id}")):
        assert client.call(method, path, token=customer_token).status == 403
        # another tenant does not see the reservation, nor the product
        assert client.call(method, path, token=other_tenant_admin_token).status == 404
    r = client.call("POST", RES, json={**body, "reservation_id": rid("t2")}, token=other_tenant_admin_token)
    assert r.status == 422, r.body
    assert stock_triplet(client, pid) == (5, 1, 4)
    # ids that cannot exist (asked of the service itself: the gateway has its own path rules)
    for bad in ("no%20such", "x" * 65, "%C3%A9", "a%7Eb", "a%2Bb"):
        for method, path in (("GET", f"{RES}/{bad}"), ("POST", f"{RES}/{bad}/commit"), ("DELETE", f"{RES}/{bad}")):
            assert client.call(method, path, token=service_token, direct=True).status == 404, (method, path)
    assert client.call("GET", f"{RES}/never-made", token=service_token).status == 404
    assert client.call("DELETE", f"{RES}/never-made", token=service_token).status == 404
    assert client.call("POST", f"{RES}/never-made/commit", token=service_token).status == 404


# ---- bad input ----


def bad_bodies(pid):
    item = {"product_id": pid, "quantity": 1}
    many = [{"product_id": str(uuid.uuid4()), "quantity": 1} for _ in range(101)]
    return [
        ({"items": [item]}, "reservation_id"),
        ({"reservation_id": "", "items": [item]}, "reservation_id"),
        ({"reservation_id": "x" * 65, "items": [item]}, "reservation_id"),
        ({"reservation_id": "a b", "items": [item]}, "reservation_id"),
        ({"reservation_id": "a/b", "items": [item]}, "reservation_id"),
        ({"reservation_id": "caf\u00e9", "items": [item]}, "reservation_id"),
        ({"reservation_id": 12, "items": [item]}, "reservation_id"),
        ({"reservation_id": "ok"}, "items"),
        ({"reservation_id": "ok", "items": []}, "items"),
        ({"reservation_id": "ok", "items": many}, "items"),
        ({"reservation_id": "ok", "items": {"product_id": pid}}, "items"),
        ({"reservation_id": "ok", "items": [item, item]}, "items[1].product_id"),
        ({"reservation_id": "ok", "items": [item, {"product_id": pid.upper(), "quantity": 2}]}, "items[1].product_id"),
        ({"reservation_id": "ok", "items": [{"product_id": pid, "quantity": 0}]}, "items[0].quantity"),
        ({"reservation_id": "ok", "items": [{"product_id": pid, "quantity": -1}]}, "items[0].quantity"),
        ({"reservation_id": "ok", "items": [{"product_id": pid, "quantity": 1_000_000_001}]}, "items[0].quantity"),
        ({"reservation_id": "ok", "items": [{"product_id": pid, "quantity": 1.5}]}, "items[0].quantity"),
        ({"reservation_id": "ok", "items": [{"product_id": pid, "quantity": "1"}]}, "items[0].quantity"),
        ({"reservation_id": "ok", "items": [{"product_id": pid}]}, "items[0].quantity"),
        ({"reservation_id": "ok", "items": [{"quantity": 1}]}, "items[0].product_id"),
        ({"reservation_id": "ok", "items": [{"product_id": "nope", "quantity": 1}]}, "items[0].product_id"),
        ({"reservation_id": "ok", "items": [{"product_id": pid, "quantity": 1, "price": 3}]}, "items[0].price"),
        ({"reservation_id": "ok", "items": [7]}, "items[0]"),
        ({"reservation_id": "ok", "items": [item], "expires_in_s": 0}, "expires_in_s"),
        ({"reservation_id": "ok", "items": [item], "expires_in_s": 86401}, "expires_in_s"),
        ({"reservation_id": "ok", "items": [item], "expires_in_s": 1.5}, "expires_in_s"),
        ({"reservation_id": "ok", "items": [item], "note": "x"}, "note"),
    ]


def test_bad_input_422(client, admin_token, service_token):
    pid = stocked_product(client, admin_token, 5)["id"]
    for body, field in bad_bodies(pid):
        if body.get("reservation_id") == "ok":
            body["reservation_id"] = rid("bad")
        r = client.call("POST", RES, json=body, token=service_token)
        assert r.status == 422, f"{json.dumps(body)[:200]}: {r.status} {r.body}"
        fields = [e["field"] for e in r.body["errors"]]
        assert field in fields, f"{json.dumps(body)[:200]}: errors {r.body['errors']} do not name {field}"
        if isinstance(body.get("reservation_id"), str) and body["reservation_id"].startswith("bad-"):
            assert client.call("GET", f"{RES}/{body['reservation_id']}", token=service_token).status == 404
    assert stock_triplet(client, pid) == (5, 0, 5)


@pytest.mark.parametrize(
    "raw,ctype,status",
    [(b"{", "application/json", 400), (b"[]", "application/json", 400), (b"{}", "text/plain", 415), (b'{"items": [], "items": []}', "application/json", 400)],
)
def test_unparsable_4xx(client, service_token, raw, ctype, status):
    r = client.call("POST", RES, raw=raw, headers={"Content-Type": ctype}, token=service_token)
    assert r.status == status, r.body


# ---- reliability: never oversell ----


def test_200_concurrent_for_the_last_50(client, admin_token, service_token):
    pid = stocked_product(client, admin_token, 50)["id"]
    n = 200
    results = [None] * n
    start = threading.Barrier(n)
    tag = uuid.uuid4().hex[:8]

    def worker(i):
        start.wait()
        body = {"reservation_id": f"last50-{tag}-{i}", "items": [{"product_id": pid, "quantity": 1}]}
        results[i] = client.call("POST", RES, json=body, token=service_token).status

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert results.count(201) == 50, {s: results.count(s) for s in set(results)}
    assert results.count(409) == 150, {s: results.count(s) for s in set(results)}
    assert stock_triplet(client, pid) == (50, 50, 0)
    # and the 150 refused ones left nothing behind
    refused = [i for i, s in enumerate(results) if s == 409]
    for i in refused[:20]:
        assert client.call("GET", f"{RES}/last50-{tag}-{i}", token=service_token).status == 404
