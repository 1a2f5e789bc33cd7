#!/usr/bin/python3
"""The event bus end to end: events/s from outbox to handler, and the latency of each event, on
the local driver (SQLite log) and on RabbitMQ, on 127.0.0.1.

Run by bench/run (part "bus") or alone: bench/bus.py --help.

For each driver, `agora up` starts the development platform plus agora-bus-probe (a test
consumer, tests/helpers/bus_probe) subscribed to probe.bench.*; for amqp, a throw-away RabbitMQ
broker (tests/e2e/support/rabbitmq.py). The probe's POST /probe/emit writes --events events into
its outbox, --batch per transaction; its relay publishes them (publisher confirms on RabbitMQ);
its consumer applies each in a transaction that records the event in the inbox and one effect
row (event time, applied time). Results, from those rows:

  events/s = events / (last applied time - first event time), i.e. from the first outbox write
  to the last handler commit; latency = applied time - event time (outbox write to handler
  commit), p50 / p99 / max.

Target: >= 5,000 events/s on each driver. --rounds runs repeat it; the median is reported.
"""
import argparse
import json
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
import auth as authb  # noqa: E402
import gateway as gwb  # noqa: E402

say, die = gwb.say, gwb.die

PROBE = {
    "name": "probe",
    "exec": "agora-bus-probe",
    "args": [],
    "after": ["auth"],
    "url": "http://127.0.0.1:${AGORA_PROBE_PORT}",
    "ready": "http://127.0.0.1:${AGORA_PROBE_PORT}/readyz",
    "env": {
        "AGORA_LISTEN": "127.0.0.1:${AGORA_PROBE_PORT}",
        "AGORA_DB": "sqlite:${AGORA_VAR}/data/probe.db",
        "AGORA_WORKERS": "1",
        "AGORA_ISSUERS": "${AGORA_ISSUER}=file:${AGORA_VAR}/keys/auth/jwks.json",
        "AGORA_AUDIENCE": "agora",
        "AGORA_BUS": "${AGORA_BUS}",
        "AGORA_PROBE_PATTERN": "probe.bench.*",
    },
}


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def one_round(args, token, probe_port, db_path, round_no):
    before = count(db_path)
    st, body = authb.call(probe_port, "POST", "/probe/emit", {"count": args.events, "batch": args.batch},
                          token=token, timeout=600)
    if st != 200:
        die(f"POST /probe/emit answered {st}: {body}")
    deadline = time.monotonic() + args.timeout
    while count(db_path) < before + args.events:
        if time.monotonic() > deadline:
            die(f"only {count(db_path) - before} of {args.events} events applied within {args.timeout} s")
        time.sleep(0.1)
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT event_ms, applied_at FROM probe_effects ORDER BY rowid "
                            f"LIMIT -1 OFFSET {before}").fetchall()
    finally:
        conn.close()
    first = min(r[0] for r in rows)
    last = max(r[1] for r in rows)
    lat = sorted(r[1] - r[0] for r in rows)
    rate = len(rows) / max(0.001, (last - first) / 1000.0)
    r = {"events": len(rows), "events_per_s": rate, "p50_ms": percentile(lat, 0.5),
         "p99_ms": percentile(lat, 0.99), "max_ms": lat[-1]}
    say(f"  round {round_no}: {r['events']} events, {rate:,.0f} events/s, latency p50 {r['p50_ms']} ms, "
        f"p99 {r['p99_ms']} ms, max {r['max_ms']} ms")
    return r


def count(db_path):
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM probe_effects").fetchone()[0]
    finally:
        conn.close()


def run_driver(args, driver, workdir):
    broker = None
    extra = {}
    if driver == "amqp":
        from support.rabbitmq import RabbitMQ
        broker = RabbitMQ()
        broker.start()
        extra["AGORA_BUS"] = broker.url
    probe_port = authb.free_port()
    extra["AGORA_PROBE_PORT"] = str(probe_port)
    with open(os.path.join(REPO, "config", "platform.yaml")) as f:
        doc = yaml.safe_load(f)
    doc["processes"].insert(len(doc["processes"]) - 1, PROBE)
    config = os.path.join(workdir, "platform-bus.yaml")
    with open(config, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    plat = authb.Platform(args, workdir, extra_env=extra, config=config)
    try:
        plat.start()
        token = plat.agora("token", "--user", "bench", "--roles", "admin").strip()
        db_path = os.path.join(workdir, "var", "data", "probe.db")
        return [one_round(args, token, probe_port, db_path, i + 1) for i in range(args.rounds)]
    finally:
        plat.stop()
        if broker is not None:
            broker.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("AGORA_BIN", os.path.join(REPO, "build", "bin")),
                    help="directory of the agora binaries")
    ap.add_argument("--drivers", default="local,amqp", help="comma-separated: local, amqp")
    ap.add_argument("--events", type=int, default=20000, help="events per round")
    ap.add_argument("--batch", type=int, default=100, help="events per emitting transaction")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per driver")
    ap.add_argument("--workers", type=int, default=2, help="workers of every process")
    ap.add_argument("--timeout", type=int, default=300, help="seconds for one round to drain")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = ap.parse_args()
    drivers = [d for d in args.drivers.split(",") if d]
    if not drivers or any(d not in ("local", "amqp") for d in drivers):
        ap.error("--drivers takes local and/or amqp")
    if not 1 <= args.events <= 1000000 or not 1 <= args.batch <= 10000 or not 1 <= args.rounds <= 20:
        ap.error("--events 1..1000000, --batch 1..10000, --rounds 1..20")
    args.bin = os.path.realpath(args.bin)
    for exe in ("agora", "agora-auth", "agora-bus-probe", "agora-gateway"):
        if not os.access(os.path.join(args.bin, exe), os.X_OK):
            die(f"no {exe} in {args.bin}: run `make build` (or pass --bin)")
    if "amqp" in drivers and not os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server"):
        die("rabbitmq-server is not installed: run scripts/deps")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, gwb.on_signal)
    workdir = tempfile.mkdtemp(prefix="agora-bench-bus.")
    gwb.tmpdir = None if args.keep else workdir
    say("== bus: events/s from outbox to handler, and each event's latency ==")
    say(f"command: bench/bus.py {' '.join(sys.argv[1:])}")
    say(f"{args.events} events per round, {args.batch} per transaction, {args.rounds} rounds; scratch {workdir}")
    results = {}
    for driver in drivers:
        say(f"\n-- {driver} --")
        sub = os.path.join(workdir, driver)
        os.makedirs(sub)
        rounds = run_driver(args, driver, sub)
        med = {k: statistics.median(r[k] for r in rounds) for k in ("events_per_s", "p50_ms", "p99_ms", "max_ms")}
        results[driver] = {"rounds": rounds, "median": med}
    rows = [[d, f"{r['median']['events_per_s']:,.0f}", f"{r['median']['p50_ms']:.0f} ms",
             f"{r['median']['p99_ms']:.0f} ms", gwb.verdict(r["median"]["events_per_s"] >= 5000)]
            for d, r in results.items()]
    say("\n" + gwb.table(["driver", "events/s (median)", "latency p50", "latency p99", ">= 5,000/s"], rows))
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
