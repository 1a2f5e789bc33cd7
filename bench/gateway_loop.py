#!/usr/bin/python3
"""Sends exactly COUNT `GET PATH` requests to 127.0.0.1:PORT over one keep-alive connection.

For bench/gateway.py's instruction count (callgrind): the proxy under valgrind is slow, so the
client only has to be correct, not fast. One request at a time (no pipelining), each response
read in full (Content-Length or chunked, through http.client). If the server closes the
connection, http.client opens a new one; the count of connections used is reported, so a
proxy that does not keep the connection alive shows up.

Standard library only. Bounded: COUNT requests and a deadline (--timeout) for the whole run.
Prints one JSON line: {"requests", "statuses", "bad_bodies", "connections", "seconds", "error"}.
Exit status 0 only if every response was 200 with the expected body on one connection.

  bench/gateway_loop.py --port 8080 --count 20000 [--header 'Authorization: Bearer ...']
                        [--rotate-header 'Authorization: Bearer A' --rotate-header '... B']
"""
import argparse
import http.client
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    ap.add_argument("--count", type=int, required=True, help="requests to send")
    ap.add_argument("--path", default="/", help="request path (default /)")
    ap.add_argument("--header", action="append", default=[],
                    help="extra request header 'Name: value' (repeatable)")
    ap.add_argument("--rotate-header", action="append", default=[],
                    help="'Name: value' sent on one request in turn with the other "
                         "--rotate-header values (repeatable): request i gets value i mod n")
    ap.add_argument("--expect-body", default='{"hello":"world"}',
                    help="body every response must have (default the agora-hello answer)")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="deadline for all requests, seconds (default 600)")
    args = ap.parse_args()
    if not 1 <= args.count <= 10_000_000:
        sys.exit("gateway_loop: --count must be 1 to 10000000")
    headers = {"Host": f"127.0.0.1:{args.port}", "User-Agent": "agora-bench-loop"}
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep:
            sys.exit(f"gateway_loop: --header {h!r} is not 'Name: value'")
        headers[name.strip()] = value.strip()
    rotate = []
    for h in args.rotate_header:
        name, sep, value = h.partition(":")
        if not sep:
            sys.exit(f"gateway_loop: --rotate-header {h!r} is not 'Name: value'")
        rotate.append((name.strip(), value.strip()))
    expect = args.expect_body.encode()

    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
    statuses, bad_bodies, socks, done, error = {}, 0, set(), 0, None
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    try:
        while done < args.count:
            if time.monotonic() > deadline:
                error = f"deadline of {args.timeout} s passed"
                break
            if rotate:
                name, value = rotate[done % len(rotate)]
                headers[name] = value
            conn.request("GET", args.path, headers=headers)
            socks.add(conn.sock.getsockname()[1])  # local port: a new one per connection
            r = conn.getresponse()
            body = r.read()
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
            if body != expect:
                bad_bodies += 1
            done += 1
    except (OSError, http.client.HTTPException) as e:
        error = f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    result = {"requests": done, "statuses": statuses, "bad_bodies": bad_bodies,
              "connections": len(socks), "seconds": round(time.monotonic() - t0, 3),
              "error": error}
    print(json.dumps(result), flush=True)
    ok = (error is None and done == args.count and statuses.get("200", 0) == done
          and bad_bodies == 0 and len(socks) == 1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
