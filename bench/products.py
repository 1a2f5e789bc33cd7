#!/usr/bin/python3
"""The catalog's read paths through agora-gateway, on SQLite and on PostgreSQL, on 127.0.0.1.

Run by bench/run (part "products") or alone: bench/products.py --help.

For each backend, `agora up` starts the development platform (config/platform.yaml) in a
scratch directory on free ports with --workers W for every process; for postgres, a
throw-away cluster (tests/e2e/support/postgres.py) holds the auth and products databases.
`agora seed --products N` loads N products through the gateway (N = 100,000 by default; the
seeding rate is reported). Then:

  hello: GET /api/v1/hello/ through the gateway (its proxied throughput, the reference);
  byid:  GET /api/v1/products/{id} through the gateway, cycling over 1,000 product ids;

interleaved for --rounds rounds of --duration s: medians of req/s, p50, p99 and byid/hello
(target >= 0.5). Then the full-text search, GET /api/v1/products?q=WORDS, cycling over queries
made of words taken from the products' names (one and two words, prefixes too), with
--search-connections connections (latency, not saturation, is the point): req/s, p50, p99
(target: p99 < 20 ms at 100,000 products), after a warm-up; then the same queries again, each
request made unique by an `&_=N` parameter that the service ignores but its read cache keys on,
so every one misses the cache: the database's own search speed. Every process is stopped on exit.
"""
import argparse
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
import auth as authb  # noqa: E402  (Platform, call, wrk)
import gateway as gwb  # noqa: E402

say, die = gwb.say, gwb.die


def lua_paths(workdir, tag, paths, unique=False):
    """A wrk script that cycles over paths; unique: each request gets its own `&_=` parameter
    (ignored by the service, but part of the read cache's key: every request misses it)."""
    path = os.path.join(workdir, f"{tag}.lua")
    with open(path, "w") as f:
        f.write("local paths = {\n")
        for p in paths:
            f.write(f"  {json.dumps(p)},\n")
        f.write("}\nlocal i = math.random(#paths)\n")
        if unique:  # one Lua state per wrk thread: its table address tells the threads apart
            f.write("local thread = string.match(tostring({}), \"0x(%x+)\") or \"0\"\n"
                    "local n = 0\n"
                    "request = function()\n  i = i % #paths + 1\n  n = n + 1\n"
                    "  return wrk.format(\"GET\", paths[i] .. \"&_=\" .. thread .. \"-\" .. n)\nend\n")
        else:
            f.write("request = function()\n  i = i % #paths + 1\n"
                    "  return wrk.format(\"GET\", paths[i])\nend\n")
    return path


def sample_products(gw, want=1000):
    """Ids and names of up to `want` products, read through the public list."""
    items, page = [], 1
    while len(items) < want:
        st, body = authb.call(gw, "GET", f"/api/v1/products?per_page=100&page={page}")
        if st != 200:
            die(f"GET /api/v1/products answered {st}: {body}")
        items += body["items"]
        if len(body["items"]) < 100:
            break
        page += 1
    if not items:
        die("the catalog is empty after seeding")
    return items


def search_queries(items, count=200, seed=7):
    rng = random.Random(seed)
    words = sorted({w.lower() for it in items for w in it["name"].split() if w.isalpha() and len(w) > 3})
    if not words:
        die("no words in the product names to search for")
    queries = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.5:
            q = rng.choice(words)
        elif kind < 0.8:
            q = f"{rng.choice(words)} {rng.choice(words)}"
        else:
            q = rng.choice(words)[:4]  # a prefix
        queries.append(f"/api/v1/products?q={q.replace(' ', '+')}")
    return queries


def run_backend(args, backend, workdir):
    extra, cluster = {"AGORA_PRODUCTS_CACHE_MB": str(args.cache_mb)}, None
    if backend == "postgres":
        from support.postgres import PostgresCluster
        cluster = PostgresCluster()
        cluster.start()
        extra["AGORA_AUTH_DB"] = cluster.create_database("auth_bench")
        extra["AGORA_PRODUCTS_DB"] = cluster.create_database("products_bench")
    plat = authb.Platform(args, workdir, extra_env=extra)
    try:
        plat.start()
        gw = plat.ports["gateway"]
        t0 = time.monotonic()
        out = plat.agora("seed", "--url", f"http://127.0.0.1:{gw}", "--products", str(args.products),
                         timeout=3600)
        seed_s = time.monotonic() - t0
        say(f"  seed: {out.strip().splitlines()[-1] if out.strip() else '(no output)'} "
            f"— {args.products / seed_s:.0f} products/s over the whole command")
        if cluster is not None:
            # What autovacuum would do after a bulk load, done now so that it does not run during
            # the measurement: statistics for the planner, the GIN index's pending list merged.
            t1 = time.monotonic()
            cluster.psql("VACUUM (ANALYZE) products", dbname="products_bench")
            say(f"  VACUUM (ANALYZE) products: {time.monotonic() - t1:.1f} s")
        items = sample_products(gw)
        st, total = authb.call(gw, "GET", "/api/v1/products?per_page=1")
        say(f"  catalog: {total.get('total')} products")
        ids = [f"/api/v1/products/{it['id']}" for it in items[:1000]]
        byid_script = lua_paths(workdir, "byid", ids)
        queries = search_queries(items)
        search_script = lua_paths(workdir, "search", queries)
        search_miss_script = lua_paths(workdir, "search-miss", queries, unique=True)
        for path in (ids[0], "/api/v1/hello"):
            st, body = authb.call(gw, "GET", path)
            if st != 200:
                die(f"GET {path} answered {st}: {body}")
        contenders = [("hello", "/api/v1/hello", None), ("byid", "/", byid_script)]
        if args.warmup:
            for name, path, script in contenders:
                authb.wrk(args, gw, path, args.warmup, workdir, f"{backend}-warm-{name}", None, script)
        runs = {name: [] for name, _, _ in contenders}
        for rnd in range(args.rounds):
            for name, path, script in contenders:
                r = authb.wrk(args, gw, path, args.duration, workdir, f"{backend}-{name}-{rnd}", None, script)
                runs[name].append(r)
                say(f"  round {rnd + 1} {name:6}: {r['rps']:>10.0f} req/s  p50 "
                    f"{gwb.fmt_ms(r['p50_ms'])}  p99 {gwb.fmt_ms(r['p99_ms'])}")
        med = {n: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms")}
               for n, rs in runs.items()}
        ratio = med["byid"]["rps"] / med["hello"]["rps"]
        per_round = [b["rps"] / h["rps"] for b, h in zip(runs["byid"], runs["hello"])]
        conns = args.connections
        args.connections = args.search_connections
        try:
            if args.warmup:
                authb.wrk(args, gw, "/", args.warmup, workdir, f"{backend}-warm-search", None, search_script)
            search = authb.wrk(args, gw, "/", args.search_duration, workdir, f"{backend}-search", None,
                               search_script)
            miss = authb.wrk(args, gw, "/", args.search_duration, workdir, f"{backend}-search-miss", None,
                             search_miss_script)
        finally:
            args.connections = conns
        say(f"  byid/hello: {ratio:.2f} (per round {', '.join(f'{x:.2f}' for x in per_round)}); "
            f"target >= 0.5: {gwb.verdict(ratio >= 0.5)}")
        for name, r in (("search", search), ("search, every request a cache miss", miss)):
            say(f"  {name} ({args.search_connections} connections): {r['rps']:.0f} req/s, p50 "
                f"{gwb.fmt_ms(r['p50_ms'])}, p99 {gwb.fmt_ms(r['p99_ms'])}; target p99 < 20 ms: "
                f"{gwb.verdict(r['p99_ms'] is not None and r['p99_ms'] < 20)}")
        return {"median": med, "ratio_byid_hello": ratio, "per_round": per_round,
                "search": {k: search[k] for k in ("rps", "p50_ms", "p99_ms")},
                "search_miss": {k: miss[k] for k in ("rps", "p50_ms", "p99_ms")},
                "seed_products_per_s": args.products / seed_s, "products": total.get("total")}
    finally:
        plat.stop()
        if cluster is not None:
            cluster.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("AGORA_BIN", os.path.join(REPO, "build", "bin")),
                    help="directory of the agora binaries")
    ap.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    ap.add_argument("--products", type=int, default=100000, help="products seeded")
    ap.add_argument("--workers", type=int, default=2, help="workers of every process")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up seconds per contender")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (by id, hello)")
    ap.add_argument("--search-connections", type=int, default=4, help="wrk connections (search)")
    ap.add_argument("--search-duration", type=int, default=10, help="seconds of search")
    ap.add_argument("--wrk-threads", type=int, default=2, help="wrk -t")
    ap.add_argument("--cache-mb", type=int, default=64,
                    help="agora-products' read cache (AGORA_PRODUCTS_CACHE_MB); 0 measures the "
                         "database read path alone")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = ap.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    if not backends or any(b not in ("sqlite", "postgres") for b in backends):
        ap.error("--backends takes sqlite and/or postgres")
    if not 3 <= args.rounds <= 50 or not 1 <= args.duration <= 600 or not 1 <= args.products <= 1000000:
        ap.error("--rounds 3..50, --duration 1..600, --products 1..1000000")
    args.bin = os.path.realpath(args.bin)
    for exe in ("agora", "agora-auth", "agora-products", "agora-gateway", "agora-hello"):
        if not os.access(os.path.join(args.bin, exe), os.X_OK):
            die(f"no {exe} in {args.bin}: run `make build` (or pass --bin)")
    if not shutil.which("wrk"):
        die("wrk is not installed: run scripts/deps")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, gwb.on_signal)
    workdir = tempfile.mkdtemp(prefix="agora-bench-products.")
    gwb.tmpdir = None if args.keep else workdir
    say("== products: GET /api/v1/products/{id} vs the gateway's proxied hello; full-text search ==")
    say(f"command: bench/products.py {' '.join(sys.argv[1:])}")
    say(f"read cache {args.cache_mb} MiB (AGORA_PRODUCTS_CACHE_MB; 0: every read goes to the database)")
    say(f"{args.products} products, workers {args.workers} per process, {args.rounds} rounds x "
        f"{args.duration} s, {args.connections} connections, wrk -t{args.wrk_threads}; scratch {workdir}")
    results = {}
    for backend in backends:
        say(f"\n-- {backend} --")
        sub = os.path.join(workdir, backend)
        os.makedirs(sub)
        results[backend] = run_backend(args, backend, sub)
    rows = []
    for backend, r in results.items():
        m = r["median"]
        rows.append([backend, f"{m['hello']['rps']:.0f}", f"{m['byid']['rps']:.0f}", f"{r['ratio_byid_hello']:.2f}",
                     gwb.fmt_ms(m["byid"]["p50_ms"]), gwb.fmt_ms(m["byid"]["p99_ms"]),
                     f"{r['search']['rps']:.0f}", gwb.fmt_ms(r["search"]["p50_ms"]), gwb.fmt_ms(r["search"]["p99_ms"]),
                     f"{r['search_miss']['rps']:.0f}", gwb.fmt_ms(r["search_miss"]["p50_ms"]),
                     gwb.fmt_ms(r["search_miss"]["p99_ms"])])
    say("\n" + gwb.table(["backend", "hello req/s", "by id req/s", "by id/hello", "by id p50", "by id p99",
                          "search req/s", "search p50", "search p99", "miss req/s", "miss p50", "miss p99"], rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("\nbench: interrupted")
        sys.exit(130)
    finally:
        gwb.cleanup()
