"""The bus under failure: every event arrives and takes effect exactly once while the publisher
(agora-products, whose relay publishes its outbox) and the consumer (agora-bus-probe) are killed
with SIGKILL at random moments, and — on RabbitMQ — the broker is restarted once.

The proof is counted in the services' own databases: the products' outbox holds one row per
product created; the probe's inbox and its effect rows (no uniqueness: a double effect would
show) must each hold exactly those event ids, once."""

import http.client
import json
import os
import random
import signal
import threading
import time



PRODUCTS = 1000
WRITERS = 4
PACE_S = 0.05  # between two creates of one writer: the writing lasts ~15 s, under the chaos
CHAOS_TIMEOUT = 180.0  # for the writing and the kills; they take ~15 s
SETTLE_TIMEOUT = 240.0  # for the last events to drain after the chaos ends


def _post(port, path, body, token):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data) if data else None
        except ValueError:
            return resp.status, data
    finally:
        conn.close()


def _create_all(platform, token, skus, errors, stop):
    """Creates each product straight at agora-products, retrying through its restarts: a create
    whose answer was lost is retried and then meets 409 (the SKU exists), which counts. Returns
    early once stop (a threading.Event) is set."""
    for sku in skus:
        if stop.is_set():
            return
        body = {"sku": sku, "name": f"Chaos {sku}", "price": {"amount": 100, "currency": "EUR"}}
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _ = _post(platform.products_port, "/api/v1/products", body, token)
                if status in (201, 409):
                    break
                if status not in (502, 503):
                    errors.append(f"{sku}: POST answered {status}")
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                errors.append(f"{sku}: not created within 120 s")
                break
            if stop.is_set():
                return
            time.sleep(0.05)
        time.sleep(PACE_S)


def _kill(platform, name):
    pid = platform.process(name).get("pid")
    if isinstance(pid, int) and pid > 0:
        try:
            os.kill(pid, signal.SIGKILL)
            return True
        except ProcessLookupError:
            pass
    return False


def test_every_event_takes_effect_once_under_kills(bus_platform):
    p = bus_platform
    token = p.mint("admin")
    rng = random.Random(5)
    skus = [f"CHAOS-{i:05d}" for i in range(PRODUCTS)]
    errors = []
    stop = threading.Event()
    writers = [threading.Thread(target=_create_all, args=(p, token, skus[i::WRITERS], errors, stop)) for i in range(WRITERS)]
    for w in writers:
        w.start()
    kills = {"products": 0, "probe": 0}
    restarted_broker = False
    # Kills at random moments while the writers run (and until each process died at least
    # twice); the broker restarts once, after the second kill, while products keep coming. So
    # once the loop ends, each process was killed twice and the broker (if any) restarted.
    chaos_deadline = time.monotonic() + CHAOS_TIMEOUT
    try:
        while any(w.is_alive() for w in writers) or min(kills.values()) < 2:
            assert time.monotonic() < chaos_deadline, (
                f"the chaos did not end within {CHAOS_TIMEOUT} s: kills {kills}, broker restarted "
                f"{restarted_broker}, writers alive {sum(w.is_alive() for w in writers)}, errors {errors[:10]}"
            )
            time.sleep(rng.uniform(0.5, 2.0))
            victim = rng.choice(["products", "probe"])
            if kills[victim] < 4 and _kill(p, victim):
                kills[victim] += 1
            if p.broker is not None and not restarted_broker and sum(kills.values()) >= 2:
                p.broker.restart()
                restarted_broker = True
    finally:
        stop.set()  # only matters when the loop failed: the writers have ended otherwise
        for w in writers:
            w.join()
    assert not errors, errors[:10]

    created = "SELECT COUNT(*) FROM outbox WHERE type = 'products.product.created'"
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        outbox = p.count("products", created)
        pending = p.count("products", "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
        effects = p.count("probe", "SELECT COUNT(*) FROM probe_effects WHERE type = 'products.product.created'")
        if outbox == PRODUCTS and pending == 0 and effects >= PRODUCTS:
            break
        assert time.monotonic() < deadline, (
            f"not settled after {SETTLE_TIMEOUT} s: outbox {outbox}, pending {pending}, effects {effects}\n{p.logs(80)}"
        )
        time.sleep(0.5)
    time.sleep(1.0)  # a late duplicate, if any, would land now
    effects = p.count("probe", "SELECT COUNT(*) FROM probe_effects WHERE type = 'products.product.created'")
    distinct = p.count("probe", "SELECT COUNT(DISTINCT event_id) FROM probe_effects WHERE type = 'products.product.created'")
    inbox = p.count("probe", "SELECT COUNT(*) FROM inbox WHERE type = 'products.product.created'")
    dead = p.count("probe", "SELECT COUNT(*) FROM dead_events")
    assert (outbox, distinct, effects, inbox, dead) == (PRODUCTS, PRODUCTS, PRODUCTS, PRODUCTS, 0), (
        f"outbox {outbox}, distinct effects {distinct}, effects {effects}, inbox {inbox}, dead {dead} (kills {kills})"
    )
    # The same ids on both sides: the products' subjects are the probe's subjects.
    products_rows = p.count("products", "SELECT COUNT(*) FROM products WHERE sku LIKE 'CHAOS-%'")
    assert products_rows == PRODUCTS
    if p.broker is not None:
        # RabbitMQ carried the events: the probe's group queue is on the broker (it would not
        # be if the services had fallen back to another bus)
        queues = p.broker.ctl("list_queues", "name").split()
        assert "agora.bus-probe" in queues, f"the broker's queues: {queues}"


def test_dead_event_is_parked_and_replayed(bus_platform):
    p = bus_platform
    p.wait_ready()  # a process killed by the test before may still be restarting
    token = p.mint("admin")
    open(p.fail_file, "w").close()
    try:
        sku = f"DEAD-{os.getpid()}-{random.randrange(10**9)}"
        body = {"sku": sku, "name": "Dead letter", "price": {"amount": 1, "currency": "EUR"}}
        status, product = _post(p.products_port, "/api/v1/products", body, token)
        assert status == 201, product
        deadline = time.monotonic() + 60
        while p.count("probe", "SELECT COUNT(*) FROM dead_events") < 1:
            assert time.monotonic() < deadline, f"the event was not parked as dead\n{p.logs(60)}"
            time.sleep(0.2)
        listing = p.agora("events", "dead", "--config", p.config, "--service", "probe").stdout
        assert "products.product.created" in listing, listing
    finally:
        os.unlink(p.fail_file)
    p.agora("events", "replay", "--config", p.config, "--service", "probe", "--all")
    deadline = time.monotonic() + 60
    while p.count("probe", "SELECT COUNT(*) FROM dead_events") > 0:
        assert time.monotonic() < deadline, f"the replayed event is still dead\n{p.logs(60)}"
        time.sleep(0.2)
    # The product id is a UUID (checked by the API), so it is safe to put in the SQL text.
    assert len(product["id"]) == 36 and all(c in "0123456789abcdef-" for c in product["id"])
    effects = p.count("probe", f"SELECT COUNT(*) FROM probe_effects WHERE subject = '{product['id']}'")
    assert effects == 1, f"the replayed event took effect {effects} times"
