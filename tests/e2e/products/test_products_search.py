"""GET /api/v1/products: full-text search (ranked, prefix words, all words), the filters, the
sorts, paging, the admin-only active filter, tenant isolation, every refused query parameter
(400 naming it), and hostile q strings that must never reach the database as query syntax.
Runs on SQLite (FTS5) and PostgreSQL (tsvector) (`platform`)."""

import urllib.parse
import uuid

import pytest

from catalogclient import new_brand, new_catalog, new_category, new_product, new_type, unique


class Shop:
    """A fresh tenant with a small catalog; reads go through a customer token of that tenant."""

    def __init__(self, client, platform):
        self.client = client
        self.tenant = unique("t").lower()
        self.admin = platform.mint("admin", tenant=self.tenant)
        self.customer = platform.mint("customer", tenant=self.tenant)
        a = self.admin
        self.acme = new_brand(client, a, name="Acme Orchards")
        self.tools = new_brand(client, a, name="Forge")
        self.fruit_type = new_type(client, a)
        self.food = new_category(client, a, name=unique("Food"))
        self.fruit = new_category(client, a, name=unique("Fruit"), parent_id=self.food["id"])
        self.apples = new_category(client, a, name=unique("Apples"), parent_id=self.fruit["id"])
        self.hardware = new_category(client, a, name=unique("Hardware"))
        self.summer = new_catalog(client, a)
        mk = lambda **f: new_product(client, a, **f)  # noqa: E731
        self.red = mk(name="Red Apple", description="crisp and sweet", brand_id=self.acme["id"], type_id=self.fruit_type["id"],
                      category_ids=[self.apples["id"]], price={"amount": 120, "currency": "EUR"}, on_hand=10)
        self.pear = mk(name="Green Pear", description="grows near the apple tree", category_ids=[self.fruit["id"]],
                       catalog_ids=[self.summer["id"]], price={"amount": 250, "currency": "EUR"}, on_hand=0)
        self.pie = mk(name="Apple Pie", description="baked", category_ids=[self.food["id"]], active=False,
                      price={"amount": 900, "currency": "EUR"}, on_hand=3)
        self.hammer = mk(name="Hammer", description="steel head", brand_id=self.tools["id"], category_ids=[self.hardware["id"]],
                         price={"amount": 1500, "currency": "EUR"}, on_hand=2)
        self.creme = mk(name="Crème brûlée", description="custard", price={"amount": 450, "currency": "EUR"}, on_hand=1)

    def get(self, query, token=None, status=200):
        r = self.client.call("GET", f"/api/v1/products?{query}", token=token or self.customer)
        assert r.status == status, f"?{query}: {r.status} {r.body!r:.400}"
        return r.body

    def ids(self, query, token=None):
        return [p["id"] for p in self.get(query, token)["items"]]

    def refused(self, query, field, status=400, token=None):
        body = self.get(query, token, status)
        if field:
            fields = [e["field"] for e in body.get("errors", [])]
            assert field in fields, f"?{query}: errors {body.get('errors')!r} do not name {field}"
        return body


@pytest.fixture(scope="module")
def shop(client, platform):
    return Shop(client, platform)


def q(text):
    return "q=" + urllib.parse.quote(text, safe="")


# ---- full text ----


def test_ranked_full_text(shop):
    s = shop
    # the name weighs more than the description
    assert s.ids(q("apple")) == [s.red["id"], s.pear["id"]]
    assert s.get(q("apple"))["total"] == 2
    assert s.ids(q("APP")) == [s.red["id"], s.pear["id"]]  # each word a prefix, any case
    assert s.ids(q("acme")) == [s.red["id"]]  # the brand's name
    assert s.ids(q("orch")) == [s.red["id"]]
    assert s.ids(q("apple near")) == [s.pear["id"]]  # every word must match
    assert s.ids(q("steel")) == [s.hammer["id"]]
    assert s.ids(q("crème")) == [s.creme["id"]]
    assert s.ids(q("zzz")) == []
    assert s.get(q("zzz"))["total"] == 0


def test_ranked_pages_and_totals(client, platform):
    """A ranked search over more matches than a page: every page gives the same total (which the
    ranking counts as it goes), the pages partition the one ranked order, ties broken alike, and
    a page past the end is empty with the total still right. Another tenant's products and
    inactive ones never count."""
    tenant, other = unique("t").lower(), unique("t").lower()
    admin, customer = platform.mint("admin", tenant=tenant), platform.mint("customer", tenant=tenant)
    word = "zw" + uuid.uuid4().hex[:10]
    texts = [(f"{word} lamp", ""), ("Desk", f"{word}"), (f"{word} {word} chair", ""), ("Shelf", f"{word} {word}"),
             (f"Stool {word}", ""), ("Table", f"oak {word}"), ("Rug", f"wool {word}")]
    made = [new_product(client, admin, name=n, description=d) for n, d in texts]
    new_product(client, admin, name=f"Hidden {word}", active=False)
    new_product(client, platform.mint("admin", tenant=other), name=f"Elsewhere {word}")
    for token in (customer, admin):
        whole = client.call("GET", f"/api/v1/products?q={word}&per_page=100", token=token).body
        assert whole["total"] == len(made)
        assert sorted(p["id"] for p in whole["items"]) == sorted(p["id"] for p in made)
        order = [p["id"] for p in whole["items"]]
        seen = []
        for page in (1, 2, 3):
            body = client.call("GET", f"/api/v1/products?q={word}&per_page=3&page={page}", token=token).body
            assert body["total"] == len(made), f"page {page}: {body['total']}"
            seen += [p["id"] for p in body["items"]]
        assert seen == order
        past = client.call("GET", f"/api/v1/products?q={word}&per_page=3&page=4", token=token).body
        assert past["items"] == [] and past["total"] == len(made)
    # the name weighs more than the description, and two occurrences more than one
    ids = [p["id"] for p in made]
    assert order[0] == ids[2]
    assert set(order[:3]) == {ids[0], ids[2], ids[4]}
    assert order[3] == ids[3]
    assert set(order[4:]) == {ids[1], ids[5], ids[6]}


def test_query_syntax_is_plain_words(shop):
    s = shop
    assert s.ids(q('"apple"')) == [s.red["id"], s.pear["id"]]
    assert s.ids(q("apple*")) == [s.red["id"], s.pear["id"]]
    assert s.ids(q("NEAR(apple tree)")) == [s.pear["id"]]  # NEAR is a word: and it is in the pear
    assert s.ids(q("apple OR hammer")) == []  # OR is a word the products lack
    assert s.ids(q("-apple")) == [s.red["id"], s.pear["id"]]
    assert s.ids(q("apple AND NOT red")) == []
    assert s.ids(q("name:apple")) == []  # no column filters: "name" is a word too
    assert s.ids(q("'apple' & !tree")) == [s.pear["id"]]


HOSTILE = ['"', "*", "NEAR(", "a OR b", "-x", "'", "\\", "%", '"unbalanced', "((((", "apple\"*", "^a", "a:*", "':*|",
           "!(a", "a <-> b", "a & | b", "{a}", "NEAR/2", "\u00a0", "日本語", "😀😀", "\ufffd", "é\u0301", "a\u200bb",
           "\x01\x02", "AND", "OR NOT", ":", "a''b", "x" * 200, ("w " * 16).strip()]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_q_never_fails(shop, text):
    r = shop.client.call("GET", f"/api/v1/products?{q(text)}", token=shop.customer)
    assert r.status in (200, 400), f"{text!r}: {r.status} {r.body!r:.300}"
    if r.status == 400:
        assert [e["field"] for e in r.body["errors"]] == ["q"]


def test_binaryish_q(shop):
    raw = bytes(range(1, 256)).decode("latin-1")
    for text in (raw[:150], "".join(chr(c) for c in range(0x2000, 0x2050)), "\udcff".encode("utf-8", "surrogatepass").decode("latin-1")):
        path = "/api/v1/products?q=" + urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")
        r = shop.client.call("GET", path, token=shop.customer)
        assert r.status in (200, 400), f"{text!r}: {r.status}"
    # percent-encoded bytes that are not UTF-8 at all
    for enc in ("%FF%FE%FD", "%C3", "%ED%A0%80apple", "%00apple", "apple%80"):
        r = shop.client.call("GET", f"/api/v1/products?q={enc}", token=shop.customer)
        assert r.status in (200, 400), f"{enc}: {r.status} {r.body!r:.200}"


def test_q_limits(shop):
    s = shop
    s.refused(q(""), "q")
    s.refused(q('" * ( )'), "q")
    s.refused(q("x" * 201), "q")
    s.refused(q("x" * 5000), "q")
    s.refused(q(" ".join(["w"] * 17)), "q")
    assert s.get(q(" ".join(["apple"] * 16)))["total"] == 2
    s.refused("sort=relevance", "sort")


# ---- filters ----


def test_filters(shop):
    s = shop
    assert s.ids(f"category={s.food['id']}&sort=price") == [s.red["id"], s.pear["id"]]  # descendants too; pie is inactive
    assert s.ids(f"category={s.fruit['id']}&sort=price") == [s.red["id"], s.pear["id"]]
    assert s.ids(f"category={s.apples['id']}") == [s.red["id"]]
    assert s.ids(f"category={s.hardware['id']}") == [s.hammer["id"]]
    assert s.ids(f"brand={s.acme['id']}") == [s.red["id"]]
    assert s.ids(f"type={s.fruit_type['id']}") == [s.red["id"]]
    assert s.ids(f"catalog={s.summer['id']}") == [s.pear["id"]]
    assert s.ids("min_price=200&max_price=1000&sort=price") == [s.pear["id"], s.creme["id"]]
    assert s.ids("min_price=1500&max_price=1500") == [s.hammer["id"]]
    assert s.ids("in_stock=false") == [s.pear["id"]]
    assert sorted(s.ids("in_stock=true")) == sorted([s.red["id"], s.hammer["id"], s.creme["id"]])
    assert s.ids(f"{q('apple')}&category={s.fruit['id']}&in_stock=true") == [s.red["id"]]
    assert s.ids(f"{q('apple')}&sort=-price") == [s.pear["id"], s.red["id"]]
    # a well-formed id that names nothing is an empty page, not an error
    assert s.get("brand=00000000-0000-7000-8000-000000000000")["total"] == 0


def test_sorts_and_pages(shop):
    s = shop
    active = [s.red, s.pear, s.hammer, s.creme]
    by_price = [p["id"] for p in sorted(active, key=lambda p: p["price"]["amount"])]
    assert s.ids("sort=price") == by_price
    assert s.ids("sort=-price") == by_price[::-1]
    assert s.ids("sort=name") == [p["id"] for p in sorted(active, key=lambda p: p["name"].encode())]
    newest = [p["id"] for p in sorted(active, key=lambda p: (p["created_at"], p["id"]), reverse=True)]
    assert s.ids("") == newest
    assert s.ids("sort=-created_at") == newest
    page = s.get("sort=price&per_page=3&page=2")
    assert page["total"] == 4 and page["page"] == 2 and page["per_page"] == 3
    assert [p["id"] for p in page["items"]] == by_price[3:]
    assert s.get("sort=price&per_page=3&page=9")["items"] == []
    # every item is a whole Product
    assert next(p for p in s.get("sort=price")["items"] if p["id"] == s.red["id"]) == s.red


def test_active_filter_is_for_admins(shop):
    s = shop
    assert s.ids("active=false", token=s.admin) == [s.pie["id"]]
    assert s.get("active=all", token=s.admin)["total"] == 5
    assert s.get("active=true", token=s.admin)["total"] == 4
    assert s.ids(f"{q('pie')}&active=all", token=s.admin) == [s.pie["id"]]
    s.refused("active=false", None, status=403)
    s.refused("active=all", None, status=403)
    s.refused("active=maybe", "active", token=s.admin)


BAD_QUERIES = [
    ("category=not-an-id", "category"),
    ("brand=123", "brand"),
    ("type=%27%20OR%201=1", "type"),
    ("catalog=", "catalog"),
    ("min_price=-1", "min_price"),
    ("min_price=abc", "min_price"),
    ("max_price=100000000001", "max_price"),
    ("max_price=1e3", "max_price"),
    ("min_price=10&max_price=5", "min_price"),
    ("min_price=9223372036854775808", "min_price"),
    ("in_stock=yes", "in_stock"),
    ("sort=sku", "sort"),
    ("sort=price%3BDROP%20TABLE%20products", "sort"),
    ("sort=", "sort"),
    ("sort=-name", "sort"),
    ("per_page=1000000000", "per_page"),
    ("per_page=0", "per_page"),
    ("per_page=101", "per_page"),
    ("page=0", "page"),
    ("page=-1", "page"),
    ("page=abc", "page"),
]


@pytest.mark.parametrize("query,field", BAD_QUERIES, ids=[b[0] for b in BAD_QUERIES])
def test_bad_query_400(shop, query, field):
    body = shop.refused(query, field)
    if field == "sort":
        message = next(e["message"] for e in body["errors"] if e["field"] == "sort")
        for allowed in ("price", "-price", "name", "-created_at", "relevance"):
            assert allowed in message


def test_tenant_isolation(shop, platform):
    s = shop
    stranger = platform.mint("admin", tenant=unique("t").lower())
    assert s.get(q("apple"), token=stranger)["total"] == 0
    assert s.get("active=all", token=stranger)["total"] == 0
    assert s.get(f"category={s.food['id']}", token=stranger)["total"] == 0


def test_writes_reach_the_index(shop):
    """Renaming a product or changing its brand moves it in the full-text index at once."""
    s = shop
    p = new_product(s.client, s.admin, name="Walnut Bread")
    assert s.ids(q("walnut")) == [p["id"]]
    r = s.client.call("PATCH", f"/api/v1/products/{p['id']}", json={"name": "Rye Bread", "brand_id": s.tools["id"]}, token=s.admin)
    assert r.status == 200, r.body
    assert s.ids(q("walnut")) == []
    assert s.ids(q("rye forge")) == [p["id"]]
    assert s.client.call("DELETE", f"/api/v1/products/{p['id']}", token=s.admin).status == 204
    assert s.ids(q("rye")) == []
