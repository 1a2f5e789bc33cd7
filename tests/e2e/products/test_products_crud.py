"""Products: create, read, replace, patch and delete; every bad input of the issue that concerns
them (each refusal followed by a read-back proving nothing was written), tenant isolation, roles,
and the products.product.* events in the outbox. Runs on SQLite and PostgreSQL (`platform`)."""

import uuid

import pytest

from catalogclient import get_product, new_brand, new_catalog, new_category, new_product, new_type, new_vat_rate, unique
from test_images import blob_files, png
from test_inventory import outbox_events

PRICE_MAX = 100_000_000_000
QUANTITY_MAX = 1_000_000_000


def tenant_admin(platform):
    """An admin token of a fresh tenant, so that lists hold only what the test made."""
    return platform.mint("admin", tenant=unique("t").lower())


def refused(client, method, path, status, token, json=None, field=None, raw=None, headers=None):
    r = client.call(method, path, json=json, token=token, raw=raw, headers=headers)
    assert r.status == status, f"{method} {path} {json!r:.200}{raw!r:.100}: {r.status} {r.body!r:.400}"
    if field is not None:
        fields = [e["field"] for e in r.body.get("errors", [])]
        assert field in fields, f"{method} {path} {json!r:.200}: errors {r.body.get('errors')!r} do not name {field}"
    return r.body


def all_products(client, token):
    r = client.call("GET", "/api/v1/products?active=all&per_page=100", token=token)
    assert r.status == 200, r.body
    return r.body


def minimal(**fields):
    body = {"sku": unique("SKU"), "name": "Plain thing", "price": {"amount": 1999, "currency": "EUR"}}
    body.update(fields)
    return body


# ---- create and read ----


def test_create_with_everything(client, platform):
    token = tenant_admin(platform)
    brand = new_brand(client, token, name="Acme Orchards")
    ptype = new_type(client, token)
    vat = new_vat_rate(client, token)
    cats = [new_category(client, token) for _ in range(2)]
    catalog = new_catalog(client, token)
    body = {
        "sku": "APL-001.x_1",
        "name": "Crème Brûlée Deluxe",
        "description": "Baked custard",
        "price": {"amount": 1250, "currency": "JPY"},
        "vat_rate_id": vat["id"],
        "brand_id": brand["id"],
        "type_id": ptype["id"],
        "category_ids": [c["id"] for c in cats],
        "catalog_ids": [catalog["id"]],
        "attributes": {"colour": "amber", "size": "L", "note": "ünïcödé ✓"},
        "active": True,
        "on_hand": 12,
        "low_threshold": 3,
    }
    r = client.call("POST", "/api/v1/products", json=body, token=token)
    assert r.status == 201, r.body
    p = r.body
    assert r.header("Location") == f"/api/v1/products/{p['id']}"
    for k in ("sku", "name", "description", "price", "vat_rate_id", "brand_id", "type_id", "attributes", "active"):
        assert p[k] == body[k], k
    assert p["slug"] == "creme-brulee-deluxe"
    assert sorted(p["category_ids"]) == sorted(body["category_ids"])
    assert p["catalog_ids"] == body["catalog_ids"]
    assert p["stock"] == {"on_hand": 12, "reserved": 0, "available": 12, "low_threshold": 3}
    assert p["images"] == []
    assert p["created_at"] == p["updated_at"]
    assert get_product(client, p["id"], token) == p
    # anonymous readers see the default tenant only: this product is not there
    refused(client, "GET", f"/api/v1/products/{p['id']}", 404, None)


def test_defaults(client, platform):
    token = tenant_admin(platform)
    r = client.call("POST", "/api/v1/products", json=minimal(name="  Hello,  World!  "), token=token)
    assert r.status == 201, r.body
    p = r.body
    assert p["slug"] == "hello-world"
    assert p["description"] == ""
    assert p["vat_rate_id"] is None and p["brand_id"] is None and p["type_id"] is None
    assert p["category_ids"] == [] and p["catalog_ids"] == [] and p["attributes"] == {}
    assert p["active"] is True
    assert p["stock"] == {"on_hand": 0, "reserved": 0, "available": 0, "low_threshold": 5}
    # explicit nulls for the nullable ids are the same as leaving them out
    r = client.call("POST", "/api/v1/products", json=minimal(brand_id=None, type_id=None, vat_rate_id=None), token=token)
    assert r.status == 201 and r.body["brand_id"] is None
    # limits are inclusive
    r = client.call("POST", "/api/v1/products", json=minimal(price={"amount": PRICE_MAX, "currency": "KWD"}, on_hand=QUANTITY_MAX, slug="a" * 120, name="n" * 200), token=token)
    assert r.status == 201, r.body
    assert r.body["price"]["amount"] == PRICE_MAX and r.body["stock"]["on_hand"] == QUANTITY_MAX


# ---- bad input ----

BAD_BODIES = [
    ({"name": "x", "price": {"amount": 1, "currency": "EUR"}}, "sku"),
    ({"sku": "S-1", "price": {"amount": 1, "currency": "EUR"}}, "name"),
    ({"sku": "S-1", "name": "x"}, "price"),
    (minimal(price={"amount": 19.99, "currency": "EUR"}), "price.amount"),
    (minimal(price={"amount": 1999.0, "currency": "EUR"}), "price.amount"),
    (minimal(price={"amount": "1999", "currency": "EUR"}), "price.amount"),
    (minimal(price={"amount": -1, "currency": "EUR"}), "price.amount"),
    (minimal(price={"amount": PRICE_MAX + 1, "currency": "EUR"}), "price.amount"),
    (minimal(price={"amount": 1e30, "currency": "EUR"}), "price.amount"),
    (minimal(price={"amount": 2**63 - 1, "currency": "EUR"}), "price.amount"),
    (minimal(price={"amount": -(2**63), "currency": "EUR"}), "price.amount"),
    (minimal(price={"amount": None, "currency": "EUR"}), "price.amount"),
    (minimal(price={"currency": "EUR"}), "price.amount"),
    (minimal(price={"amount": 1}), "price.currency"),
    (minimal(price={"amount": 1, "currency": "XXX"}), "price.currency"),
    (minimal(price={"amount": 1, "currency": "eur"}), "price.currency"),
    (minimal(price={"amount": 1, "currency": "EURO"}), "price.currency"),
    (minimal(price={"amount": 1, "currency": 978}), "price.currency"),
    (minimal(price={"amount": 1, "currency": "EUR", "tax": 2}), "price.tax"),
    (minimal(price=1999), "price"),
    (minimal(colour="red"), "colour"),
    (minimal(id=str(uuid.uuid4())), "id"),
    (minimal(stock={"on_hand": 1}), "stock"),
    (minimal(sku="-abc"), "sku"),
    (minimal(sku="a b"), "sku"),
    (minimal(sku="S" * 65), "sku"),
    (minimal(sku=""), "sku"),
    (minimal(sku=42), "sku"),
    (minimal(name=""), "name"),
    (minimal(name="n" * 201), "name"),
    (minimal(name="tab\there"), "name"),
    (minimal(name="!!! ???"), "slug"),
    (minimal(slug="Bad Slug"), "slug"),
    (minimal(slug="a--b"), "slug"),
    (minimal(slug="a" * 121), "slug"),
    (minimal(description="d" * 10001), "description"),
    (minimal(brand_id="not-an-id"), "brand_id"),
    (minimal(brand_id=str(uuid.uuid4())), "brand_id"),
    (minimal(type_id=str(uuid.uuid4())), "type_id"),
    (minimal(vat_rate_id=str(uuid.uuid4())), "vat_rate_id"),
    (minimal(brand_id=7), "brand_id"),
    (minimal(category_ids=[str(uuid.uuid4())]), "category_ids"),
    (minimal(category_ids="abc"), "category_ids"),
    (minimal(category_ids=[1]), "category_ids"),
    (minimal(category_ids=[str(uuid.uuid4())] * 2), "category_ids"),
    (minimal(category_ids=[str(uuid.uuid4()) for _ in range(33)]), "category_ids"),
    (minimal(catalog_ids=[str(uuid.uuid4())]), "catalog_ids"),
    (minimal(attributes={"colour": 5}), "attributes"),
    (minimal(attributes={"colour": None}), "attributes"),
    (minimal(attributes={"": "x"}), "attributes"),
    (minimal(attributes={"k" * 65: "x"}), "attributes"),
    (minimal(attributes={"k": "v" * 501}), "attributes"),
    (minimal(attributes={f"k{i}": "v" for i in range(65)}), "attributes"),
    (minimal(attributes=["a"]), "attributes"),
    (minimal(active="yes"), "active"),
    (minimal(on_hand=-1), "on_hand"),
    (minimal(on_hand=QUANTITY_MAX + 1), "on_hand"),
    (minimal(on_hand=1.5), "on_hand"),
    (minimal(low_threshold=-1), "low_threshold"),
]


@pytest.mark.parametrize("body,field", BAD_BODIES, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD_BODIES)])
def test_create_refused_422(client, platform, body, field):
    token = tenant_admin(platform)
    refused(client, "POST", "/api/v1/products", 422, token, json=body, field=field)
    assert all_products(client, token)["total"] == 0


@pytest.mark.parametrize(
    "raw,field",
    [
        (b'{"sku":"S-1","name":"x","price":{"amount":9223372036854775808,"currency":"EUR"}}', "price.amount"),
        (b'{"sku":"S-1","name":"x","price":{"amount":100000000000000000000000000000,"currency":"EUR"}}', "price.amount"),
        (b'{"sku":"S-1","name":"x","price":{"amount":1,"currency":"EUR"},"on_hand":-9223372036854775809}', "on_hand"),
    ],
)
def test_overflowing_integers_422(client, platform, raw, field):
    token = tenant_admin(platform)
    refused(client, "POST", "/api/v1/products", 422, token, raw=raw, field=field)
    assert all_products(client, token)["total"] == 0


@pytest.mark.parametrize(
    "raw,headers,status",
    [
        (b"not json", None, 400),
        (b"[1, 2]", None, 400),
        (b"", None, 400),
        (b'{"sku": "a", "sku": "b"}', None, 400),
        (b'{"sku":"S-1","name":"x","price":{"amount":1,"currency":"EUR"}}', {"Content-Type": "text/plain"}, 415),
        (b'{"sku":"S-1","name":"x","price":{"amount":1,"currency":"EUR"}', None, 400),
    ],
)
def test_unparsable_4xx(client, platform, raw, headers, status):
    token = tenant_admin(platform)
    refused(client, "POST", "/api/v1/products", status, token, raw=raw, headers=headers)
    assert all_products(client, token)["total"] == 0


def test_other_tenants_objects_are_unknown(client, platform):
    token, other = tenant_admin(platform), tenant_admin(platform)
    brand, cat = new_brand(client, other), new_category(client, other)
    refused(client, "POST", "/api/v1/products", 422, token, json=minimal(brand_id=brand["id"]), field="brand_id")
    refused(client, "POST", "/api/v1/products", 422, token, json=minimal(category_ids=[cat["id"]]), field="category_ids")
    assert all_products(client, token)["total"] == 0


def test_duplicate_sku_409(client, platform):
    token = tenant_admin(platform)
    first = new_product(client, token, sku="DUP-1")
    refused(client, "POST", "/api/v1/products", 409, token, json=minimal(sku="DUP-1", name="Second"))
    listed = all_products(client, token)
    assert listed["total"] == 1 and listed["items"][0] == first
    # SKUs are unique per tenant only
    assert new_product(client, tenant_admin(platform), sku="DUP-1")["sku"] == "DUP-1"


def test_roles(client, platform, customer_token, service_token):
    refused(client, "POST", "/api/v1/products", 401, None, json=minimal())
    refused(client, "POST", "/api/v1/products", 403, customer_token, json=minimal())
    refused(client, "POST", "/api/v1/products", 403, service_token, json=minimal())
    token = tenant_admin(platform)
    p = new_product(client, token)
    for method, body in (("PUT", minimal()), ("PATCH", {"name": "x"}), ("DELETE", None)):
        refused(client, method, f"/api/v1/products/{p['id']}", 401, None, json=body)
        refused(client, method, f"/api/v1/products/{p['id']}", 403, customer_token, json=body)
    assert get_product(client, p["id"], token) == p


def test_unknown_ids_404(client, platform):
    token = tenant_admin(platform)
    for pid in (str(uuid.uuid4()), "not-an-id", "0" * 36):
        path = f"/api/v1/products/{pid}"
        refused(client, "GET", path, 404, token)
        refused(client, "PUT", path, 404, token, json=minimal())
        refused(client, "PATCH", path, 404, token, json={"name": "x"})
        refused(client, "DELETE", path, 404, token)
    assert all_products(client, token)["total"] == 0


def test_tenant_isolation(client, platform):
    token, other = tenant_admin(platform), tenant_admin(platform)
    p = new_product(client, token)
    path = f"/api/v1/products/{p['id']}"
    refused(client, "GET", path, 404, other)
    refused(client, "PUT", path, 404, other, json=minimal())
    refused(client, "PATCH", path, 404, other, json={"name": "stolen"})
    refused(client, "DELETE", path, 404, other)
    assert all_products(client, other)["total"] == 0
    assert get_product(client, p["id"], token) == p


def test_inactive_hidden_from_the_shop(client, platform):
    tenant = unique("t").lower()
    token = platform.mint("admin", tenant=tenant)
    customer = platform.mint("customer", tenant=tenant)
    service = platform.mint("service", tenant=tenant)
    p = new_product(client, token, active=False)
    refused(client, "GET", f"/api/v1/products/{p['id']}", 404, customer)
    assert get_product(client, p["id"], service) == p
    assert get_product(client, p["id"], token) == p


# ---- replace and patch ----


def test_replace(client, platform):
    token = tenant_admin(platform)
    brand, cat = new_brand(client, token), new_category(client, token)
    p = new_product(client, token, brand_id=brand["id"], category_ids=[cat["id"]], attributes={"a": "1"}, on_hand=7, low_threshold=2)
    path = f"/api/v1/products/{p['id']}"
    put = {"sku": "NEW-SKU", "name": "Renamed thing", "price": {"amount": 5, "currency": "USD"}}
    r = client.call("PUT", path, json=put, token=token)
    assert r.status == 200, r.body
    q = r.body
    assert q["sku"] == "NEW-SKU" and q["name"] == "Renamed thing" and q["slug"] == "renamed-thing"
    assert q["price"] == put["price"]
    # everything left out takes its default again; the stock stays
    assert q["brand_id"] is None and q["category_ids"] == [] and q["attributes"] == {}
    assert q["stock"] == {"on_hand": 7, "reserved": 0, "available": 7, "low_threshold": 5}
    assert q["created_at"] == p["created_at"] and q["id"] == p["id"]
    assert get_product(client, p["id"], token) == q
    # stock changes go elsewhere; other refusals leave the product as it was
    refused(client, "PUT", path, 422, token, json=dict(put, on_hand=3), field="on_hand")
    refused(client, "PUT", path, 422, token, json={"name": "no sku"}, field="sku")
    refused(client, "PUT", path, 422, token, json=dict(put, brand_id=str(uuid.uuid4())), field="brand_id")
    other = new_product(client, token)
    refused(client, "PUT", path, 409, token, json=dict(put, sku=other["sku"]))
    assert get_product(client, p["id"], token) == q
    # its own sku is not a conflict
    r = client.call("PUT", path, json=dict(put, description="same sku"), token=token)
    assert r.status == 200 and r.body["description"] == "same sku"


def test_patch(client, platform):
    token = tenant_admin(platform)
    brand, ptype = new_brand(client, token), new_type(client, token)
    cats = [new_category(client, token) for _ in range(2)]
    p = new_product(client, token, name="Old Name", brand_id=brand["id"], type_id=ptype["id"], category_ids=[cats[0]["id"]],
                    attributes={"colour": "red", "size": "M"}, low_threshold=4)
    path = f"/api/v1/products/{p['id']}"

    def patch(body):
        r = client.call("PATCH", path, json=body, token=token)
        assert r.status == 200, f"{body}: {r.status} {r.body!r:.300}"
        return r.body

    q = patch({"name": "New Name"})
    assert q["name"] == "New Name" and q["slug"] == p["slug"]  # the slug stays
    assert q["brand_id"] == brand["id"] and q["stock"]["low_threshold"] == 4
    q = patch({"brand_id": None, "attributes": {"colour": None, "weight": "2kg"}, "price": {"amount": 5}})
    assert q["brand_id"] is None and q["type_id"] == ptype["id"]
    assert q["attributes"] == {"size": "M", "weight": "2kg"}
    assert q["price"] == {"amount": 5, "currency": "EUR"}
    q = patch({"category_ids": [c["id"] for c in cats], "active": False, "low_threshold": 0})
    assert sorted(q["category_ids"]) == sorted(c["id"] for c in cats) and q["active"] is False
    assert q["stock"]["low_threshold"] == 0
    q = patch({"slug": None})  # made again from the name
    assert q["slug"] == "new-name"
    same = patch({})  # an empty patch changes nothing but updated_at
    assert dict(same, updated_at=None) == dict(q, updated_at=None)
    # refusals change nothing
    for body, field in (
        ({"sku": None}, "sku"),
        ({"name": ""}, "name"),
        ({"price": {"amount": -5}}, "price.amount"),
        ({"price": {"currency": "ABC"}}, "price.currency"),
        ({"price": None}, "price"),
        ({"on_hand": 5}, "on_hand"),
        ({"colour": "red"}, "colour"),
        ({"type_id": str(uuid.uuid4())}, "type_id"),
        ({"catalog_ids": [str(uuid.uuid4())]}, "catalog_ids"),
    ):
        before = get_product(client, p["id"], token)
        refused(client, "PATCH", path, 422, token, json=body, field=field)
        assert get_product(client, p["id"], token) == before
    other = new_product(client, token)
    before = get_product(client, p["id"], token)
    refused(client, "PATCH", path, 409, token, json={"sku": other["sku"]})
    assert get_product(client, p["id"], token) == before


# ---- delete and events ----


def test_delete_and_events(client, platform, request):
    tenant = unique("t").lower()
    token = platform.mint("admin", tenant=tenant)
    p = new_product(client, token)
    path = f"/api/v1/products/{p['id']}"
    updated = client.call("PATCH", path, json={"name": "Changed"}, token=token).body
    r = client.call("DELETE", path, token=token)
    assert r.status == 204 and r.body in (b"", None)
    refused(client, "GET", path, 404, token)
    refused(client, "DELETE", path, 404, token)
    events = [e for e in outbox_events(platform, request, p["id"]) if e["type"].startswith("products.product.")]
    assert [e["type"] for e in events] == ["products.product.created", "products.product.updated", "products.product.deleted"]
    assert events[0]["data"] == p
    assert events[1]["data"] == updated
    assert events[2]["data"] == {"id": p["id"], "sku": p["sku"]}
    assert all(e["tenant"] == tenant and e["source"] == "agora/products" for e in events)


def test_refused_writes_emit_nothing(client, platform, request):
    token = tenant_admin(platform)
    p = new_product(client, token)
    path = f"/api/v1/products/{p['id']}"
    refused(client, "PATCH", path, 422, token, json={"price": {"amount": -1}})
    refused(client, "PUT", path, 422, token, json={"name": "x"})
    types = [e["type"] for e in outbox_events(platform, request, p["id"])]
    assert types.count("products.product.created") == 1 and "products.product.updated" not in types


def test_delete_while_held_409(client, platform, service_token, admin_token):
    """A product with units held by an open reservation cannot go; released, it can."""
    p = new_product(client, admin_token, on_hand=5)
    rid = unique("res")
    r = client.call("POST", "/api/v1/inventory/reservations", json={"reservation_id": rid, "items": [{"product_id": p["id"], "quantity": 2}], "expires_in_s": 600}, token=service_token)
    assert r.status in (200, 201), r.body
    refused(client, "DELETE", f"/api/v1/products/{p['id']}", 409, admin_token)
    assert get_product(client, p["id"], admin_token)["stock"]["reserved"] == 2
    r = client.call("DELETE", f"/api/v1/inventory/reservations/{rid}", token=service_token)
    assert r.status in (200, 204), r.body
    assert client.call("DELETE", f"/api/v1/products/{p['id']}", token=admin_token).status == 204


def test_delete_removes_image_blobs(client, platform, admin_token):
    p = new_product(client, admin_token)
    r = client.call("POST", f"/api/v1/products/{p['id']}/images", raw=png(), headers={"Content-Type": "image/png"}, token=admin_token)
    assert r.status == 201, r.body
    assert len(blob_files(platform, p["id"])) == 1
    assert client.call("DELETE", f"/api/v1/products/{p['id']}", token=admin_token).status == 204
    assert blob_files(platform, p["id"]) == []
