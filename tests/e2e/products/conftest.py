"""Fixtures of the products e2e suite: the whole platform (`agora up`) once per database backend.

- platform (session, parametrised sqlite / postgres): authclient.Platform — auth, hello,
  products and the gateway on free loopback ports, AGORA_VAR in a temp dir, the local bus. For
  postgres, AGORA_AUTH_DB and AGORA_PRODUCTS_DB name two fresh databases of one throw-away
  cluster. Teardown: SIGTERM, exit 0, no child left, no sanitizer report, no 500 in the logs of
  auth and products.
- client: an authclient.Client whose answers are all checked against docs/api/products.yaml;
  direct=True reaches agora-products' own port instead of the gateway.
- admin_token, service_token, customer_token: access tokens minted by `agora token` (roles
  admin / service / customer) for the default tenant; other_tenant_admin_token: tenant "t2".
At the end of the session the documented operations no test exercised are printed.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.dirname(HERE)
for _p in (HERE, E2E, os.path.join(E2E, "auth")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from authclient import REPO, Client, Platform  # noqa: E402
from openapi_check import OpenApi  # noqa: E402

API_DOC = os.environ.get("AGORA_PRODUCTS_API_DOC") or os.path.join(REPO, "docs", "api", "products.yaml")

_api = None


def _openapi():
    global _api
    if _api is None:
        assert os.path.exists(API_DOC), f"{API_DOC} is missing"
        _api = OpenApi(API_DOC)
    return _api


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def platform(request):
    backend = request.param
    auth_db = products_db = None
    if backend == "postgres":
        cluster = request.getfixturevalue("postgres_cluster")
        tag = f"{os.getpid()}"
        cluster.create_database(f"auth_p_{tag}")
        cluster.create_database(f"products_p_{tag}")
        auth_db = cluster.url(f"auth_p_{tag}")
        products_db = cluster.url(f"products_p_{tag}")
    p = Platform(backend, auth_db, products_db_url=products_db)
    try:
        p.start()
        yield p
        problems = p.stop()
        if problems:
            pytest.fail(f"agora up ({backend}) did not end cleanly:\n" + "\n".join(problems), pytrace=False)
    finally:
        if p.exit_code is None:
            p.stop()
        p.cleanup()


@pytest.fixture(scope="session")
def api():
    return _openapi()


@pytest.fixture(scope="session")
def client(platform, api):
    return Client(platform, api, direct_port=platform.products_port)


@pytest.fixture(scope="session")
def admin_token(platform):
    return platform.mint("admin")


@pytest.fixture(scope="session")
def service_token(platform):
    return platform.mint("service")


@pytest.fixture(scope="session")
def customer_token(platform):
    return platform.mint("customer")


@pytest.fixture(scope="session")
def other_tenant_admin_token(platform):
    return platform.mint("admin", tenant="t2")


def pytest_terminal_summary(terminalreporter):
    if _api is None:
        return
    ops = _api.unexercised()
    terminalreporter.section("products API coverage (docs/api/products.yaml)")
    terminalreporter.write_line(f"{_api.checked} responses checked against the document")
    if ops:
        terminalreporter.write_line("documented operations never exercised:")
        for method, path in ops:
            terminalreporter.write_line(f"  {method} {path}")
    else:
        terminalreporter.write_line("every documented operation was exercised")
