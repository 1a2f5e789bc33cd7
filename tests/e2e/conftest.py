"""Fixtures for the agora-hello end-to-end tests: real processes, raw sockets, RSS sampling.

Every server is started on 127.0.0.1 with port 0; the port comes from the first JSON log line.
At teardown each server gets SIGTERM and must exit 0 with nothing alarming on stderr.
Reads are bounded by generous timeouts; no test asserts how long anything took.
"""

import faulthandler
import json
import os
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

AGORA_BIN = os.environ.get("AGORA_BIN", "/work/main/build/bin")
HELLO = os.path.join(AGORA_BIN, "agora-hello")

IO_TIMEOUT = 20.0  # one socket read or write may block this long before the test fails
START_TIMEOUT = 15.0  # the server must print its port and accept within this
CLOSE_TIMEOUT = 10.0  # a refused connection must be closed by the server within this
EXIT_TIMEOUT = 20.0  # after SIGTERM (the default drain timeout is 10 s)

HELLO_BODY = b'{"hello":"world"}'

# Text on stderr that means a sanitizer, an abort or the server itself reported trouble.
ALARMING_STDERR = ("ERROR", "Sanitizer", "runtime error:", "Assertion", "Segmentation")


# ---------------------------------------------------------------------------------------------
# The process
# ---------------------------------------------------------------------------------------------


class Server:
    """One agora-hello process. Logs go to temporary files so that a full pipe never blocks it."""

    def __init__(self, extra_args=()):
        self.args = [HELLO, "--listen", "127.0.0.1:0", *extra_args]
        self._dir = tempfile.TemporaryDirectory(prefix="agora-e2e-")
        self.stdout_path = os.path.join(self._dir.name, "stdout")
        self.stderr_path = os.path.join(self._dir.name, "stderr")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.port = None
        self.workers = None
        try:
            self.port = self._read_port()
            self._wait_accepting()
        except BaseException:
            self.cleanup()
            raise

    # -- start --

    def _read_port(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.stdout_path, "rb") as f:
                first = f.readline()
            if first.endswith(b"\n"):
                record = json.loads(first)
                assert record.get("msg") == "listening", f"first log line is not 'listening': {first!r}"
                port = record.get("port")
                assert isinstance(port, int) and 0 < port < 65536, f"bad port in {first!r}"
                self.workers = record.get("workers")
                assert isinstance(self.workers, int) and self.workers > 0, f"bad workers in {first!r}"
                return port
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"agora-hello exited with {self.proc.returncode} before listening; "
                    f"stdout={self.stdout()!r} stderr={self.stderr()!r}"
                )
            time.sleep(0.01)
        raise AssertionError(f"agora-hello printed no 'listening' line; stdout={self.stdout()!r}")

    def _wait_accepting(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT).close()
                return
            except OSError as e:
                last = e
                time.sleep(0.01)
        raise AssertionError(f"agora-hello on port {self.port} does not accept: {last}")

    # -- observation --

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def rss_bytes(self):
        """Resident set size from /proc/PID/status (psutil is not installed on Debian's python)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS in /proc/{self.pid}/status")

    def socket_fd_count(self):
        """Sockets the process holds: its listeners plus accepted connections."""
        n = 0
        fd_dir = f"/proc/{self.pid}/fd"
        for name in os.listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, name)).startswith("socket:"):
                    n += 1
            except OSError:
                pass  # closed while we looked
        return n

    # -- stop --

    def terminate(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=EXIT_TIMEOUT):
        """Waits for the exit; returns the exit code. Kills a server that does not exit."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"agora-hello did not exit within {timeout} s of SIGTERM")

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def problems(self, deadline=None):
        """Stops the server if needed and lists what is wrong with how it ended."""
        found = []
        try:
            self.terminate()
            timeout = EXIT_TIMEOUT if deadline is None else max(0.1, deadline - time.monotonic())
            code = self.wait(timeout)
            if code != 0:
                found.append(f"exit code {code} (expected 0)")
        except AssertionError as e:
            found.append(str(e))
        err = self.stderr()
        if any(word in err for word in ALARMING_STDERR):
            found.append(f"alarming stderr: {err[-4000:]!r}")
        if '"level":"error"' in self.stdout():
            found.append(f"error log lines: {self.stdout()[-4000:]!r}")
        return found

    def cleanup(self):
        self.kill()
        self._dir.cleanup()


class ServerSet:
    """Servers started by one fixture; all are stopped and checked at its teardown."""

    def __init__(self):
        self.servers = []

    def start(self, *extra_args):
        srv = Server(extra_args)
        self.servers.append(srv)
        return srv

    def finish_each(self):
        """SIGTERM to every server at once, one shared deadline for the exits; problems each."""
        for srv in self.servers:
            srv.terminate()
        deadline = time.monotonic() + EXIT_TIMEOUT
        each = []
        for srv in self.servers:
            try:
                each.append(srv.problems(deadline))
            finally:
                srv.cleanup()
        self.servers.clear()
        return each

    def finish(self):
        servers = list(self.servers)
        each = self.finish_each()
        return [f"agora-hello {' '.join(srv.args[1:])}: {p}" for srv, found in zip(servers, each) for p in found]


def _finish(servers):
    report = servers.finish()
    if report:
        pytest.fail("server did not end cleanly:\n" + "\n".join(report), pytrace=False)


@pytest.fixture(scope="session")
def postgres_cluster():
    """One throw-away PostgreSQL cluster for the whole session, shared by the suites that run
    on PostgreSQL (each makes its own databases); started only when a test needs it."""
    from support.postgres import PostgresCluster

    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def hang_watchdog():
    """Prints every thread's stack if one test runs for minutes (pytest-timeout is not installed)."""
    faulthandler.dump_traceback_later(180, exit=False)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def start_server():
    """Factory: start_server("--header-timeout-ms", "500") -> a running Server."""
    servers = ServerSet()
    yield servers.start
    _finish(servers)


@pytest.fixture
def server(start_server):
    """agora-hello with its default options."""
    return start_server()


# ---------------------------------------------------------------------------------------------
# The raw HTTP/1.1 client
# ---------------------------------------------------------------------------------------------


class ClosedError(AssertionError):
    """The server closed the connection before a whole response arrived."""


class Response:
    def __init__(self, version, status, reason, headers, raw_head):
        self.status_line = raw_head.split(b"\r\n", 1)[0]
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] as received
        self.raw_head = raw_head
        self.body = b""
        self.body_len = 0
        self.trailers = []
        self.complete = True  # False when the connection ended inside the body

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name):
        """The value of a field that must appear at most once (None when absent)."""
        values = self.all(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times: {self.headers}"
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} body={self.body[:200]!r}>"


class HttpConn:
    """A raw TCP connection with a small, strict HTTP/1.1 response reader."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, size=1 << 20):
        """Reads more into buf; False at EOF (a reset counts as the server closing)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:
            self.reset = True
            data = b""
        except socket.timeout:
            raise AssertionError(
                f"no bytes from the server within {self.sock.gettimeout()} s; have {bytes(self.buf[:300])!r}"
            ) from None
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readable(self, timeout=0.0):
        """True when bytes or EOF are waiting (without consuming them)."""
        if self.buf or self.eof:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def _line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                assert line.endswith(b"\r\n"), f"line without CRLF from the server: {line!r}"
                return line[:-2]
            if len(self.buf) > 1 << 20:
                raise AssertionError("a response line over 1 MiB")
            if not self._fill():
                raise ClosedError(f"closed inside a line; have {bytes(self.buf)!r}")

    def _exact(self, n, sink):
        """Passes n body bytes to sink (as bytes); returns how many arrived before EOF."""
        got = 0
        while got < n:
            if not self.buf:
                # Large bodies skip the buffer: one copy per recv, whatever the size.
                try:
                    data = self.sock.recv(min(n - got, 1 << 20))
                except ConnectionResetError:
                    self.reset, data = True, b""
                except socket.timeout:
                    raise AssertionError(f"body stalled after {got} of {n} bytes") from None
                if not data:
                    self.eof = True
                    return got
                sink(data)
                got += len(data)
                continue
            take = min(n - got, len(self.buf))
            sink(bytes(self.buf[:take]))
            del self.buf[:take]
            got += take
        return got

    def read_head(self):
        """Reads one response head (1xx included)."""
        first = self._line()
        raw = [first]
        parts = first.split(b" ", 2)
        assert len(parts) >= 2 and parts[0] in (b"HTTP/1.0", b"HTTP/1.1"), f"bad status line {first!r}"
        assert len(parts[1]) == 3 and parts[1].isdigit(), f"bad status code in {first!r}"
        headers = []
        while True:
            line = self._line()
            raw.append(line)
            if not line:
                break
            name, sep, value = line.partition(b":")
            assert sep and name and name == name.strip(), f"bad field line {line!r}"
            headers.append((name.decode(), value.strip(b" \t").decode()))
        reason = parts[2].decode() if len(parts) > 2 else ""
        return Response(parts[0].decode(), int(parts[1]), reason, headers, b"\r\n".join(raw))

    def read_response(self, method="GET", sink=None, interim=False, allow_incomplete=False):
        """
        Reads the next response. 1xx heads are skipped unless interim is True (then a 1xx is
        returned as it is). The body goes to sink(bytes) when given, else into .body.
        A body cut short by EOF fails unless allow_incomplete (then .complete is False).
        """
        while True:
            resp = self.read_head()
            if 100 <= resp.status < 200:
                if interim:
                    return resp
                continue
            break
        return self.read_body(resp, method, sink, allow_incomplete)

    def read_body(self, resp, method="GET", sink=None, allow_incomplete=False):
        """Reads the body that belongs to resp (a head from read_head); returns resp."""
        pieces = []
        if sink is None:
            sink = pieces.append
        counted = [0]

        def count(data):
            counted[0] += len(data)
            sink(data)

        te = resp.header("Transfer-Encoding")
        cl = resp.header("Content-Length")
        if method == "HEAD" or resp.status in (204, 304):
            pass
        elif te is not None:
            assert te.lower() == "chunked", f"unexpected Transfer-Encoding {te!r}"
            assert cl is None, f"both Content-Length and Transfer-Encoding: {resp.headers}"
            resp.complete = self._read_chunked(resp, count)
        elif cl is not None:
            assert cl.isdigit(), f"bad Content-Length {cl!r}"
            resp.complete = self._exact(int(cl), count) == int(cl)
        else:
            while self.buf or self._fill():
                count(bytes(self.buf))
                self.buf.clear()
        resp.body_len = counted[0]
        resp.body = b"".join(pieces)
        if not resp.complete and not allow_incomplete:
            raise ClosedError(f"connection ended inside the body: {resp!r}")
        return resp

    def _read_chunked(self, resp, sink):
        while True:
            try:
                line = self._line()
            except ClosedError:
                return False
            size_text = line.split(b";", 1)[0].strip()
            assert size_text and all(c in b"0123456789abcdefABCDEF" for c in size_text), f"bad chunk line {line!r}"
            size = int(size_text, 16)
            if size == 0:
                break
            if self._exact(size, sink) != size:
                return False
            try:
                crlf = self._line()
            except ClosedError:
                return False
            assert crlf == b"", f"chunk data longer than its size: {crlf[:100]!r}"
        while True:
            try:
                line = self._line()
            except ClosedError:
                return False
            if not line:
                return True
            resp.trailers.append(line)

    def read_until_eof(self, timeout=IO_TIMEOUT):
        """Everything the server sends until it closes; fails if it does not close in time."""
        deadline = time.monotonic() + timeout
        old = self.sock.gettimeout()
        try:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the server did not close the connection within {timeout} s")
                self.sock.settimeout(left)
                try:
                    self._fill()
                except AssertionError:
                    raise AssertionError(
                        f"the server did not close the connection within {timeout} s"
                        f" (bytes after the response: {bytes(self.buf[:200])!r})"
                    ) from None
        finally:
            self.sock.settimeout(old)
        rest = bytes(self.buf)
        self.buf.clear()
        return rest

    def assert_closed(self, timeout=IO_TIMEOUT):
        rest = self.read_until_eof(timeout)
        assert rest == b"", f"unexpected bytes before the close: {rest[:300]!r}"


def request(method, target, headers=(), body=b"", version="HTTP/1.1", host="test"):
    """Builds request bytes; Content-Length is added for a body unless a framing field is given."""
    lines = [f"{method} {target} {version}"]
    names = {h.split(":", 1)[0].strip().lower() for h in headers}
    if host is not None:
        lines.append(f"Host: {host}")
    lines.extend(headers)
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(pieces, ext=b"", trailers=()):
    """Encodes pieces with the chunked coding (ext is appended to every size line)."""
    out = bytearray()
    for p in pieces:
        out += b"%x%s\r\n%s\r\n" % (len(p), ext, p)
    out += b"0\r\n"
    for t in trailers:
        out += t + b"\r\n"
    out += b"\r\n"
    return bytes(out)


def fetch(port, method, target, headers=(), body=b"", **kw):
    """One request on a fresh connection; returns the response."""
    with HttpConn(port) as conn:
        conn.send(request(method, target, headers, body, **kw))
        return conn.read_response(method)


def assert_problem(resp, status):
    """An RFC 9457 problem response with this status."""
    assert resp.status == status, f"status {resp.status} != {status}: {resp!r}"
    ctype = resp.header("Content-Type")
    assert ctype == "application/problem+json", f"Content-Type {ctype!r}: {resp!r}"
    doc = resp.json()
    assert doc.get("type") == "about:blank", f"type {doc.get('type')!r} in {doc}"
    assert isinstance(doc.get("title"), str) and doc["title"], f"no title in {doc}"
    assert doc.get("status") == status, f"status field {doc.get('status')!r} != {status} in {doc}"
    return doc


class RssSampler(threading.Thread):
    """Samples a server's RSS every few milliseconds until stopped."""

    def __init__(self, srv, interval=0.02):
        super().__init__(daemon=True)
        self.srv = srv
        self.interval = interval
        self.samples = []
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            try:
                self.samples.append(self.srv.rss_bytes())
            except (OSError, AssertionError):
                return
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join(IO_TIMEOUT)
        return max(self.samples) if self.samples else 0
