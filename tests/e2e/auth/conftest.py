"""Fixtures of the auth e2e suite: the whole platform (`agora up`) once per database backend.

- platform (session, parametrised sqlite / postgres): `agora up --config config/platform.yaml`
  from the repository root, AGORA_VAR in a temp dir, free loopback ports, the admin account
  from AGORA_ADMIN_EMAIL / AGORA_ADMIN_PASSWORD; for postgres, AGORA_AUTH_DB names a fresh
  database of a throw-away cluster (tests/e2e/support/postgres.py) started once per session.
  Teardown: SIGTERM, exit 0, no child left, no sanitizer report (AGORA_BIN containing "asan"),
  no 500 in the auth service's log.
- client: an authclient.Client on that platform; every answer is checked against
  docs/api/auth.yaml (tests/e2e/openapi_check.py).
- admin: the admin's login ({'access','refresh','id','email'}).
At the end of the session the documented operations that no test exercised are printed.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.dirname(HERE)
for _p in (HERE, E2E):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import authclient  # noqa: E402
from authclient import ADMIN_EMAIL, ADMIN_PASSWORD, Client, Platform  # noqa: E402
from openapi_check import OpenApi  # noqa: E402

_api = None


def _openapi():
    global _api
    if _api is None:
        assert os.path.exists(authclient.API_DOC), f"{authclient.API_DOC} is missing"
        _api = OpenApi(authclient.API_DOC)
    return _api


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def platform(request):
    backend = request.param
    db_url = None
    if backend == "postgres":
        cluster = request.getfixturevalue("postgres_cluster")
        name = f"auth_e2e_{os.getpid()}"
        cluster.create_database(name)
        db_url = cluster.url(name)
    p = Platform(backend, db_url)
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
    return Client(platform, api)


@pytest.fixture(scope="session")
def admin(client):
    """The first-start admin, logged in once per platform."""
    tokens = client.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    me = client.me(tokens["access_token"])
    assert me.status == 200, me
    assert "admin" in me.body["roles"], f"the first-start admin lacks the admin role: {me.body}"
    return {"access": tokens["access_token"], "refresh": tokens["refresh_token"], "id": me.body["id"], "email": me.body["email"]}


@pytest.fixture
def customer(client):
    """A fresh customer, registered and logged in."""
    return client.new_user()


def pytest_terminal_summary(terminalreporter):
    if _api is None:
        return
    ops = _api.unexercised()
    terminalreporter.section("auth API coverage (docs/api/auth.yaml)")
    terminalreporter.write_line(f"{_api.checked} responses checked against the document")
    if ops:
        terminalreporter.write_line("documented operations never exercised:")
        for method, path in ops:
            terminalreporter.write_line(f"  {method} {path}")
    else:
        terminalreporter.write_line("every documented operation was exercised")
    missing = _api.unexercised_responses()
    if missing and terminalreporter.config.option.verbose > 0:
        terminalreporter.write_line("documented responses never seen:")
        for method, path, status in missing:
            terminalreporter.write_line(f"  {method} {path} {status}")
    elif missing:
        terminalreporter.write_line(f"{len(missing)} documented responses never seen (-v lists them)")
