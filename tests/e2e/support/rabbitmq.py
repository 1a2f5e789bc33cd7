"""Throw-away RabbitMQ brokers for end-to-end tests.

Usage::

    from support.rabbitmq import RabbitMQ

    with RabbitMQ() as mq:                 # starts a broker on a free port (~15 s)
        ... start the services with AGORA_BUS=mq.url ...
        mq.restart()                       # stop + start: durable queues and persistent
                                           # messages survive; the port stays the same
        mq.restart(hard=True)              # the same after a SIGKILL of the broker
    # stopped, its epmd ended, its directory removed, however the block ends

or as a pytest fixture::

    @pytest.fixture(scope="session")
    def rabbitmq():
        with RabbitMQ() as mq:
            yield mq

What it does: Debian's ``rabbitmq-server`` in a fresh temporary directory (mnesia, logs,
Erlang cookie), listening on 127.0.0.1 only, with ``loopback_users = none`` and no plugins,
under a random node name ``agora<random>@localhost`` with its own distribution port and its
own ``epmd`` on a free port -- started here, so that ``stop()`` ends exactly that one and
parallel runs never meet. ``url`` is ``amqp://guest:guest@127.0.0.1:PORT/``.

Failures raise ``RabbitMQError`` with the tail of the broker's log (``log_tail()``).
``stop()`` is idempotent and also runs at interpreter exit for a broker never stopped.
``RABBITMQ_BIN`` overrides ``/usr/lib/rabbitmq/bin``.
"""

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DEFAULT_BIN = "/usr/lib/rabbitmq/bin"
START_TIMEOUT = 90.0  # seconds for the broker to accept connections (it takes ~15 s)
STOP_TIMEOUT = 60.0  # seconds for rabbitmqctl stop before SIGKILL


class RabbitMQError(RuntimeError):
    """A broker could not be started, used or stopped; the message has the log's tail."""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class RabbitMQ:
    """One throw-away broker: ``start()``, ``url``, ``restart()``, ``ctl(...)``, ``stop()``;
    a context manager doing start and stop.

    Attributes once started: ``port`` (AMQP, on 127.0.0.1), ``dir`` (the temporary
    directory), ``node`` (the Erlang node name), ``log_path`` (the broker's stdout/stderr).
    """

    def __init__(self, bin_dir=None):
        self.bin_dir = bin_dir or os.environ.get("RABBITMQ_BIN", DEFAULT_BIN)
        self.port = None
        self.dir = None
        self.node = None
        self.log_path = None
        self._dist_port = None
        self._epmd_port = None
        self._epmd = None  # Popen of our epmd
        self._server = None  # Popen of rabbitmq-server (leader of its own process group)

    # -- lifecycle --

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        return False

    def start(self):
        """Creates the directory, starts epmd and the broker and waits until it accepts
        connections; returns self. Raises RabbitMQError (everything already cleaned up)."""
        if self.dir is not None:
            raise RabbitMQError("this broker was already started")
        for tool in ("rabbitmq-server", "rabbitmqctl"):
            if not os.access(os.path.join(self.bin_dir, tool), os.X_OK):
                raise RabbitMQError(
                    f"{self.bin_dir}/{tool} not found (install rabbitmq-server or set RABBITMQ_BIN)")
        if shutil.which("epmd") is None:
            raise RabbitMQError("epmd not found (it comes with erlang-base)")
        self.dir = tempfile.mkdtemp(prefix="agora-amqp-")
        self.log_path = os.path.join(self.dir, "server.log")
        atexit.register(self.stop)
        try:
            self._epmd_port = _free_port()
            self._epmd = subprocess.Popen(
                ["epmd", "-port", str(self._epmd_port)], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
                f.write("[].\n")
            # A port may be taken between choosing and binding it: a few tries.
            last = None
            for _ in range(3):
                self.port = _free_port()
                self._dist_port = _free_port()
                self.node = f"agora{os.getpid()}-{secrets.token_hex(4)}@localhost"
                with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
                    f.write(f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n")
                try:
                    self._start_server()
                    return self
                except RabbitMQError as e:
                    last = e
                    shutil.rmtree(os.path.join(self.dir, "mnesia"), ignore_errors=True)
            raise last
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """Stops the broker (rabbitmqctl stop, then SIGKILL), ends our epmd and removes the
        directory. Safe to call any number of times, and after a failed start."""
        if self.dir is None:
            return
        try:
            self._stop_server()
        finally:
            if self._epmd is not None:
                self._epmd.terminate()
                try:
                    self._epmd.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._epmd.kill()
                    self._epmd.wait()
                self._epmd = None
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            atexit.unregister(self.stop)

    def restart(self, hard=False):
        """Stops the broker (hard: SIGKILL, as a crash; otherwise rabbitmqctl stop) and starts
        it again with the same directory, node name and port, waiting until it accepts
        connections. Durable queues and confirmed persistent messages survive."""
        self._check_running()
        if hard:
            self._kill_server()
        else:
            self._stop_server()
        self._start_server()

    # -- use --

    @property
    def url(self):
        """The bus URL: amqp://guest:guest@127.0.0.1:PORT/ (the default vhost)."""
        self._check_running()
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args, timeout=60):
        """Runs rabbitmqctl args against this broker (e.g. ``ctl("list_queues", "name",
        "messages")``) and returns its stdout; RabbitMQError on failure."""
        self._check_running()
        proc = subprocess.run([os.path.join(self.bin_dir, "rabbitmqctl"), "-q", *args],
                              env=self._env(), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RabbitMQError(f"rabbitmqctl {' '.join(args)} failed (exit {proc.returncode}):"
                                f"\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def log_tail(self, lines=50):
        """The last lines of the broker's output and of its own log ("" when there is none)."""
        out = []
        paths = [self.log_path]
        if self.dir and self.node:
            paths.append(os.path.join(self.dir, "log", f"{self.node}.log"))
        for path in paths:
            try:
                with open(path, errors="replace") as f:
                    out.append(f"---- {path} ----\n" + "".join(f.readlines()[-lines:]))
            except (OSError, TypeError):
                pass
        return "\n".join(out)

    # -- internals --

    def _check_running(self):
        if self._server is None:
            raise RabbitMQError("the broker is not running (call start() first)")

    def _env(self):
        env = dict(os.environ)
        env.update({
            "HOME": self.dir,
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq"),  # no .conf suffix
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "ERL_EPMD_PORT": str(self._epmd_port),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "pid"),
        })
        return env

    def _start_server(self):
        with open(self.log_path, "ab") as log:
            # Its own session: the whole broker (script, beam, helpers) is one process group.
            self._server = subprocess.Popen(
                [os.path.join(self.bin_dir, "rabbitmq-server")], env=self._env(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not _port_open(self.port):
            if self._server.poll() is not None:
                self._server = None
                raise RabbitMQError(f"the broker exited during start\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self._kill_server()
                raise RabbitMQError(
                    f"the broker did not accept connections within {START_TIMEOUT:.0f} s\n"
                    f"{self.log_tail()}")
            time.sleep(0.1)

    def _stop_server(self):
        if self._server is None:
            return
        if self._server.poll() is None:
            try:
                subprocess.run([os.path.join(self.bin_dir, "rabbitmqctl"), "stop"],
                               env=self._env(), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._kill_server()

    def _kill_server(self):
        """SIGKILL to the broker's process group (a no-op when it is gone), reaps the launcher
        and waits until the VM is gone too (its listener closed, its name out of epmd): the
        VM is the launcher's child and may outlive it for a moment."""
        if self._server is None:
            return
        try:
            os.killpg(self._server.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._server.wait()
        self._server = None
        short_name = self.node.split("@")[0]
        deadline = time.monotonic() + STOP_TIMEOUT
        while _port_open(self.port) or short_name in self._epmd_names():
            if time.monotonic() > deadline:
                raise RabbitMQError(f"the broker's VM outlived SIGKILL\n{self.log_tail()}")
            time.sleep(0.1)

    def _epmd_names(self):
        """The output of epmd -names for our epmd ("" when it does not answer)."""
        if self._epmd is None:
            return ""
        proc = subprocess.run(["epmd", "-port", str(self._epmd_port), "-names"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30)
        return proc.stdout
