"""Fixtures for the agora-gateway end-to-end tests: real processes and real peers, no mocks.

- start_gateway(config) -> Gateway: agora-gateway -c FILE.yaml on loopback port 0; at teardown
  it gets SIGTERM and must exit 0 with no sanitizer or crash report on stderr.
- start_py_upstream() -> PyUpstream: a recording, controllable HTTP upstream (gwtest.py).
- start_server(...) (inherited from ../conftest.py): agora-hello processes as upstreams.
- redis_server (session) and start_redis(): Debian's redis-server on a free loopback port.
- oidc (session, ES256), oidc_rs256 (session) and start_oidc(...): the npm oidc-provider run by
  tests/e2e/oidc/provider.js; tokens through client_credentials (clients alice, bob, carol).
- minter (session): tests/e2e/oidc/mint.js keys (published in a jwks_file) and hand-made tokens.

Helpers live in gwtest.py; tests import them from there.
"""

import pytest

from gwtest import Gateway, Minter, OidcProvider, PyUpstream, Redis, Stack, finish_gateways


def _fail_if(report, what):
    if report:
        pytest.fail(f"{what} did not end cleanly:\n" + "\n".join(report), pytrace=False)


@pytest.fixture
def start_gateway():
    """Factory: start_gateway(config_dict_or_yaml_text) -> a running Gateway."""
    started = []

    def start(config, **kw):
        gw = Gateway(config, **kw)
        started.append(gw)
        return gw

    yield start
    report = finish_gateways(started)
    _fail_if(report, "agora-gateway")


@pytest.fixture(scope="module")
def module_stack():
    """Gateways, PyUpstreams and agora-hellos shared by the tests of one module."""
    s = Stack()
    yield s
    _fail_if(s.finish(), "a module's processes")


@pytest.fixture
def start_py_upstream():
    """Factory: start_py_upstream() -> a PyUpstream serving on a free loopback port."""
    started = []

    def start():
        up = PyUpstream()
        started.append(up)
        return up

    yield start
    for up in started:
        up.stop()


@pytest.fixture
def py_upstream(start_py_upstream):
    return start_py_upstream()


@pytest.fixture(scope="session")
def redis_server():
    """One redis-server for the session; tests flush it before use and must leave it running."""
    r = Redis()
    yield r
    r.stop()
    r.cleanup()


@pytest.fixture
def start_redis():
    """Factory: start_redis() -> a Redis of the test's own (for stop/pause tests)."""
    started = []

    def start():
        r = Redis()
        started.append(r)
        return r

    yield start
    for r in started:
        r.cleanup()


@pytest.fixture(scope="session")
def oidc():
    p = OidcProvider("ES256")
    yield p
    p.stop()
    p.cleanup()


@pytest.fixture(scope="session")
def oidc_rs256():
    p = OidcProvider("RS256")
    yield p
    p.stop()
    p.cleanup()


@pytest.fixture
def start_oidc():
    """Factory: start_oidc(alg="ES256", kid=None) -> an OidcProvider of the test's own."""
    started = []

    def start(alg="ES256", kid=None):
        p = OidcProvider(alg, kid)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
        p.cleanup()


@pytest.fixture(scope="session")
def minter():
    m = Minter()
    yield m
    m.cleanup()
