#!/usr/bin/python3
"""agora-gateway against nginx and HAProxy as reverse proxies on 127.0.0.1.

Run by bench/run (part "gateway") after its own parts, or alone: bench/gateway.py --help.

Three parts:

1. proxies: the same upstream (one agora-hello, `--workers W`) behind agora-gateway, nginx
   (`proxy_pass` to an upstream block with `keepalive 64`, `proxy_http_version 1.1`,
   `proxy_set_header Connection ""`, access_log off, `worker_processes W`) and HAProxy
   (mode http, `http-reuse always`, `nbthread W`, no logging), all three side by side. After a
   correctness check (GET / through each proxy: 200 and agora-hello's body), a warm-up of each,
   wrk runs against them interleaved (A B C A B C ...) for --rounds rounds of --duration
   seconds. Summary: medians over the rounds; ratios agora/nginx and agora/haproxy of req/s,
   p50 and p99, against the targets (req/s >= 1.2x nginx and >= 1.1x HAProxy, p99 no worse).
   Done for each worker count in --workers (default 1, then 2).

2. auth: the gateway with JWT auth (ES256 bearer token checked against a jwks_file issuer) and
   a rate limit on the route (memory store, limits far above what wrk can send) against the
   same gateway without them, side by side, interleaved, the same wrk command (with the
   Authorization header) for both. Before it, the auth gateway must refuse a request without
   a token and one with a bad signature, and accept the good token. Target: req/s ratio
   auth/plain >= 0.9. The gateway keeps verified tokens in a per-worker cache, so with one
   token this measures the cached path; a third contender, auth-cold (the same configuration
   with `cache_entries: 1`, and wrk alternating two tokens through a Lua script), verifies an
   ES256 signature on (nearly) every request, for information (no target; --no-auth-cold
   leaves it out).

3. callgrind: user-space instructions per proxied request. Each proxy (1 worker) runs under
   `valgrind --tool=callgrind`; bench/gateway_loop.py sends --cg-warmup requests over one
   keep-alive connection, then `callgrind_control --zero`, exactly --cg-requests (20,000)
   requests on a new keep-alive connection, `callgrind_control --dump`; the dump's total Ir
   divided by the request count. nginx runs with `daemon off; master_process off;` so that
   valgrind sees the process that serves. Target for agora: <= 10,000 per request. Contenders
   agora, agora-auth (JWT + rate limit, one token: cached), nginx, haproxy; agora-auth-cold
   (every request verifies a signature) on request, with fewer requests (--cg-cold-requests).
   For the agora contenders the functions with the most instructions of their own are listed
   (callgrind_annotate), as a lead for optimisation.

CPU placement (the project's machine has 2 CPUs and the client, the upstream and the proxy all
run on it):
  * 1 worker: the proxy and the agora-hello upstream on CPU 0 (taskset -c 0), wrk (-t1)
    alone on CPU 1. That is bench/run's split (the server side on CPU 0, the client on CPU 1)
    with the upstream counted as part of the server side. The other way round (proxy alone on
    CPU 0, upstream beside wrk on CPU 1) was tried and rejected: wrk and agora-hello together
    fill CPU 1 at about the rate nginx proxies on CPU 0 (measured: nginx 95% of CPU 0, wrk 47%
    + hello 43% of CPU 1), so any proxy faster than nginx would hit that ceiling and the
    ratio would say little. With the upstream on CPU 0, wrk keeps headroom on CPU 1 and CPU 0
    is the bottleneck for every proxy. The price: agora-hello's share of CPU 0 is the same
    for every proxy, so the req/s ratios are diluted towards 1 (a proxy twice as cheap does
    not serve twice as much). So each run also reports the proxy's own CPU time per request
    (proxy us/req, from /proc/PID/stat), whose ratio is not diluted, and the CPU use of
    proxy, upstream and wrk, to check what limited the run. --upstream-cpus 1 gives the
    other placement; --proxy-cpus and --client-cpus move the rest.
  * 2 or more workers: there is no free CPU to give W proxy workers their own CPUs, so no
    process is pinned: proxy, upstream (--workers W) and wrk (-tW) share both CPUs under the
    kernel's scheduler. The figures then say how much the whole machine serves with each
    proxy: a cheaper proxy leaves more CPU to wrk and the upstream. It is a fair comparison of
    the proxies but not a measure of the proxy alone.
  * callgrind: the proxy under valgrind on CPU 0, client and upstream on CPU 1 (instruction
    counts do not depend on placement; this only keeps the run short).

Output: the machine facts and settings, then per part the exact commands and generated
configurations, the correctness checks, one line per wrk run, a per-run table (req/s, p50, p99,
errors, CPU use of proxy, upstream and wrk, proxy CPU microseconds per request), a summary of
medians with ratio rows and the targets (meets / MISSES), and at the end a "Targets" block with
every verdict. --json FILE writes all of it as JSON (bench/run --json includes it).

Standard library only (plus the openssl CLI for the ES256 key and token). Everything targets
127.0.0.1, every run is bounded in time, every process started here is stopped on exit, on
error, on SIGTERM and on Ctrl-C, and the scratch directory is removed.
"""
import argparse
import base64
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(HERE)
LOOP_SCRIPT = os.path.join(HERE, "gateway_loop.py")
PYTHON = "/usr/bin/python3"
EXPECTED_BODY = b'{"hello":"world"}'
CLK_TCK = os.sysconf("SC_CLK_TCK")
ISSUER = "https://bench.local"
AUDIENCE = "agora"
KID = "bench-es256"

TARGETS = {"rps_vs_nginx": 1.2, "rps_vs_haproxy": 1.1, "p99_max": 1.0, "auth_rps": 0.9,
           "ir_per_request": 10000}

children = []  # every Popen started here, stopped by cleanup()
NICE = []  # ["nice", "-n", N] with --nice
tmpdir = None
KEEP = []  # [True] with --keep: the scratch directory stays


def say(*a):
    print(*a, flush=True)


def die(msg):
    say(f"bench/gateway: error: {msg}")
    sys.exit(1)


def q(cmd):
    return " ".join(shlex.quote(str(c)) for c in cmd)


def pin(cpus):
    """taskset prefix for a CPU list, none when cpus is None (unpinned)."""
    return NICE + (["taskset", "-c", cpus] if cpus else [])


# ---------------------------------------------------------------- processes and cleanup

def spawn(cmd, **kw):
    """Starts cmd in its own process group (so a stop reaches nginx's workers too)."""
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    children.append(p)
    return p


def stop(p, grace=5.0):
    if p.returncode is not None or p.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def cleanup():
    """Stops every process started here: SIGTERM to all at once, up to 3 s, then SIGKILL to
    each process group (so that bench/run, which gives this script a few seconds, never
    leaves a server behind)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    live = [p for p in children if p.poll() is None]
    for p in reversed(live):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 3.0
    for p in live:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in children:  # nginx workers are in their master's group: none may outlive it
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.returncode is None:
            try:
                p.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                pass
    if tmpdir and os.path.isdir(tmpdir) and not KEEP:
        shutil.rmtree(tmpdir, ignore_errors=True)


def on_signal(signo, _frame):
    say(f"\nbench/gateway: stopped by signal {signo}, stopping the servers")
    raise SystemExit(128 + signo)


# ---------------------------------------------------------------- facts

def run_text(cmd, timeout=10):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({e})"


def read_file(path, default="?"):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts(args):
    wrk_v = run_text(["wrk", "--version"]).splitlines()
    git = run_text(["git", "-C", REPO, "describe", "--always", "--dirty"])
    haproxy_v = run_text(["haproxy", "-v"]).splitlines()
    facts = [
        ("date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")),
        ("nproc", f"{run_text(['nproc'])} (nproc --all: {run_text(['nproc', '--all'])})"),
        ("CPU model", cpu_model()),
        ("kernel", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("OS", read_file("/etc/debian_version", "?").join(("Debian ", ""))),
        ("nginx", run_text(["nginx", "-v"]).replace("nginx version: ", "")),
        ("haproxy", haproxy_v[0].replace("HAProxy version ", "").split(" - ")[0]
         if haproxy_v else "?"),
        ("wrk", wrk_v[0].split(" [")[0] if wrk_v else "?"),
        ("valgrind", run_text(["valgrind", "--version"])),
        ("python", platform.python_version()),
        ("agora-gateway", f"{args.gateway_bin} (git {git})"),
        ("agora-hello", args.hello_bin),
        ("fd limit", "soft {} / hard {}".format(*resource.getrlimit(resource.RLIMIT_NOFILE))),
        ("loadavg at start", read_file("/proc/loadavg")),
    ]
    return facts


# ---------------------------------------------------------------- /proc helpers

def proc_children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(d))
    return sorted(kids)


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (all threads)
        except OSError:
            pass
    return total / CLK_TCK


def vmrss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def machine_busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def busy_processes(seconds=1.0, threshold=5.0):
    """(machine busy %, [(pid, cpu %, command)]) over `seconds`, for processes over threshold %."""
    def snap():
        out = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
                fields = st.rsplit(")", 1)[1].split()
                out[int(d)] = (int(fields[11]) + int(fields[12]), st[st.find("(") + 1:st.rfind(")")])
            except (OSError, ValueError, IndexError):
                continue
        return out

    b0, s0, t0 = machine_busy_seconds(), snap(), time.monotonic()
    time.sleep(seconds)
    b1, s1, t1 = machine_busy_seconds(), snap(), time.monotonic()
    wall = t1 - t0
    busy = []
    for pid, (ticks, comm) in s1.items():
        if pid in s0 and pid != os.getpid():
            pct = 100 * (ticks - s0[pid][0]) / CLK_TCK / wall
            if pct >= threshold:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        comm = f.read().replace(b"\0", b" ").decode("utf-8", "replace")[:100]
                except OSError:
                    pass
                busy.append((pid, round(pct, 1), comm.strip()))
    return 100 * (b1 - b0) / wall, sorted(busy, key=lambda x: -x[1])


# ---------------------------------------------------------------- servers

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def first_json_line(path, proc, key, timeout):
    """The first line of path that is JSON with `key` (a server's "listening" line), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                for line in f:
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(obj, dict) and key in obj:
                        return obj
        except OSError:
            pass
        if proc.poll() is not None:
            return None
        time.sleep(0.02)
    return None


class Server:
    name = ""
    label = ""
    port = 0
    proc = None
    cmd = None
    conf = None
    log = None
    wrk_args = ()  # extra wrk options for this server (-H ..., -s script)
    check_headers = {}  # headers of the correctness check
    loop_args = ()  # extra gateway_loop.py options (callgrind part)

    def pids(self):
        return [self.proc.pid]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc:
            stop(self.proc, grace=10.0)

    def problems(self):
        """Log lines that report problems (warnings, errors), for the report."""
        return []


class Hello(Server):
    """The upstream: agora-hello."""
    name = "hello"

    def __init__(self, binary, workers, cpus, workdir, tag):
        self.cmd = pin(cpus) + [binary, "--listen", "127.0.0.1:0", "--workers", str(workers)]
        self.log = os.path.join(workdir, f"hello-{tag}.log")

    def start(self):
        with open(self.log, "wb") as out:
            self.proc = spawn(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
        line = first_json_line(self.log, self.proc, "port", 10)
        if not line or not wait_port(int(line["port"]), self.proc):
            die(f"agora-hello did not start: {q(self.cmd)}\n{read_file(self.log, '')}")
        self.port = int(line["port"])


GATEWAY_CONF = """\
# Generated by bench/gateway.py: {what}
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
workers: {workers}
access_log: off
upstreams:
  hello: {{ targets: [ {{ address: "127.0.0.1:{upstream}", weight: 1 }} ], keepalive: 64 }}
{auth}routes:
  - {{ name: hello, match: {{ path: /, prefix: true }}, upstream: hello{route_extra} }}
"""

GATEWAY_AUTH = """\
auth:
  issuers:
    - {{ issuer: "{issuer}", jwks_file: "{jwks}", audiences: [{audience}], algorithms: [ES256] }}
"""


class Gateway(Server):
    name = "agora"

    def __init__(self, binary, workers, cpus, workdir, tag, upstream_port, jwks=None,
                 prefix=None, name=None, cold=False):
        if name:
            self.name = name
        self.label = "agora-gateway" + (" (JWT auth + rate limit)" if jwks else "")
        self.conf_path = os.path.join(workdir, f"gateway-{tag}.yaml")
        auth, extra = "", ""
        if jwks:
            auth = GATEWAY_AUTH.format(issuer=ISSUER, jwks=jwks, audience=AUDIENCE)
            if cold:  # a one-entry token cache: two tokens taking turns always miss it
                auth += "  cache_entries: 1\n"
                self.label += ", token cache of 1 entry"
            extra = (", auth: required, rate_limit: { key: ip, rate: 1000000, per: 1s, "
                     "burst: 1000000 }")
        self.conf = GATEWAY_CONF.format(
            what="agora-gateway" + (" with JWT auth and a rate limit" if jwks else ""),
            workers=workers, upstream=upstream_port, auth=auth, route_extra=extra)
        with open(self.conf_path, "w") as f:
            f.write(self.conf)
        self.binary = binary
        self.cmd = (prefix if prefix is not None else pin(cpus)) + [binary, "-c", self.conf_path]
        self.log = os.path.join(workdir, f"gateway-{tag}.log")
        self.admin_port = None
        self.listening = None

    def start(self, timeout=10.0):
        r = subprocess.run([self.binary, "-c", self.conf_path, "--check"], capture_output=True,
                           timeout=30)
        if r.returncode != 0:
            die(f"agora-gateway rejects its configuration ({q([self.binary, '-c', self.conf_path, '--check'])} "
                f"exited {r.returncode}):\n{r.stderr.decode('utf-8', 'replace')}"
                f"{r.stdout.decode('utf-8', 'replace')}\nthe configuration:\n{self.conf}")
        with open(self.log, "wb") as out:
            self.proc = spawn(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
        line = first_json_line(self.log, self.proc, "port", timeout)
        if not line or not wait_port(int(line["port"]), self.proc, timeout):
            die(f"agora-gateway did not start: {q(self.cmd)}\nits configuration:\n{self.conf}"
                f"its output:\n{read_file(self.log, '')}")
        self.listening = line
        self.port = int(line["port"])
        self.admin_port = line.get("admin_port")
        # Ready once the admin port's /readyz says so (the first snapshot is in place).
        deadline = time.monotonic() + timeout
        while self.admin_port and time.monotonic() < deadline:
            try:
                if http_get(self.admin_port, path="/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            if self.admin_port:
                say(f"  NOTE: {self.name}: the admin port's /readyz did not answer 200 within "
                    f"{timeout:.0f} s")

    METRICS = ("agora_gateway_requests_total", "agora_gateway_rate_limit_decisions_total",
               "agora_gateway_jwt_failures_total", "agora_gateway_retries_total",
               "agora_gateway_upstream_healthy", "agora_gateway_breaker_state")

    def metrics(self):
        """The counters of interest from the admin port's /metrics (lines), or None."""
        if not self.admin_port or not self.alive():
            return None
        try:
            status, _, body = http_get(self.admin_port, path="/metrics")
        except OSError:
            return None
        if status != 200:
            return None
        return [l for l in body.decode("utf-8", "replace").splitlines()
                if l.startswith(self.METRICS)]

    def problems(self):
        out = []
        try:
            with open(self.log, "r", errors="replace") as f:
                for line in f:
                    try:
                        lvl = json.loads(line).get("level", "")
                    except (ValueError, AttributeError):
                        if line.strip() and not line.startswith("=="):  # valgrind's lines
                            out.append(line.rstrip())
                        continue
                    if lvl not in ("info", "debug"):
                        out.append(line.rstrip())
        except OSError:
            pass
        return out


NGINX_CONF = """\
# Generated by bench/gateway.py: nginx as a reverse proxy in front of agora-hello.
daemon off;
master_process {master};
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    upstream hello {{
        server 127.0.0.1:{upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}

    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            proxy_pass http://hello;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


class Nginx(Server):
    name = "nginx"
    label = "nginx"

    def __init__(self, workers, cpus, workdir, tag, upstream_port, nofile, prefix=None,
                 master=True):
        self.dir = os.path.join(workdir, f"nginx-{tag}")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.workers = workers if master else 0
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        self.conf_args = dict(workers=workers, nofile=nofile, dir=self.dir, upstream=upstream_port,
                              master="on" if master else "off",
                              user="user nobody nogroup;" if os.geteuid() == 0 and master else "")
        self.cmd = (prefix if prefix is not None else pin(cpus)) + [
            "nginx", "-p", self.dir + "/", "-e", os.path.join(self.dir, "error.log"),
            "-c", self.conf_path]
        self.log = os.path.join(self.dir, "stdout.log")

    def start(self, timeout=10.0):
        for _attempt in range(3):
            self.port = free_port()
            self.conf = NGINX_CONF.format(port=self.port, **self.conf_args)
            with open(self.conf_path, "w") as f:
                f.write(self.conf)
            with open(self.log, "wb") as out:
                self.proc = spawn(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
            if wait_port(self.port, self.proc, timeout):
                deadline = time.monotonic() + 5
                while len(proc_children(self.proc.pid)) < self.workers and \
                        time.monotonic() < deadline:
                    time.sleep(0.05)
                return
            self.stop()
        die("nginx did not start; its error log:\n"
            + read_file(os.path.join(self.dir, "error.log"), "") + read_file(self.log, ""))

    def pids(self):
        return [self.proc.pid] + proc_children(self.proc.pid)

    def problems(self):
        text = read_file(os.path.join(self.dir, "error.log"), "")
        return [l for l in text.splitlines() if l.strip()]


HAPROXY_CONF = """\
# Generated by bench/gateway.py: HAProxy as a reverse proxy in front of agora-hello.
global
    nbthread {workers}
    maxconn 4096
    # no `log` line: HAProxy logs nothing

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always

frontend bench
    bind 127.0.0.1:{port}
    default_backend hello

backend hello
    http-reuse always
    server hello 127.0.0.1:{upstream}
"""


class HAProxy(Server):
    name = "haproxy"
    label = "haproxy"

    def __init__(self, workers, cpus, workdir, tag, upstream_port, prefix=None):
        self.dir = os.path.join(workdir, f"haproxy-{tag}")
        os.makedirs(self.dir)
        self.workers = workers
        self.upstream = upstream_port
        self.conf_path = os.path.join(self.dir, "haproxy.cfg")
        self.cmd = (prefix if prefix is not None else pin(cpus)) + [
            "haproxy", "-db", "-f", self.conf_path]
        self.log = os.path.join(self.dir, "output.log")

    def start(self, timeout=10.0):
        for _attempt in range(3):
            self.port = free_port()
            self.conf = HAPROXY_CONF.format(port=self.port, workers=self.workers,
                                            upstream=self.upstream)
            with open(self.conf_path, "w") as f:
                f.write(self.conf)
            check = run_text(["haproxy", "-c", "-f", self.conf_path])
            if "Configuration file is valid" not in check:
                die(f"haproxy rejects its configuration:\n{check}\n{self.conf}")
            with open(self.log, "wb") as out:
                self.proc = spawn(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
            if wait_port(self.port, self.proc, timeout):
                return
            self.stop()
        die(f"haproxy did not start: {q(self.cmd)}\n{read_file(self.log, '')}")

    def problems(self):
        text = read_file(self.log, "")
        return [l for l in text.splitlines() if l.strip() and not l.startswith("==")]


def http_get(port, headers=None, path="/"):
    """One GET on a fresh connection: (status, content type, body) or raises OSError."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    except http.client.HTTPException as e:
        raise OSError(f"{type(e).__name__}: {e}") from e
    finally:
        c.close()


def check_answer(srv, headers=None):
    """GET / once: status 200 and agora-hello's body."""
    try:
        status, ctype, body = http_get(srv.port, headers)
    except OSError as e:
        return False, f"request failed: {e}"
    return (status == 200 and body == EXPECTED_BODY,
            f"{status} {ctype} {body[:200].decode('utf-8', 'replace')}")


# ---------------------------------------------------------------- JWT (ES256) with the openssl CLI

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_ecdsa_to_raw(der, size=32):
    """An ECDSA-Sig-Value (DER SEQUENCE of two INTEGERs) as JOSE's r || s, size bytes each."""
    if der[0] != 0x30:
        raise ValueError("not a DER sequence")
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        if der[i] != 0x02:
            raise ValueError("not a DER integer")
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        if len(v) > size:
            raise ValueError("integer too long")
        out += v.rjust(size, b"\0")
        i += 2 + n
    return out


def openssl(args, data=None):
    r = subprocess.run(["openssl"] + args, input=data, capture_output=True, timeout=30)
    if r.returncode != 0:
        die(f"openssl {' '.join(args)} failed: {r.stderr.decode('utf-8', 'replace')}")
    return r.stdout


def make_jwt(workdir):
    """An ES256 key (P-256), its JWKS file, two valid tokens (subjects bench-user-1 and -2) and
    a token whose signature is wrong. Each signature is checked with `openssl dgst -verify`
    before use. Returns a dict: jwks, tokens, bad, claims (of the first token)."""
    key = os.path.join(workdir, "es256.pem")
    openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
    spki = openssl(["ec", "-in", key, "-pubout", "-outform", "DER"])
    point = spki[-65:]  # SubjectPublicKeyInfo ends with the uncompressed point 04 || X || Y
    if point[0] != 4:
        die("unexpected public key encoding from openssl")
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": b64url(point[1:33]),
                      "y": b64url(point[33:65]), "kid": KID, "alg": "ES256", "use": "sig"}]}
    jwks_path = os.path.join(workdir, "jwks.json")
    with open(jwks_path, "w") as f:
        json.dump(jwks, f, indent=2)
    pub = os.path.join(workdir, "es256.pub.pem")
    with open(pub, "wb") as f:
        f.write(openssl(["ec", "-in", key, "-pubout"]))
    sig_path = os.path.join(workdir, "sig.der")
    now = int(time.time())
    header = {"alg": "ES256", "typ": "JWT", "kid": KID}
    tokens, all_claims = [], []
    for i in (1, 2):
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": f"bench-user-{i}", "iat": now,
                  "nbf": now - 60, "exp": now + 24 * 3600}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode())).encode()
        der = openssl(["dgst", "-sha256", "-sign", key], signing_input)
        with open(sig_path, "wb") as f:
            f.write(der)
        openssl(["dgst", "-sha256", "-verify", pub, "-signature", sig_path], signing_input)
        raw = der_ecdsa_to_raw(der)
        tokens.append(signing_input.decode() + "." + b64url(raw))
        all_claims.append(claims)
    head, _, sig = tokens[0].rpartition(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    bad = head + "." + b64url(bytes([raw[0] ^ 0x01]) + raw[1:])
    return {"jwks": jwks_path, "tokens": tokens, "bad": bad, "claims": all_claims[0]}


WRK_TWO_TOKENS = """\
-- Generated by bench/gateway.py: one bearer token, then the other, request after request.
local tokens = {{ "{t1}", "{t2}" }}
local n = 0
request = function()
   n = n + 1
   return wrk.format(nil, nil, {{ ["Authorization"] = "Bearer " .. tokens[n % 2 + 1] }})
end
"""


# ---------------------------------------------------------------- wrk

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def parse_wrk(text):
    def lat(pct):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None

    r = {"rps": None, "p50_ms": lat(50), "p99_ms": lat(99), "requests": None, "non2xx3xx": 0,
         "sock_connect": 0, "sock_read": 0, "sock_write": 0, "sock_timeout": 0}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ", text, re.M)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        r["non2xx3xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        for k, v in zip(("sock_connect", "sock_read", "sock_write", "sock_timeout"), m.groups()):
            r[k] = int(v)
    r["sock_errors"] = r["sock_connect"] + r["sock_read"] + r["sock_write"] + r["sock_timeout"]
    return r


def wrk_cmd(args, layout, port, seconds, extra=()):
    return pin(layout["client"]) + ["wrk", f"-t{layout['wrk_threads']}", f"-c{args.connections}",
                                    f"-d{seconds}s", "--timeout", f"{args.wrk_timeout}s",
                                    "--latency", *extra, f"http://127.0.0.1:{port}/"]


def run_wrk(args, layout, srv, upstream, seconds, workdir, tag):
    cmd = wrk_cmd(args, layout, srv.port, seconds, srv.wrk_args)
    out_path = os.path.join(workdir, f"wrk-{tag}.txt")
    srv_pids, up_pids = srv.pids(), upstream.pids()
    cpu0, up0, busy0, t0 = (cpu_seconds(srv_pids), cpu_seconds(up_pids), machine_busy_seconds(),
                            time.monotonic())
    with open(out_path, "wb") as out:
        p = spawn(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = t0 + seconds + 30
    ru = None
    while time.monotonic() < deadline:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.02)
    else:
        stop(p)
        die(f"wrk did not finish within {seconds + 30} s: {q(cmd)}")
    wall = time.monotonic() - t0
    cpu1, up1, busy1 = cpu_seconds(srv_pids), cpu_seconds(up_pids), machine_busy_seconds()
    text = read_file(out_path, "")
    if p.returncode != 0:
        die(f"wrk exited {p.returncode}: {q(cmd)}\n{text}")
    r = parse_wrk(text)
    if r["rps"] is None or r["p50_ms"] is None or r["p99_ms"] is None:
        die(f"cannot parse wrk's output:\n{text}")
    wrk_cpu = ru.ru_utime + ru.ru_stime
    srv_cpu, up_cpu = cpu1 - cpu0, up1 - up0
    r.update(server=srv.name, wall_s=round(wall, 2), proxy_cpu_pct=100 * srv_cpu / wall,
             proxy_us_per_req=1e6 * srv_cpu / r["requests"] if r["requests"] else None,
             upstream_cpu_pct=100 * up_cpu / wall, wrk_cpu_pct=100 * wrk_cpu / wall,
             rest_cpu_pct=100 * max(0.0, (busy1 - busy0) - srv_cpu - up_cpu - wrk_cpu) / wall,
             raw=text)
    return r


# ---------------------------------------------------------------- formatting

def fmt_ms(v):
    return "-" if v is None else f"{v:.3f} ms"


def table(headers, rows, align=None):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    align = align or ["<"] + [">"] * (len(headers) - 1)
    line = lambda cells: "  ".join(f"{str(c):{a}{w}}" for c, a, w in zip(cells, align, widths))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def spread(vals):
    med = statistics.median(vals)
    return 100 * (max(vals) - min(vals)) / med if med else 0.0


def verdict(ok):
    return "meets" if ok else "MISSES"


def indent(text, prefix="    "):
    return "".join(prefix + l for l in text.splitlines(True))


# ---------------------------------------------------------------- a contest: interleaved rounds

def contest(args, layout, servers, upstream, workdir, tag):
    """wrk against each server, interleaved; returns runs and per-server medians."""
    cmds = {}
    for s in servers:
        cmds.setdefault(q(wrk_cmd(args, layout, "PORT", args.duration, s.wrk_args)), []).append(
            s.name)
    for cmd, names in cmds.items():
        say(f"\nwrk command for {', '.join(names)} (PORT = the proxy's): {cmd}")
    rss_start = {s.name: vmrss_kib(s.pids()) for s in servers}
    if args.warmup > 0:
        say(f"Warm-up: {args.warmup} s each, not counted")
        for s in servers:
            w = run_wrk(args, layout, s, upstream, args.warmup, workdir,
                        f"{tag}-warmup-{s.name}")
            say(f"  warm-up {s.name:11} {w['rps']:>11,.0f} req/s  non-2xx/3xx {w['non2xx3xx']}"
                f"  socket errors {w['sock_errors']}")
    runs = []
    for rnd in range(1, args.rounds + 1):
        for s in servers:
            if not s.alive():
                die(f"{s.name} is no longer running (exit {s.proc.returncode}); its log:\n"
                    + "\n".join(s.problems()[-20:]))
            r = run_wrk(args, layout, s, upstream, args.duration, workdir,
                        f"{tag}-r{rnd}-{s.name}")
            r["round"] = rnd
            runs.append(r)
            say(f"  round {rnd} {s.name:11} {r['rps']:>11,.0f} req/s  p50 {fmt_ms(r['p50_ms'])}"
                f"  p99 {fmt_ms(r['p99_ms'])}  non-2xx/3xx {r['non2xx3xx']}"
                f"  socket errors {r['sock_errors']}")
            if args.verbose:
                say(indent(r["raw"], "      | "))
    after = {}
    for s in servers:
        if not s.alive():
            die(f"{s.name} exited during the runs (exit {s.proc.returncode}); its log:\n"
                + "\n".join(s.problems()[-20:]))
        after[s.name] = check_answer(s, s.check_headers)
    rss_end = {s.name: vmrss_kib(s.pids()) for s in servers}
    metrics = {}
    for s in servers:
        if isinstance(s, Gateway):
            metrics[s.name] = s.metrics()
            nonzero = [l for l in metrics[s.name] or [] if l.rsplit(" ", 1)[-1] not in ("0", "0.0")]
            if nonzero:
                say(f"\n{s.name}'s non-zero counters after the runs (admin port /metrics):")
                for l in nonzero[:30]:
                    say(f"    {l}")

    say("\nPer run:")
    rows = [[r["round"], r["server"], f"{r['rps']:,.0f}", fmt_ms(r["p50_ms"]),
             fmt_ms(r["p99_ms"]), f"{r['requests']:,}", r["non2xx3xx"],
             f"{r['sock_connect']}/{r['sock_read']}/{r['sock_write']}/{r['sock_timeout']}",
             f"{r['proxy_cpu_pct']:.0f}%", f"{r['proxy_us_per_req']:.2f}",
             f"{r['upstream_cpu_pct']:.0f}%", f"{r['wrk_cpu_pct']:.0f}%",
             f"{r['rest_cpu_pct']:.0f}%"] for r in runs]
    say(table(["round", "proxy", "req/s", "p50", "p99", "requests", "non-2xx/3xx",
               "sock err c/r/w/t", "proxy CPU", "proxy us/req", "upstream CPU", "wrk CPU",
               "rest CPU"], rows))
    say("  CPU columns: CPU time / wall time (100% = one CPU busy); rest: the machine's other busy")
    say("  time (kernel work not charged to a process, e.g. softirq, and any other program).")
    say("  proxy us/req: the proxy's CPU time (user + system, all its processes and threads) per")
    say("  request served, in microseconds: its cost per request whatever limited the run.")

    summary = {}
    for s in servers:
        rs = [r for r in runs if r["server"] == s.name]
        summary[s.name] = {
            "label": s.label,
            "rps": statistics.median(r["rps"] for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
            "rps_min": min(r["rps"] for r in rs), "rps_max": max(r["rps"] for r in rs),
            "rps_spread_pct": spread([r["rps"] for r in rs]),
            "proxy_cpu_pct": statistics.median(r["proxy_cpu_pct"] for r in rs),
            "proxy_us_per_req": statistics.median(r["proxy_us_per_req"] for r in rs),
            "non2xx3xx": sum(r["non2xx3xx"] for r in rs),
            "sock_errors": sum(r["sock_errors"] for r in rs),
            "rss_start_kib": rss_start[s.name], "rss_end_kib": rss_end[s.name],
            "answer_after": after[s.name][1], "ok_after": after[s.name][0],
            "metrics": metrics.get(s.name),
        }
    return runs, summary


def ratios(runs, summary, a, b, rounds):
    sa, sb = summary[a], summary[b]
    per_round = []
    for rnd in range(1, rounds + 1):
        ra = next(r for r in runs if r["round"] == rnd and r["server"] == a)
        rb = next(r for r in runs if r["round"] == rnd and r["server"] == b)
        per_round.append(ra["rps"] / rb["rps"])
    return {"rps": sa["rps"] / sb["rps"], "p50": sa["p50_ms"] / sb["p50_ms"],
            "p99": sa["p99_ms"] / sb["p99_ms"],
            "cpu_per_req": sa["proxy_us_per_req"] / sb["proxy_us_per_req"],
            "per_round_rps": per_round}


def print_summary(args, summary, ratio_list, title):
    say(f"\n{title}")
    rows = [[name, f"{s['rps']:,.0f}", fmt_ms(s["p50_ms"]), fmt_ms(s["p99_ms"]),
             f"{s['rps_min']:,.0f} .. {s['rps_max']:,.0f} ({s['rps_spread_pct']:.1f}%)",
             f"{s['proxy_cpu_pct']:.0f}%", f"{s['proxy_us_per_req']:.2f}", s["non2xx3xx"],
             s["sock_errors"]] for name, s in summary.items()]
    for (a, b), r in ratio_list:
        rows.append([f"{a}/{b}", f"{r['rps']:.2f}x", f"{r['p50']:.2f}x", f"{r['p99']:.2f}x",
                     "per round " + ", ".join(f"{x:.2f}" for x in r["per_round_rps"]),
                     "", f"{r['cpu_per_req']:.2f}x", "", ""])
    say(table(["proxy", "req/s", "p50", "p99", "req/s range (spread)", "proxy CPU",
               "proxy us/req", "non-2xx/3xx", "socket errors"], rows))
    say("  req/s ratio > 1: the first serves more; latency and us/req ratios < 1: the first")
    say("  answers faster / spends less CPU per request.")
    say("  VmRSS before the warm-up -> after the last round: " + ", ".join(
        f"{n} {s['rss_start_kib']:,} -> {s['rss_end_kib']:,} KiB" for n, s in summary.items()))
    for name, s in summary.items():
        if not s["ok_after"]:
            say(f"  WARNING: after the runs {name} answers: {s['answer_after']}")
        if s["non2xx3xx"] or s["sock_errors"]:
            say(f"  WARNING: {name} had {s['non2xx3xx']} non-2xx/3xx responses and "
                f"{s['sock_errors']} socket errors")
        if s["rps_spread_pct"] > 10:
            say(f"  NOTE: {name}'s req/s varied by {s['rps_spread_pct']:.1f}% between rounds")


def report_problems(servers):
    found = {}
    for s in servers:
        lines = s.problems()
        if lines:
            found[s.name] = lines
            say(f"  NOTE: {s.name} logged {len(lines)} warning/error line(s); the first ones:")
            for l in lines[:5]:
                say(f"    {l[:300]}")
    return found


# ---------------------------------------------------------------- layouts

def layout_for(args, workers):
    """Where each process runs for a worker count (see the header of this file)."""
    if workers == 1 and not args.unpinned:
        return {"proxy": args.proxy_cpus, "client": args.client_cpus,
                "upstream": args.upstream_cpus,
                "wrk_threads": args.wrk_threads or len(cpu_list(args.client_cpus)),
                "desc": f"proxy on CPU {args.proxy_cpus}; wrk on CPU {args.client_cpus}; "
                        f"upstream agora-hello on CPU {args.upstream_cpus}"}
    n = len(os.sched_getaffinity(0))
    return {"proxy": None, "client": None, "upstream": None,
            "wrk_threads": args.wrk_threads or min(workers, n),
            "desc": f"nothing pinned: proxy ({workers} workers), upstream agora-hello "
                    f"({workers} workers) and wrk share all {n} CPUs"}


def cpu_list(spec):
    cpus = set()
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            cpus.update(range(int(lo), int(hi) + 1))
        elif part:
            cpus.add(int(part))
    return cpus


# ---------------------------------------------------------------- part 1: proxies

def part_proxies(args, workdir):
    results = {}
    for workers in args.workers:
        layout = layout_for(args, workers)
        tag = f"w{workers}"
        say(f"\n== Proxies, {workers} worker(s): {', '.join(args.contenders)} in front of the "
            f"same agora-hello ==")
        say(f"Placement: {layout['desc']}.")
        hello = Hello(args.hello_bin, workers, layout["upstream"], workdir, tag)
        hello.start()
        say(f"upstream:  {q(hello.cmd)}   (port {hello.port})")
        ok, desc = check_answer(hello)
        if not ok:
            die(f"agora-hello does not answer 200 {EXPECTED_BODY.decode()}: {desc}")
        servers = []
        for c in args.contenders:
            if c == "agora":
                s = Gateway(args.gateway_bin, workers, layout["proxy"], workdir, tag, hello.port)
            elif c == "nginx":
                s = Nginx(workers, layout["proxy"], workdir, tag, hello.port, args.nofile)
            else:
                s = HAProxy(workers, layout["proxy"], workdir, tag, hello.port)
            s.start()
            servers.append(s)
            say(f"{s.name + ':':10} {q(s.cmd)}   (port {s.port}, pids {s.pids()})")
        for s in servers:
            say(f"{s.name} configuration:")
            say(indent(s.conf))
        say("Correctness check (GET / through each proxy):")
        answers = {}
        for s in servers:
            ok, desc = check_answer(s)
            answers[s.name] = desc
            say(f"  {s.name:8} {'ok  ' if ok else 'FAIL'} {desc}")
            if not ok:
                die(f"{s.name} does not proxy GET / to agora-hello (200 {EXPECTED_BODY.decode()})"
                    f"; running: {s.alive()} (exit {s.proc.returncode}); its output:\n"
                    + read_file(s.log, "")[-3000:])
        runs, summary = contest(args, layout, servers, hello, workdir, tag)
        ref = "agora" if "agora" in args.contenders else args.contenders[-1]
        pairs = [(ref, o) for o in args.contenders if o != ref]
        rl = [((a, b), ratios(runs, summary, a, b, args.rounds)) for a, b in pairs]
        print_summary(args, summary, rl,
                      f"Summary, {workers} worker(s): median of {args.rounds} rounds, "
                      f"{args.duration} s each, {args.connections} connections")
        targets = {}
        if ref == "agora":
            for (a, b), r in rl:
                want = TARGETS["rps_vs_nginx"] if b == "nginx" else TARGETS["rps_vs_haproxy"]
                ok_rps, ok_p99 = r["rps"] >= want, r["p99"] <= TARGETS["p99_max"]
                targets[b] = {"rps_ratio": r["rps"], "rps_target": want, "rps_ok": ok_rps,
                              "p99_ratio": r["p99"], "p99_ok": ok_p99}
                say(f"  target: agora/{b} req/s {r['rps']:.2f}x {verdict(ok_rps)} >= {want}x; "
                    f"p99 {r['p99']:.2f}x {verdict(ok_p99)} <= 1.0x (no worse)")
        problems = report_problems(servers + [hello])
        if hello.alive():
            ok, desc = check_answer(hello)
            if not ok:
                say(f"  WARNING: the upstream agora-hello now answers {desc}")
        for s in servers + [hello]:
            s.stop()
        results[f"workers_{workers}"] = {
            "layout": layout, "answers": answers, "summary": summary,
            "ratios": {f"{a}/{b}": r for (a, b), r in rl}, "targets": targets,
            "problems": problems,
            "runs": [{k: v for k, v in r.items() if k != "raw"} for r in runs],
            "configs": {s.name: s.conf for s in servers},
            "commands": {s.name: q(s.cmd) for s in servers + [hello]}}
    return results


# ---------------------------------------------------------------- part 2: auth

def part_auth(args, workdir, jwt):
    jwks, token, bad, claims = jwt["jwks"], jwt["tokens"][0], jwt["bad"], jwt["claims"]
    lua = os.path.join(workdir, "two-tokens.lua")
    with open(lua, "w") as f:
        f.write(WRK_TWO_TOKENS.format(t1=jwt["tokens"][0], t2=jwt["tokens"][1]))
    results = {}
    for workers in args.auth_workers:
        layout = layout_for(args, workers)
        tag = f"auth-w{workers}"
        say(f"\n== Gateway with JWT auth and a rate limit vs without, {workers} worker(s) ==")
        say(f"Placement: {layout['desc']}.")
        say(f"Tokens: ES256, kid {KID}, claims {json.dumps(claims)} (the second token: sub "
            f"bench-user-2); JWKS file {jwks} (key made with openssl ecparam -name prime256v1, "
            f"signed with openssl dgst -sha256)")
        say("auth and plain get the same wrk command, one token in -H; the gateway caches a "
            "verified token per worker, so auth measures the cached path.")
        if args.auth_cold:
            say("auth-cold: the auth configuration with a token cache of 1 entry, and wrk "
                "alternating two tokens (a Lua script): every request verifies an ES256 "
                "signature.")
        hello = Hello(args.hello_bin, workers, layout["upstream"], workdir, tag)
        hello.start()
        say(f"upstream:  {q(hello.cmd)}   (port {hello.port})")
        plain = Gateway(args.gateway_bin, workers, layout["proxy"], workdir, tag + "-plain",
                        hello.port, name="plain")
        auth = Gateway(args.gateway_bin, workers, layout["proxy"], workdir, tag + "-auth",
                       hello.port, jwks=jwks, name="auth")
        servers = [auth, plain]
        bearer = {"Authorization": f"Bearer {token}"}
        for s in servers:
            s.wrk_args = ["-H", f"Authorization: Bearer {token}"]
            s.check_headers = bearer
        cold = None
        if args.auth_cold:
            cold = Gateway(args.gateway_bin, workers, layout["proxy"], workdir, tag + "-cold",
                           hello.port, jwks=jwks, name="auth-cold", cold=True)
            cold.wrk_args = ["-s", lua]
            cold.check_headers = bearer
            servers.append(cold)
        for s in servers:
            s.start()
            say(f"{s.name + ':':10} {q(s.cmd)}   (port {s.port}, pids {s.pids()})")
            say(indent(s.conf))
        if cold:
            say(f"wrk script for auth-cold ({lua}), tokens shortened:")
            say(indent(WRK_TWO_TOKENS.format(t1=jwt["tokens"][0][:24] + "...",
                                             t2=jwt["tokens"][1][:24] + "...")))
        checks = [
            ("auth, good token", auth, bearer, 200),
            ("auth, second token", auth, {"Authorization": f"Bearer {jwt['tokens'][1]}"}, 200),
            ("auth, no token", auth, {}, 401),
            ("auth, bad signature", auth, {"Authorization": f"Bearer {bad}"}, 401),
            ("plain, good token", plain, bearer, 200),
        ]
        if cold:
            checks.append(("auth-cold, good token", cold, bearer, 200))
        say("Correctness check:")
        check_results = {}
        failed = False
        for what, s, hdrs, want in checks:
            try:
                status, ctype, body = http_get(s.port, hdrs)
                desc = f"{status} {ctype} {body[:160].decode('utf-8', 'replace')}"
            except OSError as e:
                status, desc = None, f"request failed: {e}"
            ok = status == want and (want != 200 or body == EXPECTED_BODY)
            check_results[what] = {"want": want, "got": desc, "ok": ok}
            say(f"  {what:22} want {want}: {'ok  ' if ok else 'FAIL'} {desc}")
            failed |= not ok and want == 200
            if not ok and want != 200:
                say("  WARNING: the auth gateway does not refuse this request as it should")
        if failed:
            die("the gateway does not proxy the authenticated request (see above)")
        runs, summary = contest(args, layout, servers, hello, workdir, tag)
        r = ratios(runs, summary, "auth", "plain", args.rounds)
        rl = [(("auth", "plain"), r)]
        if cold:
            rl.append((("auth-cold", "plain"),
                       ratios(runs, summary, "auth-cold", "plain", args.rounds)))
        print_summary(args, summary, rl,
                      f"Summary, {workers} worker(s): median of {args.rounds} rounds, "
                      f"{args.duration} s each, {args.connections} connections")
        ok = r["rps"] >= TARGETS["auth_rps"]
        say(f"  target: auth/plain req/s {r['rps']:.2f}x {verdict(ok)} >= {TARGETS['auth_rps']}x "
            f"(p50 {r['p50']:.2f}x, p99 {r['p99']:.2f}x)")
        if cold:
            rc = rl[1][1]
            say(f"  auth-cold (every request a full ES256 verification; no target): "
                f"auth-cold/plain req/s {rc['rps']:.2f}x, proxy us/req "
                f"{summary['auth-cold']['proxy_us_per_req'] - summary['plain']['proxy_us_per_req']:+.2f}"
                f" us over plain")
        problems = report_problems(servers + [hello])
        for s in servers + [hello]:
            s.stop()
        results[f"workers_{workers}"] = {
            "layout": layout, "checks": check_results, "summary": summary,
            "ratio": r, "ratios": {f"{a}/{b}": x for (a, b), x in rl}, "target_ok": ok,
            "problems": problems,
            "runs": [{k: v for k, v in x.items() if k != "raw"} for x in runs],
            "configs": {s.name: s.conf for s in servers}}
    return results


# ---------------------------------------------------------------- part 3: callgrind

def callgrind_dump(out_prefix, before, timeout=60):
    """The newest dump file of out_prefix not in `before`, once complete: (path, Ir)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d, base = os.path.split(out_prefix)
        new = sorted((f for f in os.listdir(d) if f.startswith(base + ".") and f not in before),
                     key=lambda f: int(f.rsplit(".", 1)[1]) if f.rsplit(".", 1)[1].isdigit() else 0)
        if new:
            path = os.path.join(d, new[-1])
            text = read_file(path, "")
            m = re.search(r"^summary:\s+(\d+)", text, re.M)
            if m and re.search(r"^totals:", text, re.M):
                return path, int(m.group(1))
        time.sleep(0.2)
    return None, None


def callgrind_top(path, n, requests):
    """[(Ir, % of the total, function)] for the n functions with the most self Ir in a dump."""
    text = run_text(["callgrind_annotate", "--inclusive=no", f"--threshold=100", path],
                    timeout=120)
    total = None
    out = []
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([\d. %]+\)\s+)?(\S.*?)\s*$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        what = m.group(2)
        if "PROGRAM TOTALS" in what:
            total = ir
            continue
        if total is None or what.startswith("Ir"):
            continue
        if ir >= 0.995 * total:  # a thread's entry frames (clone, start_thread, worker_main):
            continue  # callgrind charges the calls still running at the dump to them
        out.append((ir, 100 * ir / total, what))
        if len(out) >= n:
            break
    return out


def run_loop(port, count, extra, cpus, timeout):
    cmd = pin(cpus) + [PYTHON, LOOP_SCRIPT, "--port", str(port), "--count", str(count),
                       "--timeout", str(timeout), *extra]
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        out, _ = p.communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        stop(p)
        die(f"gateway_loop.py did not finish in {timeout + 30} s")
    text = out.decode("utf-8", "replace")
    try:
        r = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        die(f"gateway_loop.py failed:\n{text}")
    r["exit"] = p.returncode
    return cmd, r


def part_callgrind(args, workdir, jwt):
    say(f"\n== Instructions per proxied request (valgrind --tool=callgrind, 1 worker) ==")
    say(f"Placement: the proxy under valgrind on CPU {args.proxy_cpus}; client and upstream "
        f"on CPU {args.client_cpus}.")
    cgdir = os.path.join(workdir, "callgrind")
    os.makedirs(cgdir)
    hello = Hello(args.hello_bin, 1, args.client_cpus, workdir, "cg")
    hello.start()
    say(f"upstream: {q(hello.cmd)}   (port {hello.port})")
    results = {}
    for c in args.cg_contenders:
        out_prefix = os.path.join(cgdir, f"{c}.out")
        vg = pin(args.proxy_cpus) + ["valgrind", "--tool=callgrind",
                                     f"--callgrind-out-file={out_prefix}",
                                     f"--log-file={os.path.join(cgdir, c + '.valgrind.log')}"]
        if c == "agora":
            s = Gateway(args.gateway_bin, 1, None, workdir, "cg-agora", hello.port, prefix=vg)
        elif c in ("agora-auth", "agora-auth-cold"):
            s = Gateway(args.gateway_bin, 1, None, workdir, f"cg-{c}", hello.port,
                        jwks=jwt["jwks"], prefix=vg, name=c, cold=c == "agora-auth-cold")
            s.check_headers = {"Authorization": f"Bearer {jwt['tokens'][0]}"}
            s.loop_args = ["--header", f"Authorization: Bearer {jwt['tokens'][0]}"]
            if c == "agora-auth-cold":
                s.loop_args = ["--rotate-header", f"Authorization: Bearer {jwt['tokens'][0]}",
                               "--rotate-header", f"Authorization: Bearer {jwt['tokens'][1]}"]
        elif c == "nginx":
            s = Nginx(1, None, workdir, "cg", hello.port, args.nofile, prefix=vg, master=False)
        else:
            s = HAProxy(1, None, workdir, "cg", hello.port, prefix=vg)
        s.start(timeout=60)
        ok, desc = check_answer(s, s.check_headers)
        say(f"\n{c}: {q(s.cmd)}   (port {s.port}, pid {s.proc.pid}): GET / {desc}")
        if not ok:
            die(f"{c} under valgrind does not answer 200 {EXPECTED_BODY.decode()}")
        count, warmup = args.cg_requests, args.cg_warmup
        if c == "agora-auth-cold":
            count, warmup = args.cg_cold_requests, max(1, args.cg_cold_requests // 10)
        _, warm = run_loop(s.port, warmup, s.loop_args, args.client_cpus, 600)
        say(f"  warm-up: {warm['requests']:,} requests, statuses {warm['statuses']}, "
            f"{warm['seconds']} s")
        zero = run_text(["callgrind_control", "--zero", str(s.proc.pid)], timeout=60)
        if "OK" not in zero:
            die(f"callgrind_control --zero failed:\n{zero}")
        before = set(os.listdir(cgdir))
        cmd, r = run_loop(s.port, count, s.loop_args, args.client_cpus, 900)
        dump = run_text(["callgrind_control", f"--dump=bench-{c}", str(s.proc.pid)], timeout=60)
        if "OK" not in dump:
            die(f"callgrind_control --dump failed:\n{dump}")
        path, ir = callgrind_dump(out_prefix, before)
        if ir is None:
            die(f"no callgrind dump for {c} in {cgdir}")
        per = ir / r["requests"] if r["requests"] else None
        say(f"  counted: {q(x[:60] + '...' if len(x) > 80 else x for x in cmd)}")
        say(f"  {r['requests']:,} requests on {r['connections']} connection(s), statuses "
            f"{r['statuses']}, bad bodies {r['bad_bodies']}, {r['seconds']} s"
            + (f", error: {r['error']}" if r["error"] else ""))
        say(f"  Ir {ir:,} -> {per:,.0f} instructions per request")
        if r["exit"] != 0:
            say(f"  WARNING: not every counted request got 200 {EXPECTED_BODY.decode()} on one "
                f"keep-alive connection: the figure is per request sent")
        top = []
        if args.cg_top and c.startswith("agora"):
            top = callgrind_top(path, args.cg_top, r["requests"])
            if top:
                say(f"  the {len(top)} functions with the most instructions of their own "
                    f"(callgrind_annotate; Ir per request, share):")
                for fn_ir, share, fn in top:
                    say(f"    {fn_ir / r['requests']:>9,.0f}  {share:5.1f}%  {fn}")
        alive = s.alive()
        results[c] = {"ir": ir, "requests": r["requests"], "ir_per_request": per, "top": top,
                      "client": r, "dump": os.path.basename(path), "command": q(s.cmd),
                      "alive_after": alive}
        if not alive:
            say(f"  WARNING: {c} exited under valgrind (exit {s.proc.returncode})")
        s.stop()
        results[c]["problems"] = report_problems([s])
    hello.stop()

    say("\nSummary (user-space instructions, Ir, per request, over "
        f"{args.cg_requests:,} keep-alive requests; agora-auth-cold: {args.cg_cold_requests:,}):")
    rows = [[c, f"{r['ir']:,}", f"{r['requests']:,}", f"{r['ir_per_request']:,.0f}"]
            for c, r in results.items()]
    say(table(["proxy", "Ir", "requests", "Ir per request"], rows))
    if "agora" in results:
        a = results["agora"]["ir_per_request"]
        ok = a <= TARGETS["ir_per_request"]
        say(f"  target: agora {a:,.0f} per request {verdict(ok)} <= "
            f"{TARGETS['ir_per_request']:,}")
        for o in ("nginx", "haproxy"):
            if o in results:
                say(f"  agora/{o}: {a / results[o]['ir_per_request']:.2f}x")
        for v, what in (("agora-auth", "JWT auth (cached token) + rate limit"),
                        ("agora-auth-cold", "JWT auth (ES256 verified every time) + rate limit")):
            if v in results:
                say(f"  {what} add {results[v]['ir_per_request'] - a:,.0f} instructions per "
                    f"request")
    say("  Ir counts every user-space instruction of the proxy process (all its threads, libc")
    say("  and libcrypto included) between --zero and --dump; the kernel's work is not in it.")
    return results


# ---------------------------------------------------------------- main

def parse_args():
    usable = sorted(os.sched_getaffinity(0))
    ap = argparse.ArgumentParser(
        prog="bench/gateway.py",
        description="Benchmarks agora-gateway against nginx and HAProxy as reverse proxies in "
                    "front of agora-hello on 127.0.0.1 (wrk, interleaved rounds), the gateway "
                    "with JWT auth and a rate limit against without, and instructions per "
                    "proxied request under callgrind.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--parts", default="proxies,auth,callgrind",
                    help="comma-separated parts: proxies, auth, callgrind")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (at least 3)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up seconds per proxy, 0: none")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections")
    ap.add_argument("--workers", default="1,2",
                    help="proxy worker counts for the proxies part, in order")
    ap.add_argument("--auth-workers", default="1", help="worker counts for the auth part")
    ap.add_argument("--no-auth-cold", dest="auth_cold", action="store_false",
                    help="leave out auth-cold (a token cache of 1 entry, two tokens taking "
                         "turns) from the auth part")
    ap.add_argument("--contenders", default="agora,nginx,haproxy",
                    help="proxies for the proxies part (agora, nginx, haproxy)")
    ap.add_argument("--cg-contenders", default="agora,agora-auth,nginx,haproxy",
                    help="proxies for the callgrind part (agora, agora-auth, agora-auth-cold, "
                         "nginx, haproxy)")
    ap.add_argument("--cg-requests", type=int, default=20000,
                    help="requests counted under callgrind")
    ap.add_argument("--cg-warmup", type=int, default=2000,
                    help="requests sent under callgrind before counting")
    ap.add_argument("--cg-cold-requests", type=int, default=2000,
                    help="requests counted (and a tenth of it as warm-up) for agora-auth-cold, "
                         "whose every request verifies a signature: slow under valgrind")
    ap.add_argument("--cg-top", type=int, default=12,
                    help="for the agora contenders, print this many functions with the most "
                         "instructions (callgrind_annotate), 0: none")
    ap.add_argument("--keep", action="store_true",
                    help="keep the scratch directory (configurations, logs, callgrind dumps)")
    ap.add_argument("--gateway-bin", default=os.environ.get(
        "AGORA_GATEWAY_BIN", os.path.join(REPO, "build", "bin", "agora-gateway")),
        help="agora-gateway binary (or $AGORA_GATEWAY_BIN)")
    ap.add_argument("--hello-bin", default=os.environ.get(
        "AGORA_HELLO_BIN", os.path.join(REPO, "build", "bin", "agora-hello")),
        help="agora-hello binary, the upstream (or $AGORA_HELLO_BIN)")
    ap.add_argument("--proxy-cpus", default=str(usable[0]),
                    help="taskset CPU list for the proxy with 1 worker")
    ap.add_argument("--client-cpus", default=str(usable[-1]),
                    help="taskset CPU list for wrk with 1 worker")
    ap.add_argument("--upstream-cpus", default=str(usable[0]),
                    help="taskset CPU list for the agora-hello upstream with 1 worker")
    ap.add_argument("--unpinned", action="store_true",
                    help="pin nothing, also with 1 worker")
    ap.add_argument("--wrk-threads", type=int, default=None,
                    help="wrk -t (default: 1 with 1 worker (one client CPU), else the worker "
                         "count)")
    ap.add_argument("--wrk-timeout", type=int, default=2, help="wrk --timeout, seconds")
    ap.add_argument("--nice", type=int, default=0,
                    help="run proxies, upstream and clients under `nice -n NICE`")
    ap.add_argument("--json", metavar="FILE", help="also write all results as JSON to FILE")
    ap.add_argument("-v", "--verbose", action="store_true", help="print wrk's full output")
    args = ap.parse_args()

    def int_list(text, what):
        try:
            v = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            ap.error(f"{what} takes numbers separated by commas")
        if not v or not all(1 <= x <= 64 for x in v):
            ap.error(f"{what} takes worker counts 1 to 64")
        return v

    def names(text, allowed, what):
        v = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in v if x not in allowed]
        if bad or not v:
            ap.error(f"{what} takes {', '.join(allowed)}, not {text!r}")
        return v

    args.parts = names(args.parts, ("proxies", "auth", "callgrind"), "--parts")
    args.workers = int_list(args.workers, "--workers")
    args.auth_workers = int_list(args.auth_workers, "--auth-workers")
    args.contenders = names(args.contenders, ("agora", "nginx", "haproxy"), "--contenders")
    args.cg_contenders = names(args.cg_contenders, ("agora", "agora-auth", "agora-auth-cold",
                                                    "nginx", "haproxy"), "--cg-contenders")
    if len(args.contenders) < 2:
        ap.error("--contenders needs at least two proxies")
    if not 3 <= args.rounds <= 50:
        ap.error("--rounds must be 3 to 50")
    if not 1 <= args.duration <= 600:
        ap.error("--duration must be 1 to 600 seconds")
    if not 0 <= args.warmup <= 60:
        ap.error("--warmup must be 0 to 60 seconds")
    if not 1 <= args.connections <= 1000:
        ap.error("--connections must be 1 to 1000")
    if not 1 <= args.cg_requests <= 1_000_000 or not 0 <= args.cg_warmup <= 100_000 or \
            not 1 <= args.cg_cold_requests <= 1_000_000:
        ap.error("--cg-requests and --cg-cold-requests must be 1 to 1000000, --cg-warmup 0 to "
                 "100000")
    if not 0 <= args.cg_top <= 200:
        ap.error("--cg-top must be 0 to 200")
    if not -20 <= args.nice <= 19:
        ap.error("--nice must be -20 to 19")
    if args.wrk_threads is not None and not 1 <= args.wrk_threads <= args.connections:
        ap.error("--wrk-threads must be 1 to --connections")
    for opt in ("proxy_cpus", "client_cpus", "upstream_cpus"):
        try:
            cpus = cpu_list(getattr(args, opt))
        except ValueError:
            cpus = set()
        if not cpus or not cpus <= set(usable):
            ap.error(f"--{opt.replace('_', '-')} must be CPUs among {usable}")
    args.gateway_bin = os.path.realpath(args.gateway_bin)
    args.hello_bin = os.path.realpath(args.hello_bin)
    return args


def main():
    global tmpdir
    args = parse_args()
    if args.nice:
        NICE[:] = ["nice", "-n", str(args.nice)]
    if args.keep:
        KEEP.append(True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    need_gateway = ("proxies" in args.parts and "agora" in args.contenders) or \
        "auth" in args.parts or \
        ("callgrind" in args.parts and
         {"agora", "agora-auth", "agora-auth-cold"} & set(args.cg_contenders))
    if need_gateway and not os.access(args.gateway_bin, os.X_OK):
        die(f"no agora-gateway at {args.gateway_bin}: run `make build` (or pass --gateway-bin; "
            f"--contenders nginx,haproxy --parts proxies,callgrind --cg-contenders nginx,haproxy "
            f"runs without it)")
    if not os.access(args.hello_bin, os.X_OK):
        die(f"no agora-hello at {args.hello_bin}: run `make build` (or pass --hello-bin)")
    tools = ["wrk", "taskset", "openssl"]
    if "nginx" in args.contenders or "nginx" in args.cg_contenders:
        tools.append("nginx")
    if "haproxy" in args.contenders or "haproxy" in args.cg_contenders:
        tools.append("haproxy")
    if "callgrind" in args.parts:
        tools += ["valgrind", "callgrind_control"]
    for tool in tools:
        if not shutil.which(tool):
            die(f"{tool} is not installed: run scripts/deps")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args.nofile = hard if hard != resource.RLIM_INFINITY else 1048576

    tmpdir = tempfile.mkdtemp(prefix="agora-bench-gw.")
    os.chmod(tmpdir, 0o755)

    say("agora bench: agora-gateway vs nginx vs HAProxy, reverse proxies for agora-hello on "
        "127.0.0.1")
    say(f"command: {q(['bench/gateway.py'] + sys.argv[1:])}")
    say("\nMachine:")
    facts = machine_facts(args)
    for k, v in facts:
        say(f"  {k + ':':18} {v}")
    say(f"\nSettings: parts {','.join(args.parts)}; rounds {args.rounds}, duration "
        f"{args.duration} s, warm-up {args.warmup} s, connections {args.connections}, workers "
        f"{','.join(map(str, args.workers))}, contenders {','.join(args.contenders)}; auth "
        f"workers {','.join(map(str, args.auth_workers))}; callgrind {args.cg_requests:,} "
        f"requests after {args.cg_warmup:,}, contenders {','.join(args.cg_contenders)}")
    say(f"Placement: with 1 worker the proxy runs on CPU {args.proxy_cpus}, the upstream on "
        f"CPU {args.upstream_cpus} and wrk on CPU {args.client_cpus}; with more workers nothing "
        "is pinned (see bench/gateway.py's header for why)." if not args.unpinned else
        "Placement: nothing pinned (--unpinned).")
    if args.nice:
        say(f"  All of them run under nice -n {args.nice}.")
    say(f"Scratch directory ({'kept' if args.keep else 'removed at exit'}): {tmpdir}")

    busy, procs = busy_processes()
    say(f"\nMachine load before starting (1 s sample): {busy:.0f}% busy "
        f"(100% = one CPU; {100 * len(os.sched_getaffinity(0))}% = all)")
    for pid, pct, cmd in procs:
        say(f"  WARNING: pid {pid} uses {pct:.0f}% CPU: {cmd}")
    if procs:
        say("  Other programs are busy on this machine: the figures below share the CPUs "
            "with them.")

    results = {"facts": dict(facts), "settings": {
        k: v for k, v in vars(args).items() if k != "json"},
        "load_before": {"busy_pct": busy, "busy_processes": procs}, "targets": TARGETS}
    jwt = None
    if "auth" in args.parts or {"agora-auth", "agora-auth-cold"} & set(args.cg_contenders):
        jwt = make_jwt(tmpdir)
    if "proxies" in args.parts:
        results["proxies"] = part_proxies(args, tmpdir)
    if "auth" in args.parts:
        results["auth"] = part_auth(args, tmpdir, jwt)
    if "callgrind" in args.parts:
        results["callgrind"] = part_callgrind(args, tmpdir, jwt)

    say("\n== Targets ==")
    lines = []
    for key, r in results.get("proxies", {}).items():
        for other, t in r["targets"].items():
            lines.append(f"  {key.replace('_', ' ')}: agora/{other} req/s {t['rps_ratio']:.2f}x "
                         f"({verdict(t['rps_ok'])} >= {t['rps_target']}x), p99 "
                         f"{t['p99_ratio']:.2f}x ({verdict(t['p99_ok'])} <= 1.0x)")
    for key, r in results.get("auth", {}).items():
        lines.append(f"  auth, {key.replace('_', ' ')}: auth/plain req/s {r['ratio']['rps']:.2f}x "
                     f"({verdict(r['target_ok'])} >= {TARGETS['auth_rps']}x)")
    cg = results.get("callgrind", {})
    if "agora" in cg:
        a = cg["agora"]["ir_per_request"]
        lines.append(f"  callgrind: agora {a:,.0f} Ir per request "
                     f"({verdict(a <= TARGETS['ir_per_request'])} <= "
                     f"{TARGETS['ir_per_request']:,})"
                     + (f"; nginx {cg['nginx']['ir_per_request']:,.0f}" if "nginx" in cg else "")
                     + (f"; haproxy {cg['haproxy']['ir_per_request']:,.0f}"
                        if "haproxy" in cg else ""))
    say("\n".join(lines) if lines else "  (agora-gateway was not measured)")
    if procs:
        say("  The machine was busy when this run started: compare ratios from a quiet run.")
    say(f"\nloadavg at end: {read_file('/proc/loadavg')}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        say(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("\nbench/gateway: interrupted, stopping the servers")
        sys.exit(130)
    finally:
        cleanup()
