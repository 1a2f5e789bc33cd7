"""End-to-end tests of `agora seed`, `agora up --seed` and `agora events tail|dead|replay`.

A real platform (authclient.Platform: auth, hello, products and the gateway under `agora up`,
SQLite and the local bus in a temp dir). The seed goes through the gateway's public API; the
catalog is read back through it with plain HTTP. `events tail` runs as a subprocess that gets
SIGINT once it printed what the test waits for. Waits are bounded by generous deadlines; no test
asserts how long anything took.
"""

import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "auth"))

from authclient import AGORA_BIN, REPO, Platform, free_ports  # noqa: E402

AGORA = os.path.join(AGORA_BIN, "agora")
CONFIG = "config/platform.yaml"
WAIT = 120.0  # the most a wait for output may take before the test fails (ASan builds are slow)

# What `agora seed` creates by default (src/cli/seed_data.c).
PRODUCTS = 240
TAXONOMY = {"categories": 23, "brands": 12, "types": 4, "catalogs": 2, "vat-rates": 3}


def get_json(port, path, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, f"GET {path}: {resp.status} {body[:500]!r}"
        return json.loads(body)
    finally:
        conn.close()


def list_all(port, resource):
    items, page = [], 1
    while True:
        doc = get_json(port, f"/api/v1/{resource}?page={page}&per_page=100")
        items += doc["items"]
        if len(doc["items"]) < 100:
            return items, doc["total"]
        page += 1


def catalog_totals(port):
    return {r: list_all(port, r)[1] for r in ["products", *TAXONOMY]}


def one_line_error(cp):
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("agora: "), f"expected one error line, got {cp.stderr!r}"
    return lines[0]


@pytest.fixture(scope="module")
def platform():
    p = Platform("sqlite")
    try:
        p.start()
        yield p
        problems = p.stop()
        assert not problems, "\n".join(problems)
    finally:
        if p.exit_code is None:
            p.stop()
        p.cleanup()


@pytest.fixture(scope="module")
def seeded(platform):
    """The platform after a first `agora seed` (its completed process)."""
    cp = platform.agora("seed", "--config", CONFIG, timeout=600)
    return cp


# ---------------------------------------------------------------------------------------------
# agora seed
# ---------------------------------------------------------------------------------------------


def test_seed_creates_the_demo_catalog(platform, seeded):
    assert re.match(rf"^seeded {PRODUCTS} products \(0 already there\), 23 categories, 12 brands, 4 types, "
                    r"2 catalogs, 3 VAT rates \(44 new, 0 already there\) in [0-9.]+ s", seeded.stdout), seeded.stdout
    totals = catalog_totals(platform.gateway_port)
    assert totals["products"] >= 200 and totals["products"] == PRODUCTS, totals
    for resource, count in TAXONOMY.items():
        assert totals[resource] == count, (resource, totals)


def test_seeded_catalog_is_consistent(platform, seeded):
    gw = platform.gateway_port
    categories, _ = list_all(gw, "categories")
    by_id = {c["id"]: c for c in categories}
    roots = [c for c in categories if not c.get("parent_id")]
    children = [c for c in categories if c.get("parent_id")]
    assert len(roots) >= 5 and len(children) >= 12, categories
    assert all(by_id[c["parent_id"]].get("parent_id") is None for c in children), "a two-level tree"
    rates = sorted(v["rate_bp"] for v in list_all(gw, "vat-rates")[0])
    assert rates == [550, 1000, 2000], rates

    products, _ = list_all(gw, "products")
    skus = {p["sku"] for p in products}
    assert skus == {f"DEMO-{i:06d}" for i in range(1, PRODUCTS + 1)}
    leaf_ids = {c["id"] for c in children}
    brands = {p["brand_id"] for p in products}
    assert len(brands) >= 10, "products spread over the brands"
    on_hand = [p["stock"]["on_hand"] for p in products]
    assert 0 in on_hand, "some products are sold out"
    assert any(0 < n <= p["stock"]["low_threshold"] for n, p in zip(on_hand, products)), "some are low"
    assert any(n > 50 for n in on_hand)
    for p in products:
        assert p["price"]["currency"] == "EUR" and p["price"]["amount"] > 0, p
        assert p["category_ids"] and set(p["category_ids"]) <= leaf_ids, p
        assert p["catalog_ids"] and p["vat_rate_id"] and p["type_id"], p
        assert p["attributes"] and p["name"] and len(p["description"]) > 40, p
    assert len({p["name"] for p in products}) > PRODUCTS // 2, "names vary"


def test_second_seed_adds_nothing(platform, seeded):
    before = catalog_totals(platform.gateway_port)
    cp = platform.agora("seed", "--config", CONFIG, timeout=600)
    assert cp.stdout.startswith(f"seeded 0 products ({PRODUCTS} already there)"), cp.stdout
    assert "(0 new, 44 already there)" in cp.stdout and "nothing to add" in cp.stdout, cp.stdout
    assert catalog_totals(platform.gateway_port) == before


def test_seed_more_products_adds_only_the_new_ones(platform, seeded):
    cp = platform.agora("seed", "--config", CONFIG, "--products", str(PRODUCTS + 10), "--concurrency", "8",
                        timeout=600)
    assert cp.stdout.startswith(f"seeded 10 products ({PRODUCTS} already there)"), cp.stdout
    assert list_all(platform.gateway_port, "products")[1] == PRODUCTS + 10
    # The same index gives the same product: DEMO-000250 did not exist before this run.
    cp = platform.agora("seed", "--config", CONFIG, "--products", str(PRODUCTS + 10), timeout=600)
    assert cp.stdout.startswith(f"seeded 0 products ({PRODUCTS + 10} already there)"), cp.stdout


def test_seed_another_tenant_is_separate(platform, seeded):
    cp = platform.agora("seed", "--config", CONFIG, "--tenant", "t-seed", "--products", "5", timeout=600)
    assert cp.stdout.startswith("seeded 5 products (0 already there)"), cp.stdout
    assert "(44 new, 0 already there)" in cp.stdout, cp.stdout
    token = platform.mint("admin", tenant="t-seed")
    assert get_json(platform.gateway_port, "/api/v1/products?per_page=1", token)["total"] == 5


def test_seed_unreachable_gateway_fails_clearly(platform):
    (port,) = free_ports(1)
    cp = platform.agora("seed", "--config", CONFIG, "--url", f"http://127.0.0.1:{port}", check=False)
    assert cp.returncode == 1, cp
    line = one_line_error(cp)
    assert "cannot reach the gateway" in line and str(port) in line, line
    assert cp.stdout == ""


def test_seed_refused_call_prints_the_problem(platform):
    # agora-hello is no catalog: its 404 (or 405) answer is reported with the call that failed.
    cp = platform.agora("seed", "--config", CONFIG, "--url", f"http://127.0.0.1:{platform.hello_port}", check=False)
    assert cp.returncode == 1, cp
    line = one_line_error(cp)
    assert "seed failed: GET /api/v1/vat-rates" in line and "HTTP 4" in line, line


@pytest.mark.parametrize(
    "args",
    [
        ["--products", "0"],
        ["--products", "many"],
        ["--products", "1000001"],
        ["--concurrency", "0"],
        ["--concurrency", "65"],
        ["--tenant", ""],
        ["--url"],
        ["--frobnicate"],
        ["--url", "https://127.0.0.1:1"],
    ],
)
def test_seed_usage_errors(platform, args):
    cp = platform.agora("seed", "--config", CONFIG, *args, check=False)
    assert cp.returncode == 2, cp
    one_line_error(cp)


def test_seed_help(platform):
    cp = platform.agora("seed", "--help")
    assert cp.stdout.startswith("usage: agora seed") and "--products" in cp.stdout
    cp = platform.agora("help", "seed")
    assert cp.stdout.startswith("usage: agora seed")


# ---------------------------------------------------------------------------------------------
# agora events tail
# ---------------------------------------------------------------------------------------------


class Tail:
    """`agora events tail ARGS` as a subprocess; lines read with a deadline."""

    def __init__(self, platform, *args):
        self.proc = subprocess.Popen(
            [AGORA, "events", "tail", *args],
            cwd=REPO,
            env=platform.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.buf = b""
        self.lines = []

    def read_until(self, predicate, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                break
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                self.buf += chunk
                *done, self.buf = self.buf.split(b"\n")
                self.lines += [d.decode() for d in done]
        return predicate(self.lines)

    def interrupt(self):
        """SIGINT; returns (exit code, the rest of stdout, stderr)."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        rest = (self.buf + out).decode().splitlines()
        self.lines += rest
        return self.proc.returncode, err.decode()


LINE = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d{3}) (products\.product\.[a-z_]+) ([0-9a-f-]{36}) (\S+) ([0-9a-f-]{36}) (\{.*\})$"
)


def test_tail_from_start_prints_the_created_products(platform, seeded):
    tail = Tail(platform, "--from-start", "--type", "products.product.*")
    try:
        ok = tail.read_until(lambda lines: len(lines) >= PRODUCTS)
    finally:
        code, err = tail.interrupt()
    assert ok, f"only {len(tail.lines)} lines: {tail.lines[-3:]} {err}"
    assert code == 0, err
    matches = [LINE.match(line) for line in tail.lines]
    assert all(matches), [line for line in tail.lines if not LINE.match(line)][:3]
    created = [m for m in matches if m.group(2) == "products.product.created"]
    skus = {json.loads(m.group(6))["sku"] for m in created}
    assert {f"DEMO-{i:06d}" for i in range(1, PRODUCTS + 1)} <= skus
    assert all(m.group(3) == json.loads(m.group(6))["id"] for m in created), "the subject is the product id"
    assert not any("products.inventory" in line or "auth." in line for line in tail.lines)


def test_tail_json_prints_whole_envelopes(platform, seeded):
    tail = Tail(platform, "--from-start", "--json", "--type", "products.#", "--type", "auth.user.*")
    try:
        ok = tail.read_until(lambda lines: len(lines) >= PRODUCTS)
    finally:
        code, err = tail.interrupt()
    assert ok and code == 0, err
    envelopes = [json.loads(line) for line in tail.lines]
    for e in envelopes:
        assert e["specversion"] == "1.0" and e["id"] and e["source"].startswith("agora/"), e
        assert e["type"].startswith("products.") or e["type"].startswith("auth.user."), e
        assert isinstance(e["data"], dict)
    assert len({e["id"] for e in envelopes}) == len(envelopes), "each event once"


def test_tail_without_from_start_sees_only_new_events(platform, seeded):
    # The catalog as it is now (earlier tests may have seeded more): the highest DEMO-n there.
    products, _ = list_all(platform.gateway_port, "products")
    demo = [int(p["sku"].split("-")[1]) for p in products if p["sku"].startswith("DEMO-")]
    start = max(demo, default=0)
    assert start >= PRODUCTS, f"the seed made DEMO-000001..{PRODUCTS}, the catalog has up to {start}"
    tail = Tail(platform, "--type", "products.product.created")
    try:
        # The tail starts at the end of the log: nothing of the earlier seeds comes. New products
        # are created until one shows (the tail may open its position after the first ones).
        n = start
        for _ in range(40):
            n += 1
            platform.agora("seed", "--config", CONFIG, "--products", str(n), timeout=600)
            if tail.read_until(lambda lines: len(lines) >= 1, timeout=3):
                break
    finally:
        code, err = tail.interrupt()
    assert code == 0, err
    assert tail.lines, err
    skus = [json.loads(LINE.match(line).group(6))["sku"] for line in tail.lines]
    assert skus and all(s.startswith("DEMO-") and int(s.split("-")[1]) > start for s in skus), (start, skus)


@pytest.mark.parametrize(
    "args",
    [
        ["tail", "--type"],
        ["tail", "--type", ""],
        ["tail", "--frobnicate"],
        ["tail", "--bus", "kafka://nowhere"],
        ["frobnicate"],
        [],
        ["dead", "--frobnicate"],
        ["dead", "--service", ""],
        ["replay", "--all"],
        ["replay", "0190d6c4-0000-7000-8000-000000000000"],
        ["replay", "--service", "products"],
        ["replay", "--service", "products", "--all", "0190d6c4-0000-7000-8000-000000000000"],
        ["replay", "--service", "products", "--frobnicate"],
    ],
)
def test_events_usage_errors(platform, args):
    cp = platform.agora("events", *args, check=False)
    assert cp.returncode == 2, cp
    one_line_error(cp)


def test_events_help(platform):
    for args in (["events", "--help"], ["events", "tail", "--help"], ["help", "events"]):
        cp = platform.agora(*args)
        assert cp.stdout.startswith("usage: agora events tail"), cp.stdout
        assert "replay" in cp.stdout and "dead" in cp.stdout


def test_events_dead_unknown_service_fails(platform):
    cp = platform.agora("events", "dead", "--config", CONFIG, "--service", "nosuch", check=False)
    assert cp.returncode == 1 and "nosuch" in one_line_error(cp), cp


def test_events_dead_lists_none_on_a_healthy_platform(platform, seeded):
    cp = platform.agora("events", "dead", "--config", CONFIG)
    assert cp.stdout.strip() == "no dead events", cp.stdout


# ---------------------------------------------------------------------------------------------
# agora up --seed
# ---------------------------------------------------------------------------------------------


class SeedingPlatform(Platform):
    """A platform started with `agora up --seed`."""

    def __init__(self, backend):
        super().__init__(backend, up_args=["--seed"])

    def wait_for_line(self, pattern):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            m = re.search(pattern, self.stdout(), re.M)
            if m:
                return m
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r}\n{self.logs()}")


def test_up_seed_seeds_an_empty_catalog_once():
    p = SeedingPlatform("sqlite")
    try:
        p.start()
        p.wait_for_line(rf"^agora\s*\| seeded {PRODUCTS} products \(0 already there\)")
        assert list_all(p.gateway_port, "products")[1] == PRODUCTS
        problems = p.stop()
        assert not problems, "\n".join(problems)
        # The next start finds the catalog seeded and says so, without adding anything.
        p.start()
        p.wait_for_line(rf"^agora\s*\| not seeding: the catalog has {PRODUCTS} products already$")
        assert list_all(p.gateway_port, "products")[1] == PRODUCTS
        problems = p.stop()
        assert not problems, "\n".join(problems)
    finally:
        if p.exit_code is None:
            p.stop()
        p.cleanup()
