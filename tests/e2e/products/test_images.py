"""Product images: raw uploads of PNG / JPEG / WebP checked by their magic bytes, served with an
ETag and answered 304 on If-None-Match, deleted; every refusal (415, 413, 422, 409, a truncated
upload) followed by a read-back proving no row and no blob file was left. Runs on SQLite and
PostgreSQL (`platform`)."""

import glob
import hashlib
import os
import socket
import stat
import struct
import zlib

import pytest

from catalogclient import get_product, new_product

MAX_IMAGE = 5 * 1024 * 1024
PER_PRODUCT = 20


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width=2, height=2, padding=0):
    """A valid PNG; padding bytes go into a private ancillary chunk (to reach a size)."""
    raw = b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height))
    body = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if padding:
        body += _chunk(b"agRa", b"\x5a" * padding)
    body += _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def png_of_size(size):
    base = len(png())
    return png(padding=size - base - 12)


def jpeg(padding=16):
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x11" * padding + b"\xff\xd9"


def webp(payload=b"\x2f\x00\x00\x00\x00\x07\x10\x11\x11\x88\x88\xfe\x07\x00", riff_delta=0, fourcc=b"VP8L"):
    if len(payload) % 2:
        payload += b"\x00"
    chunk = fourcc + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk) + riff_delta) + b"WEBP" + chunk


def images_path(pid):
    return f"/api/v1/products/{pid}/images"


def upload(client, token, pid, data, ctype="image/png", **kw):
    return client.call("POST", images_path(pid), raw=data, headers={"Content-Type": ctype}, token=token, **kw)


def uploaded(client, token, pid, data, ctype="image/png"):
    r = upload(client, token, pid, data, ctype)
    assert r.status == 201, f"upload {ctype} {len(data)} bytes: {r.status} {r.body!r:.300}"
    return r.body


def blob_files(platform, pid):
    """The files under the blob store that belong to product pid (temporary ones included)."""
    return sorted(glob.glob(os.path.join(platform.var, "blobs", "products", "*", pid, "*")))


def image_ids(client, pid, token=None):
    return [i["id"] for i in get_product(client, pid, token=token)["images"]]


# ---- upload, serve, delete ----


@pytest.mark.parametrize("ctype,make", [("image/png", png), ("image/jpeg", jpeg), ("image/webp", webp)])
def test_upload_get_delete(client, platform, admin_token, ctype, make):
    pid = new_product(client, admin_token)["id"]
    data = make()
    r = upload(client, admin_token, pid, data, ctype)
    assert r.status == 201, r.body
    image = r.body
    url = f"{images_path(pid)}/{image['id']}"
    assert r.headers["Location"] == url
    assert image["content_type"] == ctype and image["size"] == len(data) and image["url"] == url
    assert image_ids(client, pid) == [image["id"]]
    files = blob_files(platform, pid)
    assert [os.path.basename(f) for f in files] == [image["id"]]
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(files[0])).st_mode) == 0o700

    got = client.call("GET", url)  # public
    assert got.status == 200
    assert got.body == data
    assert got.headers["Content-Type"] == ctype
    etag = got.headers["ETag"]
    assert etag == '"' + hashlib.sha256(data).hexdigest() + '"'
    assert got.headers["Cache-Control"] == "public, max-age=86400"
    for inm in (etag, "W/" + etag, f'"nope", {etag}', "*"):
        cached = client.call("GET", url, headers={"If-None-Match": inm})
        assert cached.status == 304, inm
        assert cached.body in (b"", None)
        assert cached.headers["ETag"] == etag
    assert client.call("GET", url, headers={"If-None-Match": '"0123"'}).status == 200

    assert client.call("DELETE", url, token=admin_token).status == 204
    assert client.call("GET", url).status == 404
    assert client.call("DELETE", url, token=admin_token).status == 404
    assert image_ids(client, pid) == []
    assert blob_files(platform, pid) == []


def test_order_and_updated_event(client, platform, request, admin_token):
    from test_inventory import outbox_events

    pid = new_product(client, admin_token)["id"]
    first = uploaded(client, admin_token, pid, png(3, 1))
    second = uploaded(client, admin_token, pid, jpeg(), "image/jpeg")
    assert image_ids(client, pid) == [first["id"], second["id"]]
    assert client.call("DELETE", f"{images_path(pid)}/{first['id']}", token=admin_token).status == 204
    updated = [e for e in outbox_events(platform, request, pid) if e["type"] == "products.product.updated"]
    assert [[i["id"] for i in e["data"]["images"]] for e in updated[-3:]] == [[first["id"]], [first["id"], second["id"]], [second["id"]]]


def test_largest_image_accepted(client, platform, admin_token):
    pid = new_product(client, admin_token)["id"]
    data = png_of_size(MAX_IMAGE)
    assert len(data) == MAX_IMAGE
    image = uploaded(client, admin_token, pid, data)
    got = client.call("GET", f"{images_path(pid)}/{image['id']}")
    assert got.status == 200 and got.body == data


# ---- refusals: nothing written ----


def assert_nothing_written(client, platform, pid):
    assert image_ids(client, pid) == []
    assert blob_files(platform, pid) == []


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "image/gif", "image/svg+xml", "application/octet-stream", "image/pngx", None])
def test_wrong_content_type_415(client, platform, admin_token, ctype):
    pid = new_product(client, admin_token)["id"]
    r = client.call("POST", images_path(pid), raw=png(), headers={"Content-Type": ctype}, token=admin_token)
    assert r.status == 415, r.body
    assert_nothing_written(client, platform, pid)


def test_content_type_parameters_and_case(client, admin_token):
    pid = new_product(client, admin_token)["id"]
    assert upload(client, admin_token, pid, png(), "IMAGE/PNG; q=1").status == 201


NOT_IMAGES = [
    ("image/png", b"", "empty"),
    ("image/png", b"hello, I am not a picture", "not a PNG"),
    ("image/png", jpeg(), "not a PNG"),
    ("image/png", png()[:20], "not a PNG"),
    ("image/png", png().replace(b"IHDR", b"IHDX"), "not a PNG"),
    ("image/png", png(0, 2), "not a PNG"),
    ("image/jpeg", png(), "not a JPEG"),
    ("image/jpeg", jpeg()[:-1], "not a JPEG"),
    ("image/jpeg", b"\xff\xd8\xff\xd9", "not a JPEG"),
    ("image/webp", webp(riff_delta=1), "not a WebP"),
    ("image/webp", webp(riff_delta=-2), "not a WebP"),
    ("image/webp", webp() + b"\x00\x00", "not a WebP"),
    ("image/webp", webp(fourcc=b"ABCD"), "not a WebP"),
    ("image/webp", b"RIFF\x04\x00\x00\x00WEBP", "not a WebP"),
    ("image/webp", jpeg(), "not a WebP"),
    ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 1000, "not a PNG"),
]


@pytest.mark.parametrize("ctype,data,words", NOT_IMAGES)
def test_not_an_image_422(client, platform, admin_token, ctype, data, words):
    pid = new_product(client, admin_token)["id"]
    r = upload(client, admin_token, pid, data, ctype)
    assert r.status == 422, r.body
    assert words in r.body["detail"], r.body["detail"]
    assert_nothing_written(client, platform, pid)


@pytest.mark.parametrize("direct", [False, True])
def test_too_large_413(client, platform, admin_token, direct):
    pid = new_product(client, admin_token)["id"]
    r = upload(client, admin_token, pid, png_of_size(MAX_IMAGE + 1), direct=direct)
    assert r.status == 413, r.body
    assert_nothing_written(client, platform, pid)


def test_limit_of_20_per_product_409(client, platform, admin_token):
    pid = new_product(client, admin_token)["id"]
    ids = [uploaded(client, admin_token, pid, png(i + 1, 1))["id"] for i in range(PER_PRODUCT)]
    r = upload(client, admin_token, pid, png())
    assert r.status == 409, r.body
    assert "20" in r.body["detail"]
    assert image_ids(client, pid) == ids
    assert len(blob_files(platform, pid)) == PER_PRODUCT
    # one removed, one more fits
    assert client.call("DELETE", f"{images_path(pid)}/{ids[0]}", token=admin_token).status == 204
    uploaded(client, admin_token, pid, png())
    assert len(blob_files(platform, pid)) == PER_PRODUCT


def _truncated_upload(port, path, token, data, declared):
    """Sends a request announcing `declared` body bytes, sends only `data`, and closes."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: image/png\r\nContent-Length: {declared}\r\n\r\n"
    ).encode("ascii")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head + data)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(30)
        try:
            while s.recv(65536):  # whatever the server says (or nothing) until it closes
                pass
        except (ConnectionResetError, socket.timeout):
            pass


@pytest.mark.parametrize("direct", [False, True])
def test_truncated_upload_leaves_nothing(client, platform, admin_token, direct):
    pid = new_product(client, admin_token)["id"]
    # What arrives is a complete PNG by itself: a handler called with it would store it.
    data = png(4, 4)
    port = platform.products_port if direct else platform.gateway_port
    _truncated_upload(port, images_path(pid), admin_token, data, len(data) + 5000)
    assert_nothing_written(client, platform, pid)
    # the service is fine and the next upload is the only image
    image = uploaded(client, admin_token, pid, data)
    assert image_ids(client, pid) == [image["id"]]
    assert [os.path.basename(f) for f in blob_files(platform, pid)] == [image["id"]]


# ---- access and tenancy ----


def test_access_and_tenancy(client, platform, admin_token, customer_token, other_tenant_admin_token):
    pid = new_product(client, admin_token)["id"]
    assert upload(client, None, pid, png()).status == 401
    assert upload(client, customer_token, pid, png()).status == 403
    assert upload(client, other_tenant_admin_token, pid, png()).status == 404
    assert_nothing_written(client, platform, pid)
    image = uploaded(client, admin_token, pid, png())
    url = f"{images_path(pid)}/{image['id']}"
    assert client.call("GET", url, token=other_tenant_admin_token).status == 404
    assert client.call("DELETE", url, token=other_tenant_admin_token).status == 404
    assert client.call("DELETE", url, token=customer_token).status == 403
    assert client.call("DELETE", url).status == 401
    assert client.call("GET", url, token=customer_token).status == 200
    # unknown ids, and an image asked for under another product
    other = new_product(client, admin_token)["id"]
    assert client.call("GET", f"{images_path(other)}/{image['id']}").status == 404
    assert client.call("DELETE", f"{images_path(other)}/{image['id']}", token=admin_token).status == 404
    assert client.call("GET", f"{images_path(pid)}/not-an-id").status == 404
    assert upload(client, admin_token, "0190a0b0-0000-7000-8000-000000000000", png()).status == 404
    assert upload(client, admin_token, "nope", png()).status == 404
    assert image_ids(client, pid) == [image["id"]]
