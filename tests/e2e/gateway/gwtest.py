"""Helpers for the agora-gateway end-to-end tests: the processes and the real peers.

- Gateway: `agora-gateway -c FILE.yaml` on 127.0.0.1 port 0 (public and admin); the ports come
  from the first JSON log line; access-log lines are read back from its stdout.
- PyUpstream: a small HTTP/1.1 upstream in this process that records every request it receives
  (raw head included), answers with what it saw (its own port, the headers), and can be told to
  fail (a status for everything, a delay), or to answer with ambiguous framing (/bad/KIND).
- Redis: Debian's redis-server on a free loopback port, no persistence; stop, start, pause.
- OidcProvider: tests/e2e/oidc/provider.js (the npm package oidc-provider) with real
  client_credentials tokens (JWT access tokens, aud "agora", roles and tenant claims).
- Minter: tests/e2e/oidc/mint.js, keys published in a JWKS file and hand-made (hostile) tokens.

The parent directory's conftest.py (agora-hello fixtures and the raw HTTP client) is loaded here
by path under its own module name, because a second module named "conftest" cannot be imported
by name from here.
"""

import base64
import hashlib
import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_E2E = os.path.dirname(_HERE)


def _load_parent():
    name = "agora_e2e_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(_E2E, "conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


parent = _load_parent()
HttpConn = parent.HttpConn
Response = parent.Response
ClosedError = parent.ClosedError
RssSampler = parent.RssSampler
ServerSet = parent.ServerSet
request = parent.request
chunked = parent.chunked
fetch = parent.fetch
assert_problem = parent.assert_problem
IO_TIMEOUT = parent.IO_TIMEOUT
START_TIMEOUT = parent.START_TIMEOUT
CLOSE_TIMEOUT = parent.CLOSE_TIMEOUT
EXIT_TIMEOUT = parent.EXIT_TIMEOUT
HELLO_BODY = parent.HELLO_BODY

AGORA_BIN = parent.AGORA_BIN
GATEWAY = os.path.join(AGORA_BIN, "agora-gateway")
OIDC_DIR = os.path.join(_E2E, "oidc")
NODE = "/usr/bin/node"
REDIS_SERVER = "/usr/bin/redis-server"

MiB = 1024 * 1024

# Text on a gateway's stderr that means a sanitizer, an abort or a crash. (Error-level log lines
# are not in this list: many tests provoke upstream failures on purpose.)
CRASH_STDERR = ("Sanitizer", "runtime error:", "Assertion", "Segmentation", "double free", "core dumped")

# Fields every access-log line carries (issue 3, "Observability").
ACCESS_FIELDS = (
    "ts", "request_id", "method", "path", "route", "status", "bytes_in", "bytes_out",
    "duration_ms", "upstream", "upstream_ms", "client_ip", "user_id",
)


# ---------------------------------------------------------------------------------------------
# Small things
# ---------------------------------------------------------------------------------------------


def free_port():
    """A port that was free a moment ago (for peers that cannot take port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_HELD_SOCKETS = []


def refused_port():
    """A loopback port that refuses connections: bound (so nothing else takes it) but not listening."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD_SOCKETS.append(s)
    return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it is truthy; returns its value, or fails after timeout (a bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token):
    h, p, _ = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p))


def to_yaml(value, indent=0):
    """Block-style YAML for dicts, lists and scalars (strings double-quoted, JSON style)."""
    pad = "  " * indent

    def scalar(v):
        if v is True:
            return "true"
        if v is False:
            return "false"
        if v is None:
            return "null"
        if isinstance(v, (int, float)):
            return json.dumps(v)
        return json.dumps(str(v))

    def flat(v):
        return not isinstance(v, (dict, list)) or (isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v))

    def inline(v):
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        return scalar(v)

    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            if flat(v):
                out.append(f"{pad}{k}: {inline(v)}")
            elif isinstance(v, dict) and not v:
                out.append(f"{pad}{k}: {{}}")
            else:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 1))
    elif isinstance(value, list):
        for item in value:
            if flat(item):
                out.append(f"{pad}- {inline(item)}")
            else:
                sub = to_yaml(item, indent + 1).split("\n")
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
    else:
        out.append(pad + scalar(value))
    return "\n".join(out)


def header_values(headers, name):
    """All values of a field in a [(name, value)] list (case-insensitive name)."""
    return [v for n, v in headers if n.lower() == name.lower()]


def tokens_of(value):
    """Comma-separated list items, lower-cased (for Allow, Vary, Access-Control-*)."""
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


class Proc:
    """A background process; its stdout and stderr go to files in a temporary directory."""

    def __init__(self, args, name, env=None, cwd=None, tmp=None):
        self.name = name
        self.args = list(args)
        self._dir = tempfile.TemporaryDirectory(prefix=f"agora-e2e-{name}-") if tmp is None else None
        self.dir = self._dir.name if tmp is None else tmp
        self.stdout_path = os.path.join(self.dir, f"{name}.stdout")
        self.stderr_path = os.path.join(self.dir, f"{name}.stderr")
        self.env = env
        self.cwd = cwd
        self.proc = None
        self._spawn()

    def _spawn(self):
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd
            )
        self.pid = self.proc.pid

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def first_json_line(self, timeout=START_TIMEOUT, skip=0):
        """The first complete stdout line after `skip` bytes, as JSON; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.stdout_path, "rb") as f:
                f.seek(skip)
                first = f.readline()
            if first.endswith(b"\n"):
                try:
                    return json.loads(first)
                except ValueError:
                    raise AssertionError(f"{self.name}: first stdout line is not JSON: {first!r}") from None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} before its first line; "
                    f"stdout={self.stdout()[-2000:]!r} stderr={self.stderr()[-4000:]!r}"
                )
            time.sleep(0.02)
        raise AssertionError(f"{self.name} printed no first line within {timeout} s; stderr={self.stderr()[-2000:]!r}")

    def rss_bytes(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS in /proc/{self.pid}/status")

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def terminate(self):
        self.signal(signal.SIGTERM)

    def wait(self, timeout=EXIT_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout} s of SIGTERM") from None

    def kill(self):
        if self.alive():
            try:
                self.proc.send_signal(signal.SIGCONT)
            except OSError:
                pass
            self.proc.kill()
            self.proc.wait()

    def cleanup(self):
        self.kill()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def wait_accepting(port, timeout=START_TIMEOUT, what="server"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT).close()
            return
        except OSError as e:
            last = e
            time.sleep(0.02)
    raise AssertionError(f"{what} on port {port} does not accept: {last}")


# ---------------------------------------------------------------------------------------------
# The gateway
# ---------------------------------------------------------------------------------------------


def gateway_config(upstreams, routes, **top):
    """A configuration dict with loopback port-0 listeners, 1 worker and the access log on stdout."""
    cfg = {
        "listen": "127.0.0.1:0",
        "admin_listen": "127.0.0.1:0",
        "workers": 1,
        "access_log": "stdout",
    }
    cfg.update(top)
    cfg["upstreams"] = upstreams
    cfg["routes"] = routes
    return cfg


def upstream_of(*ports, **opts):
    """An upstream entry: targets on 127.0.0.1 (a port, or (port, weight)), and options."""
    targets = []
    for p in ports:
        port, weight = (p if isinstance(p, tuple) else (p, 1))
        targets.append({"address": f"127.0.0.1:{port}", "weight": weight})
    return {"targets": targets, **opts}


def small_quarantine_env():
    """The environment with ASan's quarantine of freed memory made small (no effect on a release
    build): under ASan freed buffers are held back (256 MiB by default), so RSS would grow with
    the bytes streamed and a flat-memory check would measure the sanitizer, not the gateway."""
    env = dict(os.environ)
    opts = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "quarantine_size_mb=1:thread_local_quarantine_size_kb=64"
    return env


def check_gateway_binary():
    if not os.access(GATEWAY, os.X_OK):
        raise AssertionError(f"{GATEWAY} is missing (build it with `make build`)")


class Gateway(Proc):
    """One agora-gateway process on its own configuration file."""

    def __init__(self, config, name="gateway", env=None):
        check_gateway_binary()
        self._dir_obj = tempfile.TemporaryDirectory(prefix="agora-e2e-gw-")
        self.config_path = os.path.join(self._dir_obj.name, "gateway.yaml")
        self.write_config(config)
        super().__init__([GATEWAY, "-c", self.config_path], name, env=env, tmp=self._dir_obj.name)
        self.port = self.admin_port = self.workers = None
        try:
            first = self.first_json_line()
            assert first.get("msg") == "listening", f"first log line is not 'listening': {first}"
            self.first = first
            self.port, self.admin_port, self.workers = first.get("port"), first.get("admin_port"), first.get("workers")
            for what, p in (("port", self.port), ("admin_port", self.admin_port)):
                assert isinstance(p, int) and 0 < p < 65536, f"bad {what} in {first}"
            wait_accepting(self.port, what="gateway")
            wait_accepting(self.admin_port, what="gateway admin")
        except BaseException:
            self.cleanup()
            raise

    def write_config(self, config):
        """Replaces the configuration file atomically (a reload never reads half a file)."""
        text = config if isinstance(config, str) else to_yaml(config) + "\n"
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        self.config_text = text

    # -- requests --

    def fetch(self, method, target, headers=(), body=b"", **kw):
        return fetch(self.port, method, target, headers, body, **kw)

    def get(self, target, headers=(), **kw):
        return fetch(self.port, "GET", target, headers, **kw)

    def admin(self, method, target, body=b"", headers=()):
        return fetch(self.admin_port, method, target, headers, body, host=f"127.0.0.1:{self.admin_port}")

    def reload_signal(self):
        self.signal(signal.SIGHUP)

    def metrics(self):
        resp = self.admin("GET", "/metrics")
        assert resp.status == 200, resp
        return resp.body.decode()

    # -- access log --

    def log_records(self):
        out = []
        for line in self.stdout().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def access_records(self):
        return [r for r in self.log_records() if "status" in r and "method" in r and "request_id" in r]

    def wait_access(self, pred=lambda r: True, count=1, timeout=10.0):
        """Waits until at least count access records match pred; returns the matching ones."""
        got = []

        def enough():
            got[:] = [r for r in self.access_records() if pred(r)]
            return len(got) >= count

        wait_until(enough, timeout, what=f"{count} matching access-log lines")
        return got

    # -- stop --

    def terminate(self):
        if self.alive():
            self.sigterm_sent = True
            self.proc.send_signal(signal.SIGTERM)

    def problems(self, timeout=EXIT_TIMEOUT):
        found = []
        if self.proc.poll() is not None and not getattr(self, "sigterm_sent", False):
            found.append(f"it had exited already (before SIGTERM) with {self.proc.returncode}")
        else:
            self.terminate()
            try:
                code = self.wait(timeout)
                if code != 0:
                    found.append(f"exit code {code} after SIGTERM (expected 0)")
            except AssertionError as e:
                found.append(str(e))
        err = self.stderr()
        if any(word in err for word in CRASH_STDERR):
            found.append(f"alarming stderr: {err[-4000:]!r}")
        return found

    def cleanup(self):
        self.kill()
        if self._dir_obj is not None:
            self._dir_obj.cleanup()
            self._dir_obj = None


def run_gateway_expecting_exit(config_text, timeout=START_TIMEOUT, args=None):
    """Runs the gateway on a configuration that must be refused; returns (code, stdout, stderr, path)."""
    check_gateway_binary()
    with tempfile.TemporaryDirectory(prefix="agora-e2e-gwbad-") as d:
        path = os.path.join(d, "bad.yaml")
        with open(path, "w") as f:
            f.write(config_text)
        argv = [GATEWAY, "-c", path] if args is None else [GATEWAY, *args]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"agora-gateway kept running on a bad configuration; stdout={e.stdout!r} stderr={e.stderr!r}"
            ) from None
        return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"), path


# ---------------------------------------------------------------------------------------------
# Keep-alive client (http.client) for loads
# ---------------------------------------------------------------------------------------------


class KeepAlive:
    """One keep-alive connection with http.client; reconnects only when told to."""

    def __init__(self, port, timeout=IO_TIMEOUT, source=None):
        self.port, self.timeout, self.source = port, timeout, source
        self.conn = None

    def request(self, method, target, headers=None, body=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=self.timeout,
                source_address=(self.source, 0) if self.source else None,
            )
        self.conn.request(method, target, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.will_close:
            self.close()
        return resp.status, resp.getheaders(), data

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---------------------------------------------------------------------------------------------
# The Python upstream
# ---------------------------------------------------------------------------------------------

# Responses with ambiguous or broken framing: GET /bad/KIND answers exactly these bytes.
BAD_RESPONSES = {
    "cl_te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te_cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "two_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "cl_list": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "te_chunked_twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "cl_sign": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "cl_space_colon": b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
    "obs_fold": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Folded: a\r\n b\r\n\r\nhello",
    "bare_lf": b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
    "huge_header": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 300000 + b"\r\nContent-Length: 5\r\n\r\nhello",
    "bad_status_line": b"HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello",
    "garbage": b"hello, this is not HTTP\r\n\r\n",
}


class PyUpstream:
    """
    A threaded HTTP/1.1 upstream that records every request (method, target, headers, body,
    raw head, connection number) and answers:
      /healthz          200, or health_status / status when set
      /status/NNN       that status
      /delay/MS         200 after MS milliseconds
      /html, /html-csp  text/html (the second with its own Content-Security-Policy)
      /hop              a 200 carrying hop-by-hop fields (Connection: X-Up-Hop, Keep-Alive, ...)
      /bad/KIND         the raw bytes of BAD_RESPONSES[KIND]
      /reset            no answer: the connection is closed
      files[PATH]       a static answer set by the test (content type, bytes)
      anything else     200 JSON: {"port", "method", "target", "headers", "body_len", "body_sha256"}
    `status` (when not None) answers every request with that status; `delay` (seconds) delays
    every answer. Bytes that do not parse as a request are recorded in `garbage`.
    """

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.requests = []
        self.garbage = []
        self.connections = 0
        self.closed_by_peer = set()  # connection numbers the gateway closed
        self.status = None
        self.health_status = None
        self.delay = 0.0
        self.files = {}  # path -> (content type, bytes): answered 200 as they are
        self._conns = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    # -- observation --

    def received(self, include_health=False):
        with self.lock:
            return [r for r in self.requests if include_health or not r["target"].startswith("/healthz")]

    def count(self, include_health=False):
        return len(self.received(include_health))

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.garbage.clear()

    # -- serving --

    def _accept_loop(self):
        while not self._stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
                self._conns[n] = conn
            threading.Thread(target=self._serve, args=(conn, n), daemon=True).start()

    def _serve(self, conn, n):
        buf = bytearray()
        conn.settimeout(60)

        def fill():
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                return False
            buf.extend(data)
            return True

        try:
            self._serve_requests(conn, n, buf, fill)
        except (ValueError, IndexError):  # bytes that are not HTTP as this upstream expects it
            with self.lock:
                self.garbage.append(bytes(buf[:4096]))
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self.lock:
                self._conns.pop(n, None)

    def _serve_requests(self, conn, n, buf, fill):
        while not self._stopping:
            while b"\r\n\r\n" not in buf:
                if not fill():
                    if buf:
                        with self.lock:
                            self.garbage.append(bytes(buf))
                    with self.lock:
                        self.closed_by_peer.add(n)
                    return
                if len(buf) > 1 << 20:
                    with self.lock:
                        self.garbage.append(bytes(buf[:4096]))
                    return
            end = buf.index(b"\r\n\r\n")
            raw_head = bytes(buf[:end])
            del buf[: end + 4]
            lines = raw_head.split(b"\r\n")
            parts = lines[0].split(b" ")
            if len(parts) != 3:
                with self.lock:
                    self.garbage.append(raw_head)
                return
            method, target = parts[0].decode("latin-1"), parts[1].decode("latin-1")
            headers = []
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
            te = header_values(headers, "Transfer-Encoding")
            cl = header_values(headers, "Content-Length")
            body = bytearray()
            if te:
                # chunked (the gateway must send nothing else)
                while True:
                    while b"\r\n" not in buf:
                        if not fill():
                            return
                    i = buf.index(b"\r\n")
                    size = int(bytes(buf[:i]).split(b";")[0], 16)
                    del buf[: i + 2]
                    if size == 0:
                        while b"\r\n" not in buf:
                            if not fill():
                                return
                        # trailers (none expected) end with an empty line
                        while not buf.startswith(b"\r\n"):
                            i = buf.index(b"\r\n")
                            del buf[: i + 2]
                            while b"\r\n" not in buf:
                                if not fill():
                                    return
                        del buf[:2]
                        break
                    while len(buf) < size + 2:
                        if not fill():
                            return
                    body += buf[:size]
                    del buf[: size + 2]
            elif cl:
                want = int(cl[0])
                while len(buf) < want:
                    if not fill():
                        return
                body = buf[:want]
                del buf[:want]
            record = {
                "method": method, "target": target, "headers": headers, "body": bytes(body),
                "raw_head": raw_head, "conn": n, "time": time.monotonic(),
            }
            with self.lock:
                self.requests.append(record)
            if not self._respond(conn, record):
                return

    def _respond(self, conn, rec):
        target = rec["target"]
        path = target.split("?", 1)[0]
        delay = self.delay
        status = self.status
        extra = []
        ctype = "application/json"
        raw = None
        body = None
        if path in self.files:
            ctype, body = self.files[path]
        elif path == "/reset":
            return False  # closes the connection without an answer
        elif path.startswith("/healthz"):
            st = self.health_status if self.health_status is not None else status
            status = st if st is not None else 200
            body = b'{"ok":true}'
        elif status is not None:
            body = json.dumps({"port": self.port, "forced": status}).encode()
        elif path.startswith("/status/"):
            status = int(path.split("/")[2])
        elif path.startswith("/delay/"):
            delay = max(delay, int(path.split("/")[2]) / 1000.0)
        elif path == "/html":
            ctype = "text/html; charset=utf-8"
            body = b"<!doctype html><title>x</title><p>hi</p>"
        elif path == "/html-csp":
            ctype = "text/html"
            extra.append(("Content-Security-Policy", "default-src 'none'"))
            body = b"<!doctype html><title>x</title>"
        elif path == "/hop":
            extra += [("Connection", "X-Up-Hop"), ("X-Up-Hop", "1"), ("Keep-Alive", "timeout=9"),
                      ("X-Up-Plain", "kept")]
        elif path.startswith("/bad/"):
            raw = BAD_RESPONSES[path[5:]]
        if delay:
            time.sleep(delay)
        if raw is not None:
            try:
                conn.sendall(raw)
            except OSError:
                return False
            return True
        if status is None:
            status = 200
        if body is None:
            body = json.dumps({
                "port": self.port, "method": rec["method"], "target": target,
                "headers": rec["headers"], "body_len": len(rec["body"]),
                "body_sha256": hashlib.sha256(rec["body"]).hexdigest(),
            }).encode()
        head = [f"HTTP/1.1 {status} X", f"Content-Type: {ctype}", f"Content-Length: {len(body)}",
                f"X-Upstream-Port: {self.port}"]
        head += [f"{k}: {v}" for k, v in extra]
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + (body if rec["method"] != "HEAD" else b"")
        try:
            conn.sendall(data)
        except OSError:
            return False
        return True

    def stop(self):
        self._stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns.values())
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def seen_headers(resp):
    """The request headers a PyUpstream saw, from its JSON answer: {lower name: [values]}."""
    doc = resp.json() if hasattr(resp, "json") else json.loads(resp)
    out = {}
    for name, value in doc["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------


class Redis:
    """Debian's redis-server on 127.0.0.1:PORT in a temporary directory, without persistence."""

    def __init__(self, port=None):
        if not os.access(REDIS_SERVER, os.X_OK):
            raise AssertionError(f"{REDIS_SERVER} is missing (scripts/deps installs redis-server)")
        self._dir = tempfile.TemporaryDirectory(prefix="agora-e2e-redis-")
        self.port = port or free_port()
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "redis is running already"
        log = open(os.path.join(self._dir.name, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self._dir.name, "--daemonize", "no", "--logfile", ""],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_until(lambda: self._ping_ok(), START_TIMEOUT, what=f"redis PONG on port {self.port}")

    def _ping_ok(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.proc.returncode}: {self.log()[-2000:]}")
        try:
            return self.command("PING") == b"+PONG"
        except OSError:
            return False

    def log(self):
        with open(os.path.join(self._dir.name, "redis.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def command(self, *args, timeout=5.0):
        """One command in RESP; returns the first reply line (enough for PING, FLUSHALL, DBSIZE)."""
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(out)
            data = b""
            while b"\r\n" not in data:
                more = s.recv(65536)
                if not more:
                    break
                data += more
        return data.split(b"\r\n", 1)[0]

    def flush(self):
        assert self.command("FLUSHALL") == b"+OK"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def pause(self):
        """SIGSTOP: connections are still accepted by the kernel but nothing answers."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self._dir.cleanup()


# ---------------------------------------------------------------------------------------------
# OIDC provider (node tests/e2e/oidc/provider.js) and the token minter (mint.js)
# ---------------------------------------------------------------------------------------------


def check_node_modules():
    if not os.path.isdir(os.path.join(OIDC_DIR, "node_modules", "oidc-provider")):
        raise AssertionError(f"{OIDC_DIR}/node_modules is missing: run scripts/deps (npm ci --prefix tests/e2e/oidc)")


# The identities provider.js registers (client id = sub; secret = ID-secret).
IDENTITIES = {
    "alice": {"roles": ["admin"], "tenant": "acme"},
    "bob": {"roles": [], "tenant": "acme"},
    "carol": {"roles": ["viewer", "editor"], "tenant": "globex"},
}


class OidcProvider:
    """A real oidc-provider on 127.0.0.1; tokens via client_credentials."""

    def __init__(self, alg="ES256", kid=None, port=0):
        check_node_modules()
        self.alg = alg
        self._dir = tempfile.TemporaryDirectory(prefix="agora-e2e-oidc-")
        self.proc = None
        self.port = port
        self.starts = 0
        self.start(kid)

    def start(self, kid=None):
        """Starts provider.js (on self.port; 0 the first time) and waits for its discovery document."""
        args = [NODE, os.path.join(OIDC_DIR, "provider.js"), "--port", str(self.port), "--alg", self.alg]
        if kid:
            args += ["--kid", kid]
        self.starts += 1
        self.proc = Proc(args, f"oidc{self.starts}", tmp=self._dir.name)
        first = self.proc.first_json_line(timeout=60)
        assert first.get("msg") == "listening", first
        self.port, self.issuer, self.kid = first["port"], first["issuer"], first["kid"]
        self.discovery = self._wait_discovery()
        self.jwks_uri = self.discovery["jwks_uri"]

    def _wait_discovery(self):
        def get():
            try:
                status, body = self.http("GET", "/.well-known/openid-configuration")
            except OSError:
                return None
            return json.loads(body) if status == 200 else None

        doc = wait_until(get, 30, what="the OIDC discovery document")
        assert doc["issuer"] == self.issuer, doc
        return doc

    def http(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=IO_TIMEOUT)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def token(self, client):
        """A JWT access token for a registered client (its id is the token's sub)."""
        auth = base64.b64encode(f"{client}:{client}-secret".encode()).decode()
        status, body = self.http(
            "POST", "/token", body="grant_type=client_credentials",
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 200, f"token endpoint answered {status}: {body!r}"
        doc = json.loads(body)
        assert doc.get("token_type") == "Bearer", doc
        return doc["access_token"]

    def jwks(self):
        path = "/" + self.jwks_uri.split("/", 3)[3]
        status, body = self.http("GET", path)
        assert status == 200, body
        return json.loads(body)

    def stop(self):
        if self.proc is not None and self.proc.alive():
            self.proc.terminate()
            try:
                self.proc.wait(EXIT_TIMEOUT)
            except AssertionError:
                pass

    def restart(self, kid):
        """Stops and starts again on the same port with a new signing key (key rotation)."""
        self.stop()
        self.start(kid)

    def cleanup(self):
        if self.proc is not None:
            self.proc.kill()
        self._dir.cleanup()


MINT_ISSUER = "https://mint.test"


class Minter:
    """Keys in a JWKS file (kids es-a, rs-a) and tokens signed in any way a test asks for."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="agora-e2e-mint-")
        self.dir = self._dir.name
        self._node("keygen", self.dir)
        self.jwks_path = os.path.join(self.dir, "jwks.json")

    def _node(self, *args, stdin=None):
        done = subprocess.run(
            [NODE, os.path.join(OIDC_DIR, "mint.js"), *args], input=stdin, capture_output=True, timeout=60
        )
        if done.returncode != 0:
            raise AssertionError(f"mint.js {args[0]} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout

    def key(self, name):
        return os.path.join(self.dir, f"{name}.pem")

    def pub(self, name):
        return os.path.join(self.dir, f"{name}.pub.pem")

    @staticmethod
    def claims(sub="mallory", roles=("admin",), tenant="acme", iss=MINT_ISSUER, aud="agora", ttl=600, **more):
        now = int(time.time())
        c = {"iss": iss, "sub": sub, "aud": aud, "iat": now, "exp": now + ttl, "roles": list(roles), "tenant": tenant}
        c.update(more)
        return {k: v for k, v in c.items() if v is not None}

    def sign_many(self, specs):
        """specs: [{"header", "payload", and "key" (a name) | "secret_pub" (a name) | nothing}]."""
        out = []
        for s in specs:
            o = {"header": s["header"], "payload": s["payload"]}
            if s.get("key"):
                o["key"] = self.key(s["key"])
            if s.get("secret_pub"):
                o["secret_file"] = self.pub(s["secret_pub"])
            out.append(o)
        return json.loads(self._node("sign", stdin=json.dumps(out).encode()))

    def token(self, payload=None, alg="ES256", kid="es-a", key=None, header=None, **claims):
        payload = payload if payload is not None else self.claims(**claims)
        hdr = {"alg": alg, "typ": "JWT", "kid": kid} if header is None else header
        if kid is None:
            hdr.pop("kid", None)
        return self.sign_many([{"header": hdr, "payload": payload, "key": key or kid}])[0]

    def cleanup(self):
        self._dir.cleanup()


def finish_gateways(gateways):
    """SIGTERM to each gateway, then the problems of how each ended (and cleanup)."""
    report = []
    for gw in gateways:
        gw.terminate()
    for gw in gateways:
        try:
            report += [f"agora-gateway (port {gw.port}): {p}" for p in gw.problems()]
        finally:
            gw.cleanup()
    return report


class Stack:
    """Gateways and upstreams of a module-scoped fixture, all stopped and checked at the end."""

    def __init__(self):
        self.gateways, self.upstreams, self.redis = [], [], []
        self.hellos = ServerSet()

    def gateway(self, config, **kw):
        gw = Gateway(config, **kw)
        self.gateways.append(gw)
        return gw

    def py(self):
        up = PyUpstream()
        self.upstreams.append(up)
        return up

    def hello(self, *args):
        return self.hellos.start(*args)

    def finish(self):
        report = finish_gateways(self.gateways)
        for up in self.upstreams:
            up.stop()
        report += self.hellos.finish()
        return report


def send_body_request(port, head, body, method="POST", timeout=IO_TIMEOUT):
    """Sends a request head, then its body unless the server refuses first (an early 4xx/5xx);
    returns the response. A server that answers early with a success (a streaming echo) gets the
    body and its answer is read on; one that closes while the body is sent still has its
    response read."""
    with HttpConn(port, timeout=timeout) as conn:
        conn.send(head)
        early = None
        if conn.readable(0.3):
            early = conn.read_head()
            if early.status >= 400:
                return conn.read_body(early, method)
        sender = threading.Thread(target=lambda: _send_quietly(conn, body), daemon=True)
        sender.start()
        try:
            if early is not None:
                return conn.read_body(early, method)
            return conn.read_response(method)
        finally:
            sender.join(timeout)


def _send_quietly(conn, data):
    try:
        conn.send(data)
    except OSError:
        pass
