"""Fixtures of the bus e2e suite: the platform plus agora-bus-probe (a test consumer), on the
local bus with SQLite, and on RabbitMQ with PostgreSQL — real servers started by the tests.

- bus_platform (parametrised "sqlite-local" / "postgres-amqp"): config/platform.yaml with one
  more process, `probe` (agora-bus-probe subscribed to products.product.*), written to a temp
  file; for postgres-amqp, three databases of one throw-away PostgreSQL cluster and a
  throw-away RabbitMQ broker (tests/e2e/support/rabbitmq.py).
- Counting helpers read each service's own database (sqlite3 or psql).
"""

import itertools
import os
import sqlite3
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.dirname(HERE)
for _p in (HERE, E2E, os.path.join(E2E, "auth"), os.path.join(E2E, "products")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from authclient import REPO, Platform, free_ports  # noqa: E402

_platforms = itertools.count(1)

PROBE = {
    "name": "probe",
    "exec": "agora-bus-probe",
    "args": [],
    "after": ["products"],
    "url": "http://127.0.0.1:${AGORA_PROBE_PORT}",
    "ready": "http://127.0.0.1:${AGORA_PROBE_PORT}/readyz",
    "env": {
        "AGORA_LISTEN": "127.0.0.1:${AGORA_PROBE_PORT}",
        "AGORA_DB": "${AGORA_PROBE_DB}",
        "AGORA_WORKERS": "1",
        "AGORA_ISSUERS": "${AGORA_ISSUER}=file:${AGORA_VAR}/keys/auth/jwks.json",
        "AGORA_AUDIENCE": "agora",
        "AGORA_BUS": "${AGORA_BUS}",
        "AGORA_BUS_RETRY_MS": "50",
        "AGORA_BUS_MAX_ATTEMPTS": "3",
        "AGORA_PROBE_PATTERN": "products.product.*",
        "AGORA_PROBE_FAIL_FILE": "${AGORA_VAR}/probe-fail",
    },
}


class BusPlatform(Platform):
    """The platform with the probe; knows how to count rows in each service's database."""

    def __init__(self, backend, cluster=None, broker=None):
        self.cluster = cluster
        self.broker = broker
        self.tag = f"{os.getpid()}_{next(_platforms)}"
        dbs = {}
        if cluster is not None:
            for svc in ("auth", "products", "probe"):
                name = f"{svc}_bus_{self.tag}"
                cluster.create_database(name)
                dbs[svc] = (name, cluster.url(name))
        (probe_port,) = free_ports(1)
        self.probe_port = probe_port
        extra = {"AGORA_PROBE_PORT": str(probe_port)}
        super().__init__(
            backend,
            dbs["auth"][1] if dbs else None,
            products_db_url=dbs["products"][1] if dbs else None,
            extra_env=extra,
        )
        self.dbs = dbs
        self.env["AGORA_PROBE_DB"] = dbs["probe"][1] if dbs else f"sqlite:{self.var}/data/probe.db"
        if broker is not None:
            self.env["AGORA_BUS"] = broker.url
        with open(os.path.join(REPO, "config", "platform.yaml")) as f:
            doc = yaml.safe_load(f)
        doc["processes"].insert(len(doc["processes"]) - 1, PROBE)  # before the gateway
        self.config = os.path.join(self.var, "platform-bus.yaml")
        with open(self.config, "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
        self.fail_file = os.path.join(self.var, "probe-fail")

    def count(self, service, sql):
        """The single integer that sql yields in the service's own database."""
        if self.cluster is not None:
            return int(self.cluster.psql(sql, dbname=self.dbs[service][0]).strip() or 0)
        path = os.path.join(self.var, "data", f"{service}.db")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return int(conn.execute(sql).fetchone()[0] or 0)
        finally:
            conn.close()


@pytest.fixture(scope="session")
def rabbitmq():
    from support.rabbitmq import RabbitMQ

    broker = RabbitMQ()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module", params=["sqlite-local", "postgres-amqp"])
def bus_platform(request):
    cluster = broker = None
    if request.param == "postgres-amqp":
        cluster = request.getfixturevalue("postgres_cluster")
        broker = request.getfixturevalue("rabbitmq")
    p = BusPlatform(request.param, cluster, broker)
    try:
        p.start()
        yield p
        problems = p.stop()
        if problems:
            pytest.fail(f"agora up ({request.param}) did not end cleanly:\n" + "\n".join(problems), pytrace=False)
    finally:
        if p.exit_code is None:
            p.stop()
        p.cleanup()
