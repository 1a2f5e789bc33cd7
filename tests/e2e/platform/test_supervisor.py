"""End-to-end tests of the `agora` command line: up (the supervisor), status, down, token, keys.

Real processes: agora-hello children on free ports in a temporary platform file, a child that
always exits at once, and real key directories. Waits are bounded by generous deadlines; no test
asserts how long anything took (the back-off is checked from the delays the supervisor logs).
"""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

import pytest

AGORA_BIN = os.environ.get("AGORA_BIN", "/work/main/build/bin")
AGORA = os.path.join(AGORA_BIN, "agora")
HELLO = os.path.join(AGORA_BIN, "agora-hello")

WAIT = 60.0  # the most any wait for a state may take before the test fails

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    HAVE_CRYPTOGRAPHY = True
except ImportError:  # the signature check is then skipped; the claims are still checked
    HAVE_CRYPTOGRAPHY = False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(predicate, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run(*args, **kwargs):
    return subprocess.run([AGORA, *args], capture_output=True, text=True, timeout=WAIT, **kwargs)


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Platform:
    """One `agora up` on a temporary platform file; its output goes to a file."""

    def __init__(self, tmp, processes, stop_timeout="5s"):
        self.dir = tmp
        self.var = os.path.join(tmp, "var")
        self.config = os.path.join(tmp, "platform.yaml")
        self.state_path = os.path.join(self.var, "run", "agora.json")
        lines = [
            f"var_dir: {self.var}",
            f"bin_dir: {AGORA_BIN}",
            f"stop_timeout: {stop_timeout}",
            "ready_timeout: 60s",
            "processes:",
        ]
        for p in processes:
            lines.append(f"  - name: {p['name']}")
            lines.append(f"    exec: {p['exec']}")
            lines.append(f"    args: {json.dumps(p.get('args', []))}")
            for key in ("url", "ready"):
                if key in p:
                    lines.append(f"    {key}: {p[key]}")
            if "after" in p:
                lines.append(f"    after: {json.dumps(p['after'])}")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log_path = os.path.join(tmp, "up.log")
        self.proc = None

    def start(self):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [AGORA, "up", "--config", self.config],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, what=None):
        return wait_for(lambda: re.search(pattern, self.log(), re.M), what or pattern)

    def status(self):
        r = run("status", "--config", self.config, "--json")
        assert r.returncode == 0, f"agora status failed: {r.stderr}\n{self.log()}"
        return {p["name"]: p for p in json.loads(r.stdout)["processes"]}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()
            for alarm in ("Sanitizer", "runtime error:", "LeakSanitizer"):
                assert alarm not in self.log(), self.log()
        return self.proc.returncode if self.proc else None


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="agora-e2e-up-") as d:
        yield d


@pytest.fixture
def make_platform(tmp):
    made = []

    def make(processes, **kwargs):
        p = Platform(tmp, processes, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def hello(name, **extra):
    port = free_port()
    proc = {
        "name": name,
        "exec": "agora-hello",
        "args": ["--listen", f"127.0.0.1:{port}"],
        "url": f"http://127.0.0.1:{port}",
        "ready": f"http://127.0.0.1:{port}/healthz",
    }
    proc.update(extra)
    return proc


# ---------------------------------------------------------------------------------------------
# agora up, status, down
# ---------------------------------------------------------------------------------------------


def test_help_of_every_command():
    for args in (["--help"], ["up", "--help"], ["status", "--help"], ["down", "--help"],
                 ["token", "--help"], ["keys", "--help"], ["keys", "rotate", "--help"]):
        r = run(*args)
        assert r.returncode == 0, f"agora {' '.join(args)}: {r.returncode} {r.stderr}"
        assert r.stdout.startswith("usage: agora"), r.stdout
    r = run("frobnicate")
    assert r.returncode == 2
    assert r.stderr.startswith("agora: ")
    r = run("up", "--bogus")
    assert r.returncode == 2
    assert r.stderr.startswith("agora: ")


def test_up_reports_ready_status_then_stops_on_sigterm(make_platform):
    a, b = hello("alpha"), hello("beta", after=["alpha"])
    p = make_platform([a, b]).start()
    p.wait_log(r"platform ready$", "platform ready")
    log = p.log()
    assert a["url"] in log and b["url"] in log
    # beta comes after alpha: alpha was ready before beta started.
    assert log.index("alpha is ready") < re.search(r"^beta\s+\| ", log, re.M).start()

    st = p.status()
    assert set(st) == {"alpha", "beta"}
    for proc in st.values():
        assert proc["alive"] and proc["ready"] and proc["restarts"] == 0
        assert alive(proc["pid"])
    table = run("status", "--config", p.config)
    assert table.returncode == 0
    for name in ("alpha", "beta"):
        assert re.search(rf"^{name}\s+{st[name]['pid']}\s", table.stdout, re.M), table.stdout

    # A second supervisor on the same state is refused.
    second = run("up", "--config", p.config)
    assert second.returncode == 1
    assert "already running" in second.stderr

    assert p.stop() == 0
    for proc in st.values():
        assert not alive(proc["pid"])
    assert not os.path.exists(p.state_path)
    assert "stopped" in p.log()
    r = run("status", "--config", p.config)
    assert r.returncode == 1
    assert r.stderr.startswith("agora: no platform is running")


def test_killed_child_is_restarted(make_platform):
    p = make_platform([hello("alpha"), hello("beta")]).start()
    p.wait_log(r"platform ready$", "platform ready")
    before = p.status()["alpha"]
    os.kill(before["pid"], signal.SIGKILL)

    def restarted():
        now = p.status()["alpha"]
        return now if now["restarts"] == 1 and now["ready"] and now["pid"] != before["pid"] else None

    after = wait_for(restarted, "alpha restarted and ready")
    assert alive(after["pid"])
    assert not alive(before["pid"])
    assert p.status()["beta"]["restarts"] == 0
    log = p.log()
    assert re.search(r"alpha was killed by signal 9 .*; restart 1 in \d+ ms", log), log
    assert "restarting alpha (restart 1)" in log
    assert p.stop() == 0


def test_crashing_child_backs_off_exponentially(make_platform):
    crash = {"name": "crash", "exec": "/bin/sh", "args": ["-c", "echo going down; exit 3"]}
    p = make_platform([hello("alpha"), crash]).start()
    pattern = r"crash exited with status 3 after \d+ ms; restart (\d+) in (\d+) ms"
    wait_for(lambda: len(re.findall(pattern, p.log())) >= 4, "four exits of crash")
    delays = [(int(n), int(d)) for n, d in re.findall(pattern, p.log())]
    numbers = [n for n, _ in delays]
    assert numbers == list(range(1, len(numbers) + 1)), delays
    for (_, d1), (_, d2) in zip(delays, delays[1:]):
        assert d2 == min(2 * d1, 30000), delays
    assert delays[0][1] == 250
    assert re.search(r"^crash\s+\| going down$", p.log(), re.M)
    restarts = p.status()["crash"]["restarts"]
    assert restarts >= 3
    wait_for(lambda: p.status()["crash"]["restarts"] > restarts, "another restart")
    assert p.stop() == 0


def test_down_stops_the_platform(make_platform):
    p = make_platform([hello("alpha")]).start()
    p.wait_log(r"platform ready$", "platform ready")
    pid = p.status()["alpha"]["pid"]
    r = run("down", "--config", p.config)
    assert r.returncode == 0, r.stderr
    assert p.proc.wait(timeout=WAIT) == 0
    assert not alive(pid)
    assert not os.path.exists(p.state_path)
    r = run("down", "--config", p.config)
    assert r.returncode == 1


def test_up_refuses_a_missing_executable(make_platform):
    p = make_platform([{"name": "ghost", "exec": "no-such-binary"}])
    r = run("up", "--config", p.config)
    assert r.returncode == 1
    assert "ghost" in r.stderr and "no-such-binary" in r.stderr


def test_up_refuses_a_bad_platform_file(tmp):
    path = os.path.join(tmp, "bad.yaml")
    with open(path, "w") as f:
        f.write("processes:\n  - name: a\n    exec: x\n    colour: red\n")
    r = run("up", "--config", path)
    assert r.returncode == 1
    assert re.match(rf"agora: {re.escape(path)}:\d+: processes\[0\]\.colour: unknown key", r.stderr)


# ---------------------------------------------------------------------------------------------
# agora token, agora keys rotate
# ---------------------------------------------------------------------------------------------


def auth_platform(tmp):
    """A platform file whose auth process names the keys, issuer and audience (not started)."""
    keys = os.path.join(tmp, "keys", "auth")
    path = os.path.join(tmp, "platform.yaml")
    with open(path, "w") as f:
        f.write(
            f"var_dir: {tmp}/var\n"
            "processes:\n"
            "  - name: auth\n"
            "    exec: agora-auth\n"
            "    env:\n"
            f"      AGORA_AUTH_KEYS_DIR: {keys}\n"
            "      AGORA_AUTH_ISSUER: http://issuer.test\n"
            "      AGORA_AUDIENCE: agora-test\n"
        )
    return path, keys


def jwks_keys(keys_dir):
    with open(os.path.join(keys_dir, "jwks.json")) as f:
        return {k["kid"]: k for k in json.load(f)["keys"]}


def verify_es256(token, jwk):
    if not HAVE_CRYPTOGRAPHY:
        return
    head, payload, sig = token.split(".")
    raw = b64url_decode(sig)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    pub = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url_decode(jwk["x"]), "big"),
        int.from_bytes(b64url_decode(jwk["y"]), "big"),
        ec.SECP256R1(),
    ).public_key()
    pub.verify(der, f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))


def test_token_verifies_and_carries_the_claims(tmp):
    config, keys = auth_platform(tmp)
    r = run("token", "--config", config, "--user", "42", "--roles", "admin,customer",
            "--tenant", "t1", "--ttl", "10m")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert r.stdout == token + "\n"
    head, payload, _ = token.split(".")
    header = json.loads(b64url_decode(head))
    claims = json.loads(b64url_decode(payload))
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt"
    assert claims["sub"] == "42"
    assert claims["roles"] == ["admin", "customer"]
    assert claims["tenant"] == "t1"
    assert claims["iss"] == "http://issuer.test"
    assert claims["aud"] == "agora-test"
    assert claims["exp"] - claims["iat"] == 600
    assert len(claims["jti"]) >= 22
    published = jwks_keys(keys)
    assert header["kid"] in published
    verify_es256(token, published[header["kid"]])

    # Explicit options win over the platform file; --user is required.
    r = run("token", "--keys", keys, "--issuer", "http://other.test", "--audience", "x",
            "--user", "u")
    assert r.returncode == 0, r.stderr
    claims = json.loads(b64url_decode(r.stdout.strip().split(".")[1]))
    assert claims["iss"] == "http://other.test" and claims["aud"] == "x" and claims["roles"] == []
    r = run("token", "--config", config)
    assert r.returncode == 2 and r.stderr.startswith("agora: ")
    r = run("token", "--config", config, "--user", "1", "--ttl", "forever")
    assert r.returncode == 2


def test_keys_rotate_changes_the_signing_key_and_keeps_the_old_one(tmp):
    config, keys = auth_platform(tmp)
    first = run("token", "--config", config, "--user", "1").stdout.strip()
    old_kid = json.loads(b64url_decode(first.split(".")[0]))["kid"]
    r = run("keys", "rotate", "--config", config, "--keep", "20m")
    assert r.returncode == 0, r.stderr
    new_kid = r.stdout.strip()
    assert new_kid and new_kid != old_kid
    with open(os.path.join(keys, "state.json")) as f:
        assert json.load(f)["current"] == new_kid
    published = jwks_keys(keys)
    assert old_kid in published and new_kid in published
    verify_es256(first, published[old_kid])

    second = run("token", "--config", config, "--user", "1").stdout.strip()
    assert json.loads(b64url_decode(second.split(".")[0]))["kid"] == new_kid
    verify_es256(second, published[new_kid])

    # Modes: the directory and the private keys are the owner's alone.
    assert os.stat(keys).st_mode & 0o777 == 0o700
    assert os.stat(os.path.join(keys, f"{new_kid}.pem")).st_mode & 0o777 == 0o600
    os.chmod(keys, 0o755)
    r = run("keys", "rotate", "--keys", keys)
    assert r.returncode == 1 and "0755" in r.stderr
