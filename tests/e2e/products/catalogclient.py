"""Small steps of the products e2e tests: each creates one object through the gateway as an
admin and asserts success. Names and SKUs are unique per call, so tests never collide."""

import itertools
import os
import uuid

_counter = itertools.count(1)


def unique(tag):
    return f"{tag}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


def _create(client, token, path, body):
    r = client.call("POST", path, json=body, token=token)
    assert r.status == 201, f"POST {path} {body!r:.200} answered {r.status}: {r.body!r:.300}"
    return r.body


def new_brand(client, token, **fields):
    body = {"name": unique("Brand")}
    body.update(fields)
    return _create(client, token, "/api/v1/brands", body)


def new_type(client, token, **fields):
    body = {"name": unique("Type")}
    body.update(fields)
    return _create(client, token, "/api/v1/types", body)


def new_catalog(client, token, **fields):
    body = {"name": unique("Catalog")}
    body.update(fields)
    return _create(client, token, "/api/v1/catalogs", body)


def new_category(client, token, **fields):
    body = {"name": unique("Category")}
    body.update(fields)
    return _create(client, token, "/api/v1/categories", body)


def new_vat_rate(client, token, **fields):
    body = {"name": unique("VAT"), "rate_bp": 2000}
    body.update(fields)
    return _create(client, token, "/api/v1/vat-rates", body)


def new_product(client, token, **fields):
    body = {"sku": unique("SKU"), "name": unique("Product"), "price": {"amount": 1999, "currency": "EUR"}}
    body.update(fields)
    return _create(client, token, "/api/v1/products", body)


def get_product(client, product_id, token=None):
    r = client.call("GET", f"/api/v1/products/{product_id}", token=token)
    assert r.status == 200, f"GET product {product_id} answered {r.status}: {r.body!r:.300}"
    return r.body
