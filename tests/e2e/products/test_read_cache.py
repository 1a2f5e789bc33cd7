"""The catalog's read cache (AGORA_PRODUCTS_CACHE_MB, on by default) never shows a stale answer
after a change made through this service: each change drops the cache at once."""

import re

from catalogclient import get_product, new_category, new_product, unique

HITS = "agora_products_cache_hits_total"


def _cache_hits(client):
    """agora_products_cache_hits_total as agora-products' own /metrics reports it now."""
    r = client.call("GET", "/metrics", direct=True, check=False)
    assert r.status == 200, r.body
    text = r.body.decode("utf-8") if isinstance(r.body, bytes) else r.body
    found = re.findall(rf"^{HITS} (\d+)$", text, re.MULTILINE)
    assert len(found) == 1, f"{HITS} appears {len(found)} times in /metrics:\n{text}"
    return int(found[0])


def _list(client, query, token=None):
    r = client.call("GET", f"/api/v1/products?{query}", token=token)
    assert r.status == 200, r.body
    return r.body


def test_a_write_is_seen_by_the_next_read(client, admin_token):
    p = new_product(client, admin_token, on_hand=5)
    hits = _cache_hits(client)
    assert get_product(client, p["id"])["price"]["amount"] == 1999
    after_miss = _cache_hits(client)
    assert after_miss == hits, f"the first read after a write was counted as a hit: {hits} -> {after_miss}"
    get_product(client, p["id"])  # served from the cache now
    after_hit = _cache_hits(client)
    assert after_hit == after_miss + 1, f"{HITS} went from {after_miss} to {after_hit}, not +1"
    r = client.call("PATCH", f"/api/v1/products/{p['id']}", json={"price": {"amount": 2500, "currency": "EUR"}}, token=admin_token)
    assert r.status == 200, r.body
    assert get_product(client, p["id"])["price"]["amount"] == 2500
    r = client.call("POST", f"/api/v1/products/{p['id']}/stock", json={"delta": 3}, token=admin_token)
    assert r.status == 200, r.body
    assert get_product(client, p["id"])["stock"]["on_hand"] == 8


def test_lists_and_searches_follow_creations(client, admin_token):
    word = unique("cachew").replace("-", "")
    q = f"q={word}"
    assert _list(client, q)["total"] == 0
    assert _list(client, q)["total"] == 0  # cached
    new_product(client, admin_token, name=f"Lamp {word}")
    assert _list(client, q)["total"] == 1


def test_a_moved_category_changes_the_filtered_list_at_once(client, admin_token):
    root_a = new_category(client, admin_token)
    root_b = new_category(client, admin_token)
    child = new_category(client, admin_token, parent_id=root_a["id"])
    new_product(client, admin_token, category_ids=[child["id"]])
    assert _list(client, f"category={root_a['id']}")["total"] == 1
    assert _list(client, f"category={root_b['id']}")["total"] == 0
    r = client.call("PATCH", f"/api/v1/categories/{child['id']}", json={"parent_id": root_b["id"]}, token=admin_token)
    assert r.status == 200, r.body
    assert _list(client, f"category={root_a['id']}")["total"] == 0
    assert _list(client, f"category={root_b['id']}")["total"] == 1


def test_a_deactivated_product_disappears_for_the_public_only(client, admin_token):
    p = new_product(client, admin_token)
    get_product(client, p["id"])
    r = client.call("PATCH", f"/api/v1/products/{p['id']}", json={"active": False}, token=admin_token)
    assert r.status == 200, r.body
    assert client.call("GET", f"/api/v1/products/{p['id']}").status == 404
    assert get_product(client, p["id"], token=admin_token)["active"] is False
