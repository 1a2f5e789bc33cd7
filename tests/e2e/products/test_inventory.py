"""Stock levels: POST /products/{id}/stock with set / delta, every refusal (each followed by a
read-back proving the stock did not move), tenant isolation, concurrent deltas that must not lose
one, and the products.inventory.updated / .low events in the outbox. Runs on SQLite and
PostgreSQL (`platform`). Helpers used by test_reservations.py live here too."""

import json
import os
import sqlite3
import threading
import urllib.parse

import pytest

from catalogclient import get_product, new_product

QUANTITY_MAX = 1_000_000_000


def stock_path(product_id):
    return f"/api/v1/products/{product_id}/stock"


def stock_of(client, product_id):
    return get_product(client, product_id)["stock"]


def change_stock(client, token, product_id, **change):
    r = client.call("POST", stock_path(product_id), json=change, token=token)
    assert r.status == 200, f"stock {change}: {r.status} {r.body!r:.300}"
    return r.body["stock"]


def stocked_product(client, token, on_hand, low_threshold=None):
    """A new product with on_hand units (set through /stock, so the route is exercised)."""
    fields = {} if low_threshold is None else {"low_threshold": low_threshold}
    product = new_product(client, token, **fields)
    if on_hand:
        change_stock(client, token, product["id"], set=on_hand)
    return product


def outbox_events(platform, request, subject):
    """The envelopes the products service put in its outbox for subject, oldest first."""
    url = platform.products_db_url
    if url.startswith("sqlite:"):
        path = url[len("sqlite:"):]
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = db.execute("SELECT envelope FROM outbox WHERE subject = ? ORDER BY seq", (subject,)).fetchall()
        finally:
            db.close()
        return [json.loads(r[0]) for r in rows]
    cluster = request.getfixturevalue("postgres_cluster")
    dbname = urllib.parse.urlparse(url).path.lstrip("/")
    assert all(c in "0123456789abcdef-" for c in subject), subject  # an id: safe in the SQL text
    out = cluster.psql(f"SELECT envelope FROM outbox WHERE subject = '{subject}' ORDER BY seq", dbname=dbname)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def inventory_events(platform, request, product_id):
    return [e for e in outbox_events(platform, request, product_id) if e["type"].startswith("products.inventory.")]


# ---- set and delta ----


def test_set_and_delta(client, admin_token):
    product = new_product(client, admin_token)
    pid = product["id"]
    assert product["stock"]["on_hand"] == 0
    r = client.call("POST", stock_path(pid), json={"set": 40}, token=admin_token)
    assert r.status == 200, r.body
    assert r.body["id"] == pid
    assert r.body["stock"] == {"on_hand": 40, "reserved": 0, "available": 40, "low_threshold": product["stock"]["low_threshold"]}
    assert change_stock(client, admin_token, pid, delta=5)["on_hand"] == 45
    assert change_stock(client, admin_token, pid, delta=-45)["on_hand"] == 0
    assert change_stock(client, admin_token, pid, set=QUANTITY_MAX)["on_hand"] == QUANTITY_MAX
    assert change_stock(client, admin_token, pid, delta=-QUANTITY_MAX)["available"] == 0
    assert change_stock(client, admin_token, pid, delta=0)["on_hand"] == 0
    assert stock_of(client, pid)["on_hand"] == 0


def test_events(client, platform, request, admin_token):
    product = new_product(client, admin_token, low_threshold=5)
    pid = product["id"]
    change_stock(client, admin_token, pid, set=10)  # 0 -> 10: up, no "low"
    change_stock(client, admin_token, pid, delta=-4)  # 10 -> 6: still above
    change_stock(client, admin_token, pid, delta=-1)  # 6 -> 5: crosses down to the threshold
    change_stock(client, admin_token, pid, delta=-2)  # 5 -> 3: already low, no repeat
    change_stock(client, admin_token, pid, set=20)
    change_stock(client, admin_token, pid, set=0)  # 20 -> 0: crosses again
    events = inventory_events(platform, request, pid)
    kinds = [e["type"].rsplit(".", 1)[1] for e in events]
    assert kinds == ["updated", "updated", "updated", "low", "updated", "updated", "updated", "low"], kinds
    first = events[0]
    assert first["subject"] == pid
    assert first["data"] == {"product_id": pid, "sku": product["sku"], "on_hand": 10, "reserved": 0, "available": 10, "low_threshold": 5}
    assert events[3]["data"]["available"] == 5
    assert [e["data"]["on_hand"] for e in events if e["type"].endswith(".updated")] == [10, 6, 5, 3, 20, 0]


# ---- refusals, each followed by a read-back ----

BAD_BODIES = [
    {},
    {"set": 1, "delta": 1},
    {"set": -1},
    {"set": QUANTITY_MAX + 1},
    {"delta": QUANTITY_MAX + 1},
    {"delta": -QUANTITY_MAX - 1},
    {"set": 1.5},
    {"set": 2.0},
    {"set": "5"},
    {"delta": None},
    {"set": True},
    {"set": [1]},
    {"set": 1, "note": "x"},
    {"on_hand": 3},
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=[json.dumps(b) for b in BAD_BODIES])
def test_malformed_422(client, admin_token, body):
    pid = stocked_product(client, admin_token, 7)["id"]
    r = client.call("POST", stock_path(pid), json=body, token=admin_token)
    assert r.status == 422, f"{body}: {r.status} {r.body}"
    assert r.body["errors"], r.body
    assert stock_of(client, pid)["on_hand"] == 7


@pytest.mark.parametrize(
    "raw,ctype,status",
    [
        (b"{", "application/json", 400),
        (b"[1]", "application/json", 400),
        (b'{"set": 1, "set": 2}', "application/json", 400),
        (b'{"set": 1e400}', "application/json", 422),  # well-formed JSON, a number out of range
        (b'{"set": 99999999999999999999999}', "application/json", 422),
        (b'{"set": 1}', "text/plain", 415),
    ],
)
def test_unparsable_4xx(client, admin_token, raw, ctype, status):
    pid = stocked_product(client, admin_token, 7)["id"]
    r = client.call("POST", stock_path(pid), raw=raw, headers={"Content-Type": ctype}, token=admin_token)
    assert r.status == status, f"{raw!r}: {r.status} {r.body}"
    assert stock_of(client, pid)["on_hand"] == 7


def test_conflicts_409_say_the_numbers(client, admin_token, service_token):
    pid = stocked_product(client, admin_token, 10)["id"]
    r = client.call("POST", stock_path(pid), json={"delta": -11}, token=admin_token)
    assert r.status == 409, r.body
    assert "-1" in r.body["detail"] and "10" in r.body["detail"], r.body["detail"]
    change_stock(client, admin_token, pid, set=QUANTITY_MAX)
    r = client.call("POST", stock_path(pid), json={"delta": 1}, token=admin_token)
    assert r.status == 409, r.body
    assert str(QUANTITY_MAX + 1) in r.body["detail"], r.body["detail"]
    change_stock(client, admin_token, pid, set=10)
    # 6 units reserved: on_hand may not go below 6
    res = client.call(
        "POST",
        "/api/v1/inventory/reservations",
        json={"reservation_id": f"stock-{pid}", "items": [{"product_id": pid, "quantity": 6}]},
        token=service_token,
    )
    assert res.status == 201, res.body
    for body in ({"set": 5}, {"delta": -5}, {"set": 0}):
        r = client.call("POST", stock_path(pid), json=body, token=admin_token)
        assert r.status == 409, f"{body}: {r.status} {r.body}"
        assert "6" in r.body["detail"] and "reserved" in r.body["detail"], r.body["detail"]
        assert stock_of(client, pid) == {"on_hand": 10, "reserved": 6, "available": 4, "low_threshold": stock_of(client, pid)["low_threshold"]}
    assert change_stock(client, admin_token, pid, set=6)["available"] == 0
    assert change_stock(client, admin_token, pid, delta=-0)["reserved"] == 6


def test_access_and_unknown(client, platform, admin_token, customer_token, service_token, other_tenant_admin_token):
    pid = stocked_product(client, admin_token, 3)["id"]
    assert client.call("POST", stock_path(pid), json={"set": 9}).status == 401
    assert client.call("POST", stock_path(pid), json={"set": 9}, token=customer_token).status == 403
    assert client.call("POST", stock_path(pid), json={"set": 9}, token=service_token).status == 403
    # another tenant's product does not exist
    assert client.call("POST", stock_path(pid), json={"set": 9}, token=other_tenant_admin_token).status == 404
    assert client.call("POST", stock_path("0190a0b0-0000-7000-8000-000000000000"), json={"set": 9}, token=admin_token).status == 404
    assert client.call("POST", stock_path("not-an-id"), json={"set": 9}, token=admin_token).status == 404
    assert stock_of(client, pid)["on_hand"] == 3


# ---- concurrency ----


def test_concurrent_deltas_lose_nothing(client, admin_token):
    pid = stocked_product(client, admin_token, 1000)["id"]
    threads, per_thread = 20, 10
    statuses = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker(n):
        start.wait()
        for i in range(per_thread):
            delta = 3 if (n + i) % 2 == 0 else -1
            r = client.call("POST", stock_path(pid), json={"delta": delta}, token=admin_token)
            with lock:
                statuses.append((r.status, delta))

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert all(s == 200 for s, _ in statuses), [s for s, _ in statuses if s != 200]
    expected = 1000 + sum(d for _, d in statuses)
    assert stock_of(client, pid)["on_hand"] == expected
