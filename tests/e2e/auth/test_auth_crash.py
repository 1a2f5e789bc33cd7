"""kill -9 of agora-auth while registrations and logins run: the supervisor restarts it, and no
request after the restart sees inconsistent data (no half user, nothing lost that was answered).
"""

import http.client
import os
import signal
import threading
import time
import urllib.parse

from authclient import PREFIX, strong_password, unique_email

WAIT = 90.0  # bound for each phase (ASan builds restart slowly)


class _Loop(threading.Thread):
    """Registers and logs in fresh users until stopped; records what each request got."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.stop = threading.Event()
        self.records = []  # dicts: email, password, register, login
        self.errors = []
        self.lock = threading.Lock()

    def created(self):
        with self.lock:
            return sum(1 for r in self.records if r["register"] == 201)

    def run(self):
        try:
            while not self.stop.is_set():
                rec = {"email": unique_email("k9"), "password": strong_password(), "register": None, "login": None}
                with self.lock:
                    self.records.append(rec)
                rec["register"] = self._try(
                    "POST", f"{PREFIX}/register", {"email": rec["email"], "password": rec["password"], "name": "k9"}
                )
                if rec["register"] != 201:
                    time.sleep(0.2)  # the service is down: do not pile up thousands of records
                    continue
                rec["login"] = self._try("POST", f"{PREFIX}/login", {"email": rec["email"], "password": rec["password"]})
        except BaseException as e:  # an assertion of the client (schema, problem+json...)
            self.errors.append(e)

    def _try(self, method, path, body):
        try:
            return self.client.call(method, path, json=body, allow_5xx=True).status
        except (OSError, http.client.HTTPException) as e:
            return f"no answer: {type(e).__name__}: {e}"


def _wait(what, predicate, platform):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{platform.logs(80)}")


def test_kill_9_auth_mid_run(client, platform, admin):
    before = platform.process("auth")
    old_pid, old_restarts = before["pid"], before.get("restarts", 0)
    assert before.get("ready") is True, before
    # a session made before the crash must survive it
    survivor = client.new_user()

    loop = _Loop(client)
    loop.start()
    try:
        _wait("three registrations before the kill", lambda: loop.created() >= 3 or loop.errors, platform)
        assert not loop.errors, loop.errors
        os.kill(old_pid, signal.SIGKILL)

        def restarted():
            p = platform.process("auth")
            if p.get("ready") is True and p.get("pid") not in (None, old_pid) and p.get("restarts") == old_restarts + 1:
                return p
            return None

        after = _wait("the supervisor to restart auth (ready, new pid, restarts + 1)", restarted, platform)
        created_at_restart = loop.created()
        _wait("three registrations after the restart", lambda: loop.created() >= created_at_restart + 3 or loop.errors, platform)
    finally:
        loop.stop.set()
        loop.join(timeout=60)
    assert not loop.is_alive(), "the register/login loop did not stop"
    assert not loop.errors, loop.errors
    assert after["pid"] != old_pid

    answered = [r for r in loop.records if r["register"] == 201]
    unanswered = [r for r in loop.records if not isinstance(r["register"], int) or r["register"] >= 500]
    refused = [r for r in loop.records if r not in answered and r not in unanswered]
    assert not refused, f"fresh registrations were refused (a replayed POST?): {refused}"
    assert len(answered) >= 6, loop.records
    print(f"kill -9: {len(answered)} registers answered 201, {len(unanswered)} without an answer: "
          f"{sorted(set(str(r['register']) for r in unanswered))}")

    # every answered register is a complete user: it logs in, and exists exactly once
    for rec in answered:
        client.login(rec["email"], rec["password"])
        q = urllib.parse.urlencode({"q": rec["email"]})
        r = client.call("GET", f"{PREFIX}/users?{q}", token=admin["access"])
        assert r.status == 200 and r.body["total"] == 1, (rec, r.body)
    # every unanswered one exists completely or not at all
    for rec in unanswered:
        r = client.call("POST", f"{PREFIX}/login", json={"email": rec["email"], "password": rec["password"]})
        if r.status == 200:
            continue
        assert r.status == 401, (rec, r)
        again = client.call("POST", f"{PREFIX}/register", json={"email": rec["email"], "password": rec["password"], "name": "k9"})
        assert again.status == 201, f"a half user: login refused but the e-mail is taken: {rec} {again}"
        client.login(rec["email"], rec["password"])

    # tokens and sessions from before the crash still work (keys and database persisted)
    me = client.me(survivor["access"])
    assert me.status == 200 and me.body["id"] == survivor["user"]["id"], me
    r = client.call("POST", f"{PREFIX}/refresh", json={"refresh_token": survivor["refresh"]})
    assert r.status == 200, r
    assert client.me(admin["access"], direct=True).status == 200
