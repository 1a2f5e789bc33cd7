"""Categories, brands, types, catalogs and VAT rates: CRUD, the category tree's rules, deleting
what is in use (409, then ?reassign_to=), tenant isolation and every bad input — each refusal
followed by a read-back proving nothing changed. Runs on SQLite and PostgreSQL (`platform`)."""

import threading
import uuid

import pytest

from catalogclient import get_product, new_brand, new_catalog, new_category, new_product, new_type, new_vat_rate, unique
from test_inventory import outbox_events

MAKERS = {
    "categories": new_category,
    "brands": new_brand,
    "types": new_type,
    "catalogs": new_catalog,
    "vat-rates": new_vat_rate,
}
SLUGGED = ["categories", "brands", "types", "catalogs"]
ALL = list(MAKERS)
# How a product names each resource.
PRODUCT_FIELD = {
    "categories": ("category_ids", True),
    "catalogs": ("catalog_ids", True),
    "brands": ("brand_id", False),
    "types": ("type_id", False),
    "vat-rates": ("vat_rate_id", False),
}


def tenant_admin(platform):
    """An admin token of a fresh tenant, so lists hold only what the test made."""
    return platform.mint("admin", tenant=unique("t").lower())


def get(client, path, token=None):
    r = client.call("GET", path, token=token)
    assert r.status == 200, f"GET {path}: {r.status} {r.body!r:.300}"
    return r.body


def refused(client, method, path, status, token, json=None, field=None, raw=None, headers=None):
    r = client.call(method, path, json=json, token=token, raw=raw, headers=headers)
    assert r.status == status, f"{method} {path} {json!r:.200}: {r.status} {r.body!r:.300}"
    if field is not None:
        fields = [e["field"] for e in r.body.get("errors", [])]
        assert field in fields, f"{method} {path}: errors {r.body.get('errors')!r} do not name {field}"
    return r.body


def list_all(client, path, token=None, query=""):
    body = get(client, f"{path}?per_page=100{query}", token)
    return body


# ---- CRUD, per resource ----


@pytest.mark.parametrize("res", ALL)
def test_crud(client, platform, res):
    token = tenant_admin(platform)
    path = f"/api/v1/{res}"
    body = {"name": "First one"}
    if res == "vat-rates":
        body["rate_bp"] = 2000
    r = client.call("POST", path, json=body, token=token)
    assert r.status == 201, r.body
    obj = r.body
    assert r.header("Location") == f"{path}/{obj['id']}"
    assert obj["name"] == "First one"
    assert obj["created_at"] == obj["updated_at"]
    if res in SLUGGED:
        assert obj["slug"] == "first-one" and obj["description"] == ""
    if res == "categories":
        assert obj["parent_id"] is None and obj["position"] == 0
    if res == "vat-rates":
        assert obj["rate_bp"] == 2000
    assert get(client, f"{path}/{obj['id']}", token) == obj
    listed = list_all(client, path, token)
    assert listed["total"] == 1 and listed["items"] == [obj]
    # PUT: every writable field; absent optional ones take their defaults
    put = {"name": "Second name"}
    if res in SLUGGED:
        put.update(slug="custom-slug", description="described")
    if res == "categories":
        put["position"] = 7
    if res == "vat-rates":
        put["rate_bp"] = 550
    r = client.call("PUT", f"{path}/{obj['id']}", json=put, token=token)
    assert r.status == 200, r.body
    for k, v in put.items():
        assert r.body[k] == v
    assert r.body["created_at"] == obj["created_at"]
    # PATCH: only what is given; the slug stays when the name changes
    r = client.call("PATCH", f"{path}/{obj['id']}", json={"name": "Third"}, token=token)
    assert r.status == 200, r.body
    assert r.body["name"] == "Third"
    for k, v in put.items():
        if k != "name":
            assert r.body[k] == v
    # PUT without slug makes it from the name again
    put = {"name": "Fourth Name"}
    if res == "vat-rates":
        put["rate_bp"] = 0
    r = client.call("PUT", f"{path}/{obj['id']}", json=put, token=token)
    assert r.status == 200, r.body
    if res in SLUGGED:
        assert r.body["slug"] == "fourth-name" and r.body["description"] == ""
    if res == "categories":
        assert r.body["position"] == 0
    assert get(client, f"{path}/{obj['id']}", token) == r.body
    r = client.call("DELETE", f"{path}/{obj['id']}", token=token)
    assert r.status == 204
    refused(client, "GET", f"{path}/{obj['id']}", 404, token)
    refused(client, "DELETE", f"{path}/{obj['id']}", 404, token)
    refused(client, "PATCH", f"{path}/{obj['id']}", 404, token, json={"name": "x"})
    refused(client, "GET", f"{path}/{obj['id']}/products", 404, token)
    assert list_all(client, path, token)["total"] == 0


@pytest.mark.parametrize("res", ALL)
def test_list_sort_and_pages(client, platform, res):
    token = tenant_admin(platform)
    path = f"/api/v1/{res}"
    made = [MAKERS[res](client, token, name=n) for n in ("charlie", "alpha", "bravo")]
    names = [i["name"] for i in list_all(client, path, token)["items"]]
    assert names == ["alpha", "bravo", "charlie"]
    page = get(client, f"{path}?per_page=2&page=2", token)
    assert page["total"] == 3 and page["page"] == 2 and page["per_page"] == 2
    assert [i["name"] for i in page["items"]] == ["charlie"]
    newest = get(client, f"{path}?sort=-created_at&per_page=100", token)["items"]
    stamps = [i["created_at"] for i in newest]
    assert stamps == sorted(stamps, reverse=True) and {i["id"] for i in newest} == {m["id"] for m in made}
    assert get(client, f"{path}?page=5", token)["items"] == []
    # anonymous reads see the default tenant, not this one
    assert all(i["id"] not in {m["id"] for m in made} for i in list_all(client, path)["items"])
    for query in ("per_page=1000000000", "per_page=0", "page=0", "page=x", "sort=price", "sort=created_at", "sort=name&sort=name"):
        refused(client, "GET", f"{path}?{query}", 400, token)


def test_category_list_by_parent_and_position(client, platform):
    token = tenant_admin(platform)
    root = new_category(client, token, name="root")
    kids = [new_category(client, token, name=n, parent_id=root["id"], position=p) for n, p in (("b", 2), ("a", 3), ("c", 1))]
    got = get(client, f"/api/v1/categories?parent_id={root['id']}&sort=position", token)
    assert [i["name"] for i in got["items"]] == ["c", "b", "a"] and got["total"] == 3
    roots = get(client, "/api/v1/categories?parent_id=root", token)
    assert [i["id"] for i in roots["items"]] == [root["id"]]
    assert get(client, f"/api/v1/categories?parent_id={kids[0]['id']}", token)["total"] == 0
    for bad in ("nope", "123", ""):
        refused(client, "GET", f"/api/v1/categories?parent_id={bad}", 400, token)


# ---- bad input ----


def _valid_body(res):
    return {"name": unique("ok"), **({"rate_bp": 100} if res == "vat-rates" else {})}


@pytest.mark.parametrize("res", ALL)
def test_bad_bodies_change_nothing(client, platform, res):
    token = tenant_admin(platform)
    path = f"/api/v1/{res}"
    obj = MAKERS[res](client, token)
    bad = [
        ({"name": "x", "color": "red", **({"rate_bp": 1} if res == "vat-rates" else {})}, "color"),
        ({**_valid_body(res), "name": 5}, "name"),
        ({**_valid_body(res), "name": ""}, "name"),
        ({**_valid_body(res), "name": "   "}, "name"),
        ({**_valid_body(res), "name": None}, "name"),
        ({**_valid_body(res), "name": "x" * 101}, "name"),
        ({**_valid_body(res), "name": "tab\there"}, "name"),
    ]
    if res in SLUGGED:
        bad += [
            ({**_valid_body(res), "slug": "Not A Slug"}, "slug"),
            ({**_valid_body(res), "slug": "-edge"}, "slug"),
            ({**_valid_body(res), "slug": "a--b"}, "slug"),
            ({**_valid_body(res), "slug": ""}, "slug"),
            ({**_valid_body(res), "slug": "a" * 121}, "slug"),
            ({**_valid_body(res), "slug": 3}, "slug"),
            ({**_valid_body(res), "description": "d" * 2001}, "description"),
            ({**_valid_body(res), "description": None}, "description"),
            ({"name": "!!! ???"}, "name"),  # no slug can be made (PATCH keeps the slug: fine there)
        ]
    if res == "vat-rates":
        bad += [
            ({"name": "x" * 65, "rate_bp": 1}, "name"),
            ({"name": "v", "rate_bp": 10001}, "rate_bp"),
            ({"name": "v", "rate_bp": -1}, "rate_bp"),
            ({"name": "v", "rate_bp": 20.5}, "rate_bp"),
            ({"name": "v", "rate_bp": 2000.0}, "rate_bp"),
            ({"name": "v", "rate_bp": "2000"}, "rate_bp"),
            ({"name": "v"}, "rate_bp"),
        ]
    if res == "categories":
        bad += [
            ({"name": "x", "parent_id": "nope"}, "parent_id"),
            ({"name": "x", "parent_id": 5}, "parent_id"),
            ({"name": "x", "parent_id": str(uuid.uuid4())}, "parent_id"),
            ({"name": "x", "position": -1}, "position"),
            ({"name": "x", "position": 1000001}, "position"),
            ({"name": "x", "position": 1.5}, "position"),
        ]
    for body, field in bad:
        refused(client, "POST", path, 422, token, json=body, field=field)
        refused(client, "PUT", f"{path}/{obj['id']}", 422, token, json=body, field=field)
        patch = {k: v for k, v in body.items() if k == field}
        if patch and patch != {"name": "!!! ???"}:
            refused(client, "PATCH", f"{path}/{obj['id']}", 422, token, json=patch, field=field)
    refused(client, "POST", path, 422, token, json={}, field="name")
    refused(client, "PUT", f"{path}/{obj['id']}", 422, token, json={}, field="name")
    for raw in (b"[]", b"null", b"{", b'{"name": "a", "name": "b"}'):
        refused(client, "POST", path, 400, token, raw=raw)
        refused(client, "PATCH", f"{path}/{obj['id']}", 400, token, raw=raw)
    # Well-formed JSON with an integer beyond 64 bits: a value out of range, named.
    huge = b'{"name": "a", "rate_bp": 9223372036854775808}'
    refused(client, "POST", path, 422, token, raw=huge, field="rate_bp")
    refused(client, "PATCH", f"{path}/{obj['id']}", 422, token, raw=huge, field="rate_bp")
    refused(client, "POST", path, 415, token, raw=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    # who may write
    refused(client, "POST", path, 401, None, json=_valid_body(res))
    refused(client, "POST", path, 403, platform.mint("customer"), json=_valid_body(res))
    refused(client, "PATCH", f"{path}/{obj['id']}", 403, platform.mint("customer"), json={"name": "x"})
    refused(client, "DELETE", f"{path}/{obj['id']}", 403, platform.mint("customer"))
    for bad_id in ("nope", "1", str(uuid.uuid4())):
        refused(client, "GET", f"{path}/{bad_id}", 404, token)
        refused(client, "PUT", f"{path}/{bad_id}", 404, token, json=_valid_body(res))
    # nothing was written
    assert get(client, f"{path}/{obj['id']}", token) == obj
    listed = list_all(client, path, token)
    assert listed["total"] == 1 and listed["items"] == [obj]


@pytest.mark.parametrize("res", ALL)
def test_duplicates_conflict(client, platform, res):
    token = tenant_admin(platform)
    path = f"/api/v1/{res}"
    a = MAKERS[res](client, token, name="Same Name")
    b = MAKERS[res](client, token, name="Other") if res == "vat-rates" else MAKERS[res](client, token, name="Same Name", slug="other")
    if res == "vat-rates":
        refused(client, "POST", path, 409, token, json={"name": "Same Name", "rate_bp": 5})
        refused(client, "PATCH", f"{path}/{b['id']}", 409, token, json={"name": "Same Name"})
        refused(client, "PUT", f"{path}/{b['id']}", 409, token, json={"name": "Same Name", "rate_bp": 1})
    else:
        refused(client, "POST", path, 409, token, json={"name": "Same name!"})  # the same slug made
        refused(client, "POST", path, 409, token, json={"name": "x", "slug": "same-name"})
        refused(client, "PATCH", f"{path}/{b['id']}", 409, token, json={"slug": "same-name"})
        refused(client, "PUT", f"{path}/{b['id']}", 409, token, json={"name": "SAME name"})
    assert get(client, f"{path}/{a['id']}", token) == a
    assert get(client, f"{path}/{b['id']}", token) == b
    assert list_all(client, path, token)["total"] == 2
    # another tenant may use the same slug / name
    other = tenant_admin(platform)
    MAKERS[res](client, other, name="Same Name")


# ---- the category tree ----


def _chain(client, token, n, parent=None):
    made = []
    for i in range(n):
        c = new_category(client, token, name=f"level {i + 1}", slug=unique("lvl").lower(), parent_id=parent)
        made.append(c)
        parent = c["id"]
    return made


def test_category_cycles_refused(client, platform):
    token = tenant_admin(platform)
    a, b, c = _chain(client, token, 3)
    assert b["parent_id"] == a["id"] and c["parent_id"] == b["id"]
    for target in (a, b, c):
        for method, body in (("PATCH", {"parent_id": target["id"]}), ("PUT", {"name": "a", "parent_id": target["id"]})):
            refused(client, method, f"/api/v1/categories/{a['id']}", 422, token, json=body, field="parent_id")
    refused(client, "PATCH", f"/api/v1/categories/{b['id']}", 422, token, json={"parent_id": c["id"]}, field="parent_id")
    refused(client, "PATCH", f"/api/v1/categories/{b['id']}", 422, token, json={"parent_id": b["id"]}, field="parent_id")
    refused(client, "PATCH", f"/api/v1/categories/{c['id']}", 422, token, json={"parent_id": str(uuid.uuid4())}, field="parent_id")
    for x in (a, b, c):
        assert get(client, f"/api/v1/categories/{x['id']}", token) == x
    # legal moves: c to the root, then a under c
    r = client.call("PATCH", f"/api/v1/categories/{c['id']}", json={"parent_id": None}, token=token)
    assert r.status == 200 and r.body["parent_id"] is None
    r = client.call("PATCH", f"/api/v1/categories/{a['id']}", json={"parent_id": c["id"]}, token=token)
    assert r.status == 200 and r.body["parent_id"] == c["id"]
    # and now c under b is a cycle (c -> a -> b)
    refused(client, "PATCH", f"/api/v1/categories/{c['id']}", 422, token, json={"parent_id": b["id"]}, field="parent_id")


def test_concurrent_moves_make_no_cycle(client, platform):
    """a under b and b under a at the same moment: exactly one wins, the other is a cycle."""
    token = tenant_admin(platform)
    for _ in range(10):
        a, b = new_category(client, token), new_category(client, token)
        statuses = []

        def move(x, y):
            r = client.call("PATCH", f"/api/v1/categories/{x['id']}", json={"parent_id": y["id"]}, token=token)
            statuses.append(r.status)

        threads = [threading.Thread(target=move, args=pair) for pair in ((a, b), (b, a))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(statuses) == [200, 422]
        parents = {get(client, f"/api/v1/categories/{x['id']}", token)["parent_id"] for x in (a, b)}
        assert None in parents


def test_category_parent_of_another_tenant(client, platform):
    token, other = tenant_admin(platform), tenant_admin(platform)
    foreign = new_category(client, other)
    refused(client, "POST", "/api/v1/categories", 422, token, json={"name": "x", "parent_id": foreign["id"]}, field="parent_id")
    mine = new_category(client, token)
    refused(client, "PATCH", f"/api/v1/categories/{mine['id']}", 422, token, json={"parent_id": foreign["id"]}, field="parent_id")
    assert list_all(client, "/api/v1/categories", token)["total"] == 1


def test_category_depth_bound(client, platform):
    token = tenant_admin(platform)
    chain = _chain(client, token, 32)
    refused(client, "POST", "/api/v1/categories", 422, token, json={"name": "deep", "parent_id": chain[-1]["id"]}, field="parent_id")
    x, y = _chain(client, token, 2)  # a subtree two levels high
    refused(client, "PATCH", f"/api/v1/categories/{x['id']}", 422, token, json={"parent_id": chain[30]["id"]}, field="parent_id")
    assert get(client, f"/api/v1/categories/{x['id']}", token) == x
    r = client.call("PATCH", f"/api/v1/categories/{x['id']}", json={"parent_id": chain[29]["id"]}, token=token)
    assert r.status == 200, r.body
    assert get(client, "/api/v1/categories?per_page=1", token)["total"] == 34


def test_category_delete_with_children(client, platform):
    token = tenant_admin(platform)
    a, b, c = _chain(client, token, 3)
    other = new_category(client, token, name="other root")
    detail = refused(client, "DELETE", f"/api/v1/categories/{a['id']}", 409, token)["detail"]
    assert "1 child" in detail
    path = f"/api/v1/categories/{a['id']}"
    refused(client, "DELETE", f"{path}?reassign_to={a['id']}", 422, token, field="reassign_to")
    refused(client, "DELETE", f"{path}?reassign_to={uuid.uuid4()}", 422, token, field="reassign_to")
    refused(client, "DELETE", f"{path}?reassign_to=nope", 422, token, field="reassign_to")
    refused(client, "DELETE", f"{path}?reassign_to={b['id']}", 422, token, field="reassign_to")  # a cycle
    refused(client, "DELETE", f"{path}?reassign_to={c['id']}", 422, token, field="reassign_to")
    for x in (a, b, c, other):
        assert get(client, f"/api/v1/categories/{x['id']}", token) == x
    r = client.call("DELETE", f"{path}?reassign_to={other['id']}", token=token)
    assert r.status == 204
    assert get(client, f"/api/v1/categories/{b['id']}", token)["parent_id"] == other["id"]
    assert get(client, f"/api/v1/categories/{c['id']}", token)["parent_id"] == b["id"]
    refused(client, "GET", path, 404, token)
    # a leaf goes without reassign_to
    assert client.call("DELETE", f"/api/v1/categories/{c['id']}", token=token).status == 204


def test_category_delete_reassign_depth(client, platform):
    token = tenant_admin(platform)
    deep = _chain(client, token, 31)
    top, mid, leaf = _chain(client, token, 3)  # top's children span two levels
    refused(client, "DELETE", f"/api/v1/categories/{top['id']}?reassign_to={deep[-1]['id']}", 422, token, field="reassign_to")
    assert get(client, f"/api/v1/categories/{mid['id']}", token) == mid
    r = client.call("DELETE", f"/api/v1/categories/{top['id']}?reassign_to={deep[-2]['id']}", token=token)
    assert r.status == 204


# ---- in use by products ----


def updates(platform, request, product_id):
    """The products.product.updated events of a product in the outbox, oldest first."""
    return [e for e in outbox_events(platform, request, product_id) if e["type"] == "products.product.updated"]


def _use(client, token, res, obj):
    field, many = PRODUCT_FIELD[res]
    return new_product(client, token, **{field: [obj["id"]] if many else obj["id"]})


def _uses(product, res, obj_id):
    field, many = PRODUCT_FIELD[res]
    return obj_id in product[field] if many else product[field] == obj_id


@pytest.mark.parametrize("res", ALL)
def test_delete_in_use_then_reassign(client, platform, request, res):
    token = tenant_admin(platform)
    path = f"/api/v1/{res}"
    old, new = MAKERS[res](client, token), MAKERS[res](client, token)
    p1, p2 = _use(client, token, res, old), _use(client, token, res, old)
    scoped = get(client, f"{path}/{old['id']}/products", token)
    assert {i["id"] for i in scoped["items"]} == {p1["id"], p2["id"]}
    detail = refused(client, "DELETE", f"{path}/{old['id']}", 409, token)["detail"]
    assert "2 products" in detail
    refused(client, "DELETE", f"{path}/{old['id']}?reassign_to={old['id']}", 422, token, field="reassign_to")
    refused(client, "DELETE", f"{path}/{old['id']}?reassign_to={uuid.uuid4()}", 422, token, field="reassign_to")
    foreign = MAKERS[res](client, tenant_admin(platform))
    refused(client, "DELETE", f"{path}/{old['id']}?reassign_to={foreign['id']}", 422, token, field="reassign_to")
    assert get(client, f"{path}/{old['id']}", token) == old
    for p in (p1, p2):
        assert get_product(client, p["id"], token) == p
        assert updates(platform, request, p["id"]) == []
    r = client.call("DELETE", f"{path}/{old['id']}?reassign_to={new['id']}", token=token)
    assert r.status == 204
    for p in (p1, p2):
        now = get_product(client, p["id"], token)
        assert _uses(now, res, new["id"]) and not _uses(now, res, old["id"])
        assert now["updated_at"] >= p["updated_at"]
        assert [e["data"] for e in updates(platform, request, p["id"])] == [now]
    assert {i["id"] for i in get(client, f"{path}/{new['id']}/products", token)["items"]} == {p1["id"], p2["id"]}


@pytest.mark.parametrize("res", ["categories", "catalogs"])
def test_reassign_merges_duplicate_links(client, platform, res):
    token = tenant_admin(platform)
    field, _ = PRODUCT_FIELD[res]
    old, new, third = (MAKERS[res](client, token) for _ in range(3))
    both = new_product(client, token, **{field: [old["id"], new["id"], third["id"]]})
    r = client.call("DELETE", f"/api/v1/{res}/{old['id']}?reassign_to={new['id']}", token=token)
    assert r.status == 204
    assert sorted(get_product(client, both["id"], token)[field]) == sorted([new["id"], third["id"]])


def test_brand_rename_follows_into_search(client, platform, request):
    token = tenant_admin(platform)
    brand = new_brand(client, token, name="Oldbrandword")
    product = new_product(client, token, brand_id=brand["id"])
    word = "Zyxbrand" + uuid.uuid4().hex[:8]
    r = client.call("PATCH", f"/api/v1/brands/{brand['id']}", json={"name": word}, token=token)
    assert r.status == 200 and r.body["slug"] == brand["slug"]
    assert [e["data"] for e in updates(platform, request, product["id"])] == [get_product(client, product["id"], token)]
    # a change that keeps the name touches no product
    r = client.call("PATCH", f"/api/v1/brands/{brand['id']}", json={"description": "d"}, token=token)
    assert r.status == 200 and len(updates(platform, request, product["id"])) == 1
    found = get(client, f"/api/v1/products?q={word}", token)
    assert [i["id"] for i in found["items"]] == [product["id"]]
    assert get(client, "/api/v1/products?q=Oldbrandword", token)["total"] == 0


# ---- tenants ----


@pytest.mark.parametrize("res", ALL)
def test_tenant_isolation(client, platform, res):
    mine, theirs = tenant_admin(platform), tenant_admin(platform)
    path = f"/api/v1/{res}"
    obj = MAKERS[res](client, mine)
    their_obj = MAKERS[res](client, theirs)
    for method, body in (("GET", None), ("PATCH", {"name": "x"}), ("PUT", _valid_body(res)), ("DELETE", None)):
        refused(client, method, f"{path}/{obj['id']}", 404, theirs, json=body)
    refused(client, "GET", f"{path}/{obj['id']}/products", 404, theirs)
    refused(client, "DELETE", f"{path}/{their_obj['id']}?reassign_to={obj['id']}", 422, theirs, field="reassign_to")
    assert [i["id"] for i in list_all(client, path, theirs)["items"]] == [their_obj["id"]]
    assert get(client, f"{path}/{obj['id']}", mine) == obj
    refused(client, "GET", f"{path}/{obj['id']}", 404, None)  # anonymous: the default tenant
