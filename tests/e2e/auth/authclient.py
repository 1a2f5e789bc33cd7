"""The auth e2e suite's helpers: the platform under test (`agora up`), an HTTP client that checks
every answer against docs/api/auth.yaml, and small helpers (users, tokens, JWTs).

Only the standard library plus Debian's python3-yaml / python3-jsonschema (through
openapi_check) and, when installed, python3-cryptography (signature checks and forged tokens).
"""

import base64
import http.client
import json as jsonlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import typing
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
AGORA_BIN = os.path.abspath(os.environ.get("AGORA_BIN", os.path.join(REPO, "build", "bin")))
PLATFORM_CONFIG = "config/platform.yaml"
# The OpenAPI document every answer is checked against (AGORA_AUTH_API_DOC: another file, e.g. a draft).
API_DOC = os.environ.get("AGORA_AUTH_API_DOC") or os.path.join(REPO, "docs", "api", "auth.yaml")

ADMIN_EMAIL = "e2e-admin@agora.test"
ADMIN_PASSWORD = "e2e admin password 7f3c"

IO_TIMEOUT = 30.0  # one HTTP exchange
READY_TIMEOUT = 120.0  # agora up until everything is ready (ASan builds start slowly)
STOP_TIMEOUT = 60.0  # agora up must exit this long after SIGTERM
LOG_TIMEOUT = 15.0  # a log line the service wrote must reach the supervisor's stdout file

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "LeakSanitizer", "runtime error")
PREFIX = "/api/v1/auth"

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

    HAVE_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - Debian's python3-cryptography is normally there
    HAVE_CRYPTOGRAPHY = False


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------


def free_ports(n):
    """n distinct free loopback ports (all bound at once, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def unique_email(tag="user"):
    return f"{tag}-{uuid.uuid4().hex[:16]}@e2e.example.com"


def strong_password():
    return "pw-" + uuid.uuid4().hex  # 35 characters, never in a common-password list


def b64url_decode(part):
    if isinstance(part, str):
        part = part.encode("ascii")
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_parts(token):
    """(header, claims) of a compact JWS, without verifying it."""
    parts = token.split(".")
    assert len(parts) == 3, f"not a compact JWS: {token!r:.80}"
    return jsonlib.loads(b64url_decode(parts[0])), jsonlib.loads(b64url_decode(parts[1]))


def jwt_verify_es256(token, jwk):
    """True when the ES256 signature of token verifies with the public EC JWK."""
    assert HAVE_CRYPTOGRAPHY
    head, payload, sig = token.split(".")
    raw = b64url_decode(sig)
    if len(raw) != 64:
        return False
    x = int.from_bytes(b64url_decode(jwk["x"]), "big")
    y = int.from_bytes(b64url_decode(jwk["y"]), "big")
    public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{head}.{payload}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
        return True
    except Exception:
        return False


def forge_token(header, claims):
    """A JWT with the given header and claims, signed ES256 by a key nobody publishes. Without
    python3-cryptography: a well-formed token whose signature is 64 bytes of garbage."""
    signing_input = b64url_encode(jsonlib.dumps(header).encode()) + "." + b64url_encode(jsonlib.dumps(claims).encode())
    if HAVE_CRYPTOGRAPHY:
        key = ec.generate_private_key(ec.SECP256R1())
        r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = os.urandom(64)
    return signing_input + "." + b64url_encode(sig)


RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# ---------------------------------------------------------------------------------------------
# the platform: `agora up` on a temporary directory and free ports
# ---------------------------------------------------------------------------------------------


class Platform:
    """`agora up --config config/platform.yaml` with AGORA_VAR in a temp dir and free ports."""

    def __init__(self, backend, db_url=None, products_db_url=None, extra_env=None, config=None, up_args=()):
        self.backend = backend
        self.up_args = list(up_args)  # more options for `agora up` (--seed)
        self.config = config or PLATFORM_CONFIG  # relative to the repository, or absolute
        self.var = tempfile.mkdtemp(prefix=f"agora-auth-e2e-{backend}-")
        self.auth_port, self.gateway_port, self.admin_port, self.hello_port, self.products_port = free_ports(5)
        self.issuer = f"http://127.0.0.1:{self.gateway_port}"
        self.keys_dir = os.path.join(self.var, "keys", "auth")
        self.db_url = db_url or f"sqlite:{self.var}/data/auth.db"
        self.products_db_url = products_db_url or f"sqlite:{self.var}/data/products.db"
        self.stdout_path = os.path.join(self.var, "agora-up.stdout")
        self.stderr_path = os.path.join(self.var, "agora-up.stderr")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
        env.update(
            AGORA_BIN=AGORA_BIN,
            AGORA_VAR=self.var,
            AGORA_AUTH_PORT=str(self.auth_port),
            AGORA_GATEWAY_PORT=str(self.gateway_port),
            AGORA_GATEWAY_ADMIN_PORT=str(self.admin_port),
            AGORA_HELLO_PORT=str(self.hello_port),
            AGORA_ISSUER=self.issuer,
            AGORA_ENV="development",
            AGORA_ADMIN_EMAIL=ADMIN_EMAIL,
            AGORA_ADMIN_PASSWORD=ADMIN_PASSWORD,
            AGORA_AUTH_DB=self.db_url,
            AGORA_PRODUCTS_PORT=str(self.products_port),
            AGORA_PRODUCTS_DB=self.products_db_url,
            NO_COLOR="1",
        )
        env.update(extra_env or {})
        self.env = env
        self.proc = None
        self.last_pids = []
        self.exit_code = None

    # -- start --

    def start(self):
        exe = os.path.join(AGORA_BIN, "agora")
        assert os.access(exe, os.X_OK), f"{exe} is not built (AGORA_BIN={AGORA_BIN})"
        assert os.path.exists(os.path.join(REPO, self.config)), f"{self.config} is missing"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [exe, "up", "--config", self.config, "--no-color", *self.up_args],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.exit_code = None  # a platform may be started again after a stop
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Until the gateway serves the discovery document and every process is ready."""
        deadline = time.monotonic() + timeout
        why = "nothing tried"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"agora up exited with {self.proc.returncode} while starting\n{self.logs()}")
            try:
                status = self._gateway_get("/.well-known/openid-configuration")
                if status != 200:
                    why = f"discovery answered {status}"
                else:
                    procs = self.status()
                    not_ready = [p.get("name") for p in procs if p.get("ready") is not True]
                    if procs and not not_ready:
                        return
                    why = f"not ready: {not_ready or 'no processes in status'}"
            except (OSError, http.client.HTTPException, AssertionError, ValueError) as e:
                why = f"{type(e).__name__}: {e}"
            time.sleep(0.2)
        raise AssertionError(f"the platform was not ready within {timeout} s ({why})\n{self.logs()}")

    def _gateway_get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.gateway_port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    # -- the CLI --

    def agora(self, *args, check=True, timeout=60):
        """Runs `agora ARGS` in the repository with the platform's environment."""
        cp = subprocess.run(
            [os.path.join(AGORA_BIN, "agora"), *args],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert cp.returncode == 0, f"agora {' '.join(args)} exited {cp.returncode}: {cp.stderr}{cp.stdout}"
        return cp

    def mint(self, roles, tenant="default", user=None):
        """An access token from `agora token` (signed with auth's current key)."""
        args = ["token", "--user", user or str(uuid.uuid4()), "--roles", roles, "--tenant", tenant]
        return self.agora(*args).stdout.strip()

    def status(self):
        """`agora status --json` as a list of process dicts (name, pid, restarts, ready...)."""
        cp = self.agora("status", "--config", self.config, "--json")
        doc = jsonlib.loads(cp.stdout)
        procs = None
        if isinstance(doc, list):
            procs = doc
        elif isinstance(doc, dict):
            for key in ("processes", "children", "services"):
                value = doc.get(key)
                if isinstance(value, list):
                    procs = value
                    break
                if isinstance(value, dict):
                    procs = [dict(v, name=k) for k, v in value.items()]
                    break
        assert procs is not None, f"agora status --json: no process list in {cp.stdout!r:.500}"
        self.last_pids = [p["pid"] for p in procs if isinstance(p.get("pid"), int) and p["pid"] > 0]
        return procs

    def process(self, name):
        for p in self.status():
            if p.get("name") == name:
                return p
        raise AssertionError(f"agora status shows no process named {name}")

    # -- logs --

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    def logs(self, tail=200):
        out = self.stdout().splitlines()[-tail:]
        err = self.stderr().splitlines()[-tail:]
        return "--- agora up stdout (tail) ---\n" + "\n".join(out) + "\n--- agora up stderr (tail) ---\n" + "\n".join(err)

    def service_records(self, name="auth"):
        """The JSON log records of one supervised process (lines `name | {json}`)."""
        records = []
        pattern = re.compile(r"^" + re.escape(name) + r"\s*\|\s?(\{.*\})\s*$")
        for line in self.stdout().splitlines():
            m = pattern.match(line)
            if m:
                try:
                    records.append(jsonlib.loads(m.group(1)))
                except ValueError:
                    pass
        return records

    def reset_token(self, email, seen=()):
        """The newest password reset token the auth service logged for email (not in seen)."""
        deadline = time.monotonic() + LOG_TIMEOUT
        while True:
            tokens = [
                r.get("token")
                for r in self.service_records("auth")
                if r.get("msg") == "password reset token"
                and str(r.get("email", "")).lower() == email.lower()
                and r.get("token") not in seen
            ]
            if tokens:
                return tokens[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no 'password reset token' log line for {email}\n{self.logs(60)}")
            time.sleep(0.05)

    # -- stop --

    def stop(self):
        """SIGTERM to agora up; returns a list of problems (empty when it ended cleanly)."""
        problems = []
        if self.proc is not None and self.exit_code is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"agora up did not exit within {STOP_TIMEOUT} s of SIGTERM")
                self.proc.kill()
                self.exit_code = self.proc.wait()
            if self.exit_code != 0:
                problems.append(f"agora up exited with {self.exit_code} after SIGTERM")
            for pid in self.last_pids:
                if pid != self.proc.pid and _alive(pid):
                    problems.append(f"process {pid} is still alive after agora up exited")
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            text = self.stdout() + self.stderr()
            if "asan" in AGORA_BIN.lower():
                for mark in SANITIZER_MARKS:
                    if mark in text:
                        problems.append(f"the output holds {mark!r}")
            for service in ("auth", "products"):
                for record in self.service_records(service):
                    if record.get("status") == 500:
                        problems.append(f"{service} answered 500: {jsonlib.dumps(record)}")
            if problems:
                problems.append(self.logs())
        return problems

    def cleanup(self):
        shutil.rmtree(self.var, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of someone else counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# the client
# ---------------------------------------------------------------------------------------------


class Reply(typing.NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: object  # parsed JSON, or bytes

    def header(self, name):
        return self.headers.get(name)


class Client:
    """HTTP/1.1 to the gateway (or the auth service's own port with direct=True); every answer is
    checked against the OpenAPI document and against the suite's invariants: nothing 5xx, every
    refusal a problem+json whose `status` equals the HTTP status."""

    def __init__(self, platform, api, direct_port=None):
        self.platform = platform
        self.api = api
        self.direct_port = direct_port  # the service that direct=True reaches (default: auth)
        self.gateway_rate_limited = 0

    def call(self, method, path, json=None, token=None, raw=None, headers=None, direct=False, check=True, allow_5xx=False):
        """Returns a Reply (status, headers, body); body is parsed when the answer is JSON.

        json: a value sent as application/json (None: no JSON body; send a JSON null with
        raw=b"null"). raw: bytes sent as they are, Content-Type application/json unless headers
        say otherwise (a header given as None is left out). direct: the auth service's own port
        instead of the gateway. check: validate against the OpenAPI document (always, in this
        suite). allow_5xx: only the kill -9 test, where the gateway answers for a dead service.
        """
        for _ in range(10):
            reply = self._exchange(method, path, json, token, raw, headers, direct)
            # The gateway's per-IP rate limit on login/register is not under test here.
            if (
                not direct
                and reply.status == 429
                and isinstance(reply.body, dict)
                and reply.body.get("detail") == "rate limit exceeded"
            ):
                self.gateway_rate_limited += 1
                time.sleep(float(reply.headers.get("Retry-After") or 1))
                continue
            break
        where = f"{method} {path}{' (direct)' if direct else ''}"
        if reply.status >= 500:
            assert allow_5xx, f"{where} answered {reply.status}: {reply.body!r:.500}"
            if reply.status in (502, 503, 504):
                return reply  # the gateway speaking for a process that is down (kill -9 test)
        if reply.status >= 400:
            ctype = (reply.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            assert ctype == "application/problem+json", (
                f"{where} answered {reply.status} with Content-Type {ctype!r}, not problem+json: {reply.body!r:.300}"
            )
            assert isinstance(reply.body, dict), f"{where}: problem body is not an object: {reply.body!r:.300}"
            assert reply.body.get("status") == reply.status, (
                f"{where}: problem status {reply.body.get('status')!r} != HTTP {reply.status}"
            )
        if check:
            self.api.check(method, path, reply.status, reply.headers, reply.body)
        return reply

    def _exchange(self, method, path, json, token, raw, headers, direct):
        port = (self.direct_port or self.platform.auth_port) if direct else self.platform.gateway_port
        send_headers = {}
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode("utf-8")
            send_headers["Content-Type"] = "application/json"
        elif raw is not None:
            body = raw if isinstance(raw, bytes) else raw.encode("utf-8")
            send_headers["Content-Type"] = "application/json"
        if token is not None:
            send_headers["Authorization"] = f"Bearer {token}"
        for k, v in (headers or {}).items():
            for existing in [e for e in send_headers if e.lower() == k.lower()]:
                del send_headers[existing]
            if v is not None:
                send_headers[k] = v
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=IO_TIMEOUT)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in send_headers.items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            if body:
                try:
                    conn.send(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server answered (413) and closed before reading it all
            resp = conn.getresponse()
            data = resp.read()
            ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            parsed = data
            if data and (ctype == "application/json" or ctype.endswith("+json")):
                try:
                    parsed = jsonlib.loads(data)
                except ValueError as e:
                    raise AssertionError(f"{method} {path}: {ctype} body is not JSON ({e}): {data!r:.300}")
            return Reply(resp.status, resp.headers, parsed)
        finally:
            conn.close()

    # -- the auth API's common steps (each asserts success) --

    def register(self, email=None, password=None, name=None):
        """Registers a new customer; returns (user, email, password)."""
        email = email or unique_email()
        password = password or strong_password()
        name = name if name is not None else "E2E " + email.split("@")[0]
        r = self.call("POST", f"{PREFIX}/register", json={"email": email, "password": password, "name": name})
        assert r.status == 201, f"register {email}: {r.status} {r.body}"
        return r.body, email, password

    def login(self, email, password):
        """Logs in; returns the token pair dict."""
        r = self.call("POST", f"{PREFIX}/login", json={"email": email, "password": password})
        assert r.status == 200, f"login {email}: {r.status} {r.body}"
        return r.body

    def new_user(self, name=None):
        """Registers and logs in a customer: {'user','email','password','access','refresh'}."""
        user, email, password = self.register(name=name)
        tokens = self.login(email, password)
        return {"user": user, "email": email, "password": password, "access": tokens["access_token"], "refresh": tokens["refresh_token"]}

    def me(self, token, direct=False):
        return self.call("GET", f"{PREFIX}/me", token=token, direct=direct)
