"""Throw-away PostgreSQL clusters for end-to-end tests.

Usage::

    from support.postgres import PostgresCluster

    with PostgresCluster() as pg:                 # initdb + start, on a free port
        url = pg.create_database("auth")          # postgres://agora@127.0.0.1:PORT/auth
        ... start the service with AGORA_DB=url ...
    # stopped, and its directory removed, however the block ends

or as a pytest fixture::

    @pytest.fixture(scope="session")
    def postgres():
        with PostgresCluster() as pg:
            yield pg

What it does: ``initdb -A trust -U agora -E UTF8`` in a fresh temporary directory (as the
``postgres`` user when the tests run as root, since PostgreSQL refuses to run as root), then
``pg_ctl start`` listening on 127.0.0.1 on a free port, with its unix socket in that directory
(never in /var/run/postgresql), and waits until ``pg_isready`` answers. Durability is switched
off (fsync, full_page_writes, synchronous_commit): the data is thrown away anyway.

Every connection is made as the superuser ``agora`` without a password (trust), over TCP to
127.0.0.1 -- which is what ``url()`` returns, ready for ``kit_db_open`` / ``AGORA_DB``.

Failures raise ``PostgresError`` with the tail of the server log, which lives at
``cluster.log_path`` while the cluster exists. ``stop()`` is idempotent and also runs at
interpreter exit for a cluster that was never stopped, so no postmaster outlives the tests.
The binaries come from ``PGBIN`` (default ``/usr/lib/postgresql/15/bin``).
"""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DEFAULT_PGBIN = "/usr/lib/postgresql/15/bin"
START_TIMEOUT = 60.0  # seconds for the server to accept connections
STOP_TIMEOUT = 30.0  # seconds for a fast shutdown before an immediate one
USER = "agora"

_DBNAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """A cluster could not be created, started, used or stopped; the message has the log."""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """One throw-away PostgreSQL cluster: ``start()``, ``url(dbname)``,
    ``create_database(name)``, ``stop()``; a context manager doing start and stop.

    Attributes once started: ``port`` (TCP, on 127.0.0.1), ``dir`` (the temporary directory:
    data/, the unix socket, server.log), ``log_path``.
    """

    def __init__(self, pgbin=None):
        self.pgbin = pgbin or os.environ.get("PGBIN", DEFAULT_PGBIN)
        self.port = None
        self.dir = None
        self.log_path = None
        self._started = False
        self._as_root = os.geteuid() == 0

    # -- lifecycle --

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        return False

    def start(self):
        """Creates and starts the cluster; returns self. Raises PostgresError (the cluster is
        then already cleaned up) when a step fails."""
        if self.dir is not None:
            raise PostgresError("this cluster was already started")
        for tool in ("initdb", "pg_ctl", "pg_isready", "psql"):
            if not os.access(os.path.join(self.pgbin, tool), os.X_OK):
                raise PostgresError(f"{self.pgbin}/{tool} not found (install postgresql or set PGBIN)")
        self.dir = tempfile.mkdtemp(prefix="agora-pg-")
        self.log_path = os.path.join(self.dir, "server.log")
        atexit.register(self.stop)
        try:
            if self._as_root:
                shutil.chown(self.dir, user="postgres", group="postgres")
            self._run_pg(
                "initdb", "-D", self._data, "-A", "trust", "-U", USER, "-E", "UTF8",
                "--locale=C.UTF-8", "--no-sync", what="initdb")
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stops the server (fast, then immediate, then SIGKILL) and removes the directory.
        Safe to call any number of times, and after a failed start."""
        if self.dir is None:
            return
        try:
            if self._started:
                self._stop_server()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            self._started = False
            atexit.unregister(self.stop)

    # -- use --

    def url(self, dbname="postgres"):
        """The libpq URL of database dbname on this cluster (user agora, no password)."""
        self._check_running()
        return f"postgres://{USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name):
        """Creates database name (lower-case letters, digits, _) and returns its url()."""
        if not _DBNAME.match(name):
            raise ValueError(f"database name {name!r} is not [a-z_][a-z0-9_]*")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name):
        """Drops database name, ending its sessions first."""
        if not _DBNAME.match(name):
            raise ValueError(f"database name {name!r} is not [a-z_][a-z0-9_]*")
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def psql(self, sql, dbname="postgres"):
        """Runs sql through psql (as agora, over the unix socket) and returns its stdout;
        PostgresError on failure."""
        self._check_running()
        return self._run_pg(
            "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.dir, "-p",
            str(self.port), "-U", USER, "-d", dbname, "-c", sql, what=f"psql {sql!r}")

    def log_tail(self, lines=50):
        """The last lines of the server log ("" when there is none)."""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except (OSError, TypeError):
            return ""

    # -- internals --

    @property
    def _data(self):
        return os.path.join(self.dir, "data")

    def _check_running(self):
        if not self._started:
            raise PostgresError("the cluster is not running (call start() first)")

    def _cmd(self, tool, *args):
        cmd = [os.path.join(self.pgbin, tool), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if self._as_root else cmd

    def _run_pg(self, tool, *args, what, timeout=120):
        proc = subprocess.run(self._cmd(tool, *args), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise PostgresError(
                f"{what} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
                f"\n---- server log {self.log_path} ----\n{self.log_tail()}")
        return proc.stdout

    def _start_server(self):
        # The port may be taken between choosing it and the server binding it: a few tries.
        last = None
        for _ in range(5):
            self.port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                       f"-c unix_socket_directories={self.dir} -c fsync=off "
                       "-c full_page_writes=off -c synchronous_commit=off -c max_connections=100")
            try:
                # -W: do not wait here; _wait_ready polls pg_isready with its own deadline.
                self._run_pg("pg_ctl", "start", "-D", self._data, "-l", self.log_path, "-W",
                             "-o", options, what="pg_ctl start")
            except PostgresError as e:
                last = e
                continue
            self._started = True
            try:
                self._wait_ready()
                return
            except PostgresError as e:
                last = e
                self._stop_server()
                self._started = False
                if "already in use" not in self.log_tail():
                    break
        raise last

    def _wait_ready(self):
        began = time.monotonic()
        deadline = began + START_TIMEOUT
        while True:
            proc = subprocess.run(
                [os.path.join(self.pgbin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                 str(self.port), "-U", USER, "-d", "postgres"],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            if proc.returncode == 0:
                return
            # postmaster.pid appears a moment after pg_ctl returns: judge death after 2 s.
            if time.monotonic() - began > 2 and not self._postmaster_alive():
                raise PostgresError(
                    f"the server exited during start\n---- server log {self.log_path} ----\n"
                    f"{self.log_tail()}")
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"the server did not accept connections within {START_TIMEOUT:.0f} s\n"
                    f"---- server log {self.log_path} ----\n{self.log_tail()}")
            time.sleep(0.1)

    def _postmaster_pid(self):
        try:
            with open(os.path.join(self._data, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def _postmaster_alive(self):
        pid = self._postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _stop_server(self):
        for mode, timeout in (("fast", STOP_TIMEOUT), ("immediate", STOP_TIMEOUT)):
            try:
                self._run_pg("pg_ctl", "stop", "-D", self._data, "-m", mode, "-w", "-t",
                             str(int(timeout)), what=f"pg_ctl stop -m {mode}",
                             timeout=timeout + 10)
                return
            except (PostgresError, subprocess.TimeoutExpired):
                if not self._postmaster_alive():
                    return
        pid = self._postmaster_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
