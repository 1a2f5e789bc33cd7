#!/usr/bin/python3
"""The auth service's read path and login rate, through agora-gateway, on 127.0.0.1.

Run by bench/run (part "auth") or alone: bench/auth.py --help.

`agora up` starts the development platform (config/platform.yaml: agora-hello, agora-auth on
SQLite, agora-gateway) in a scratch directory on free ports, with --workers W for every process
(AGORA_WORKERS for the auth service, the gateway's and agora-hello's workers). A user registers
and logs in. Then wrk runs, interleaved for --rounds rounds of --duration seconds:

  hello: GET /api/v1/hello/ through the gateway (the gateway's own proxied throughput);
  me:    GET /api/v1/auth/me through the gateway with the user's bearer token (the gateway
         verifies the token, proxies; the kit verifies it again, reads the user, its roles and
         permissions from SQLite and answers).

Summary: medians of req/s, p50 and p99 over the rounds, and me/hello. Target: >= 0.5.
Nothing is pinned: wrk, the gateway, the service and the upstream share all CPUs, which is the
same for both contenders.

Logins: POST /api/v1/auth/login with the right password, straight to the auth service's port
(the gateway rate-limits logins per address), from --login-connections concurrent clients for
--login-seconds: logins/s and p50/p99. Each login runs one Argon2id verification (libsodium,
crypto_pwhash_str_verify) with the parameters the service logs at start; that is the cost by
design. Every process is stopped on exit.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gateway as gwb  # noqa: E402  (parse_wrk, table, helpers)

say, die, read_file = gwb.say, gwb.die, gwb.read_file


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, token=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    raw = r.read()
    c.close()
    try:
        return r.status, json.loads(raw) if raw else None
    except ValueError:
        return r.status, raw


class Platform:
    """`agora up` on a scratch directory and free ports."""

    def __init__(self, args, workdir, extra_env=None, config=None):
        self.bin = args.bin
        self.workdir = workdir
        self.config = config or os.path.join(REPO, "config", "platform.yaml")
        self.ports = {k: free_port() for k in ("gateway", "admin", "auth", "hello", "products")}
        self.env = dict(os.environ, AGORA_VAR=os.path.join(workdir, "var"), AGORA_BIN=args.bin,
                        AGORA_GATEWAY_PORT=str(self.ports["gateway"]),
                        AGORA_GATEWAY_ADMIN_PORT=str(self.ports["admin"]),
                        AGORA_AUTH_PORT=str(self.ports["auth"]),
                        AGORA_HELLO_PORT=str(self.ports["hello"]),
                        AGORA_PRODUCTS_PORT=str(self.ports["products"]),
                        AGORA_PRODUCTS_WORKERS=str(args.workers),
                        AGORA_ISSUER=f"http://127.0.0.1:{self.ports['gateway']}",
                        AGORA_AUTH_WORKERS=str(args.workers), AGORA_GATEWAY_WORKERS=str(args.workers),
                        AGORA_HELLO_RATE="100000000",
                        AGORA_HELLO_WORKERS=str(args.workers), AGORA_ENV="development",
                        AGORA_LOG_LEVEL="warn", NO_COLOR="1")
        self.env.update(extra_env or {})
        self.log = os.path.join(workdir, "agora-up.log")
        self.proc = None

    def start(self, timeout=90):
        with open(self.log, "wb") as out:
            self.proc = gwb.spawn([os.path.join(self.bin, "agora"), "up", "--config",
                                   self.config, "--no-color"],
                                  cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                die(f"agora up exited {self.proc.returncode}:\n{read_file(self.log, '')[-4000:]}")
            if b"platform ready" in open(self.log, "rb").read():
                return
            time.sleep(0.2)
        die(f"the platform was not ready within {timeout} s:\n{read_file(self.log, '')[-4000:]}")

    def agora(self, *args, timeout=600):
        """Runs `agora ARGS` with the platform's environment; returns its stdout."""
        cp = subprocess.run([os.path.join(self.bin, "agora"), *args], cwd=REPO, env=self.env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout)
        if cp.returncode != 0:
            die(f"agora {' '.join(args)} exited {cp.returncode}: {cp.stderr[-2000:]}")
        return cp.stdout

    def stop(self):
        if self.proc:
            gwb.stop(self.proc, grace=15.0)


def wrk(args, port, path, seconds, workdir, tag, token=None, script=None):
    cmd = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{seconds}s",
           "--timeout", "5s", "--latency"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    if script:
        cmd += ["-s", script]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out_path = os.path.join(workdir, f"wrk-{tag}.txt")
    with open(out_path, "wb") as out:
        p = gwb.spawn(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        p.wait(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        gwb.stop(p)
        die(f"wrk did not finish: {gwb.q(cmd)}")
    text = read_file(out_path, "")
    r = gwb.parse_wrk(text)
    if p.returncode != 0 or r["rps"] is None:
        die(f"wrk failed ({p.returncode}): {gwb.q(cmd)}\n{text}")
    if r["non2xx3xx"] or r["sock_errors"]:
        die(f"wrk saw {r['non2xx3xx']} non-2xx answers and {r['sock_errors']} socket errors "
            f"on {path}:\n{text}")
    return r


def logins(args, port, email, password):
    """Concurrent correct logins straight to the service: (logins/s, p50 ms, p99 ms, count)."""
    lat, lock, stop_at = [], threading.Lock(), time.monotonic() + args.login_seconds
    errors = []

    def client():
        body = json.dumps({"email": email, "password": password}).encode()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            c.request("POST", "/api/v1/auth/login", body=body,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            dt = time.monotonic() - t0
            if r.status != 200:
                errors.append(r.status)
                return
            with lock:
                lat.append(dt * 1000)
        c.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(args.login_connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    if errors or not lat:
        die(f"logins failed: statuses {errors[:5]}")
    lat.sort()
    return len(lat) / wall, lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], \
        len(lat)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("AGORA_BIN", os.path.join(REPO, "build", "bin")),
                    help="directory of the agora binaries")
    ap.add_argument("--workers", type=int, default=2, help="workers of every process")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up seconds per contender")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections")
    ap.add_argument("--wrk-threads", type=int, default=2, help="wrk -t")
    ap.add_argument("--login-seconds", type=int, default=5, help="seconds of logins")
    ap.add_argument("--login-connections", type=int, default=4, help="concurrent login clients")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = ap.parse_args()
    if not 3 <= args.rounds <= 50 or not 1 <= args.duration <= 600:
        ap.error("--rounds 3..50 and --duration 1..600")
    if not 1 <= args.workers <= 64 or not 1 <= args.login_connections <= 64:
        ap.error("--workers and --login-connections 1..64")
    args.bin = os.path.realpath(args.bin)
    for exe in ("agora", "agora-auth", "agora-gateway", "agora-hello"):
        if not os.access(os.path.join(args.bin, exe), os.X_OK):
            die(f"no {exe} in {args.bin}: run `make build` (or pass --bin)")
    if not shutil.which("wrk"):
        die("wrk is not installed: run scripts/deps")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, gwb.on_signal)

    workdir = tempfile.mkdtemp(prefix="agora-bench-auth.")
    gwb.tmpdir = None if args.keep else workdir
    say("== auth: GET /api/v1/auth/me vs the gateway's proxied hello; logins/s ==")
    say(f"command: bench/auth.py {' '.join(sys.argv[1:])}")
    say(f"workers {args.workers} per process, {args.rounds} rounds x {args.duration} s, "
        f"{args.connections} connections, wrk -t{args.wrk_threads}; scratch {workdir}")
    plat = Platform(args, workdir)
    plat.start()
    gw = plat.ports["gateway"]
    email, password = "bench@agora.local", "bench-password-42!"
    st, body = call(gw, "POST", "/api/v1/auth/register",
                    {"email": email, "password": password, "name": "Bench"})
    if st != 201:
        die(f"register answered {st}: {body}")
    st, body = call(gw, "POST", "/api/v1/auth/login", {"email": email, "password": password})
    if st != 200:
        die(f"login answered {st}: {body}")
    token = body["access_token"]
    st, me = call(gw, "GET", "/api/v1/auth/me", token=token)
    st2, hello = call(gw, "GET", "/api/v1/hello")
    if st != 200 or st2 != 200:
        die(f"checks failed: /me {st} {me}, /hello {st2} {hello}")

    contenders = [("hello", "/api/v1/hello", None), ("me", "/api/v1/auth/me", token)]
    if args.warmup:
        for name, path, tok in contenders:
            wrk(args, gw, path, args.warmup, workdir, f"warm-{name}", tok)
    runs = {name: [] for name, _, _ in contenders}
    for rnd in range(args.rounds):
        for name, path, tok in contenders:
            r = wrk(args, gw, path, args.duration, workdir, f"{name}-{rnd}", tok)
            runs[name].append(r)
            say(f"  round {rnd + 1} {name:5}: {r['rps']:>10.0f} req/s  p50 "
                f"{gwb.fmt_ms(r['p50_ms'])}  p99 {gwb.fmt_ms(r['p99_ms'])}")
    med = {n: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms")}
           for n, rs in runs.items()}
    ratio = med["me"]["rps"] / med["hello"]["rps"]
    per_round = [m["rps"] / h["rps"] for m, h in zip(runs["me"], runs["hello"])]
    say("\n" + gwb.table(["through the gateway", "req/s (median)", "p50", "p99"],
                         [[n, f"{m['rps']:.0f}", gwb.fmt_ms(m["p50_ms"]), gwb.fmt_ms(m["p99_ms"])]
                          for n, m in med.items()]))
    say(f"\nme/hello req/s: {ratio:.2f} (per round: "
        f"{', '.join(f'{x:.2f}' for x in per_round)}); target >= 0.5: {gwb.verdict(ratio >= 0.5)}")

    rate, p50, p99, n = logins(args, plat.ports["auth"], email, password)
    params = [line for line in read_file(plat.log, "").splitlines() if "argon2" in line.lower()]
    say(f"\nlogins straight to agora-auth, {args.login_connections} clients, "
        f"{args.login_seconds} s: {rate:.1f} logins/s ({n} logins), p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms")
    if params:
        say(f"  Argon2id parameters (from the service's log): {params[0][-200:]}")
    plat.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"median": med, "ratio_me_hello": ratio, "per_round": per_round,
                       "logins_per_s": rate, "login_p50_ms": p50, "login_p99_ms": p99}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        gwb.cleanup()
