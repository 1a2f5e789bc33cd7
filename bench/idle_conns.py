#!/usr/bin/python3
"""Memory per idle keep-alive connection of an HTTP server on 127.0.0.1.

Opens COUNT connections to 127.0.0.1:PORT. Each one sends one `GET /` and reads the whole
response, so the server has served a request on it, then stays open and idle. The VmRSS of
the given server processes (summed) is read before and after; the result is
(RSS after - RSS before) / COUNT. The open fds of the server processes are counted too, to
show that the server really holds the connections. Then every connection is closed.

Standard library only (selectors, non-blocking sockets). Bounded: at most COUNT connections,
one request each, and a deadline (--timeout) for the whole run. Prints one JSON line.

  bench/idle_conns.py --port 8080 --pid 1234 [--pid 1235 ...] [--count 10000]
"""
import argparse
import errno
import json
import os
import resource
import selectors
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: agora-bench-idle\r\n\r\n"


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def sample(pids):
    return sum(vmrss_kib(p) for p in pids), sum(fd_count(p) for p in pids)


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < need:
        sys.exit(f"idle_conns: need {need} fds, the hard limit is {hard}")
    return soft


class Conn:
    __slots__ = ("sock", "state", "resp")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connecting"
        self.resp = b""


def response_complete(data):
    """True once a whole response with a Content-Length body is in data."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in data[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(data) >= end + 4 + length


def open_idle(port, count, inflight, deadline):
    """Opens count used, idle connections. Returns (idle list, failures, status counts)."""
    sel = selectors.DefaultSelector()
    idle, failed, statuses = [], 0, {}
    started = active = 0
    addr = ("127.0.0.1", port)

    def fail(c):
        nonlocal failed, active
        sel.unregister(c.sock)
        c.sock.close()
        failed += 1
        active -= 1

    while (started < count or active > 0) and time.monotonic() < deadline:
        while started < count and active < inflight:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex(addr)
            started += 1
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                failed += 1
                continue
            c = Conn(s)
            sel.register(s, selectors.EVENT_WRITE, c)
            active += 1
        for key, _ in sel.select(timeout=0.5):
            c = key.data
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c)
                    continue
                try:
                    c.sock.send(REQUEST)  # small: goes out in one piece on a fresh socket
                except OSError:
                    fail(c)
                    continue
                c.state = "reading"
                sel.modify(c.sock, selectors.EVENT_READ, c)
            else:
                try:
                    chunk = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    fail(c)
                    continue
                if not chunk:
                    fail(c)
                    continue
                c.resp += chunk
                if response_complete(c.resp):
                    status = c.resp.split(b" ", 2)[1].decode("ascii", "replace")
                    statuses[status] = statuses.get(status, 0) + 1
                    sel.unregister(c.sock)
                    c.resp = b""
                    c.state = "idle"
                    idle.append(c)
                    active -= 1
    # Whatever did not finish in time counts as failed.
    for key in list(sel.get_map().values()):
        fail(key.data)
    failed += count - started
    sel.close()
    return idle, failed, statuses


def still_open(idle):
    """Counts idle connections the server has not closed (no EOF or reset pending)."""
    sel = selectors.DefaultSelector()
    for c in idle:
        sel.register(c.sock, selectors.EVENT_READ, c)
    closed = 0
    for key, _ in sel.select(timeout=0):
        try:
            if key.data.sock.recv(1, socket.MSG_PEEK) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    sel.close()
    return len(idle) - closed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True, help="server port on 127.0.0.1")
    ap.add_argument("--pid", type=int, action="append", required=True,
                    help="server process whose VmRSS is summed (repeat for several)")
    ap.add_argument("--count", type=int, default=10000, help="connections (default 10000)")
    ap.add_argument("--inflight", type=int, default=256,
                    help="connections being opened at once (default 256)")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds to wait before reading RSS (default 1)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="deadline for opening all connections, seconds (default 120)")
    args = ap.parse_args()
    if not 1 <= args.count <= 100000:
        sys.exit("idle_conns: --count must be 1 to 100000")
    raise_fd_limit(args.count + 64)

    time.sleep(args.settle)
    rss0, fds0 = sample(args.pid)
    t0 = time.monotonic()
    idle, failed, statuses = open_idle(args.port, args.count, args.inflight,
                                       t0 + args.timeout)
    open_secs = time.monotonic() - t0
    time.sleep(args.settle)
    rss1, fds1 = sample(args.pid)
    alive = still_open(idle)
    for c in idle:
        c.sock.close()
    n = len(idle)
    result = {
        "port": args.port,
        "pids": args.pid,
        "requested": args.count,
        "idle": n,
        "alive_after": alive,
        "failed": failed,
        "statuses": statuses,
        "open_seconds": round(open_secs, 3),
        "rss_before_kib": rss0,
        "rss_after_kib": rss1,
        "fds_before": fds0,
        "fds_after": fds1,
        "bytes_per_conn": round((rss1 - rss0) * 1024 / n, 1) if n else None,
    }
    print(json.dumps(result), flush=True)
    return 0 if n == args.count and alive == n and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
