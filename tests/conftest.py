"""Shared fixtures: a private JACK dummy server, a ``stylesynth serve`` subprocess, and a real OSC client.

Everything here starts real programs (``jackd``, ``stylesynth serve``) and talks to them over real sockets; nothing
is mocked. Fixtures are meant for every test module (OSC, MIDI, playback):

* ``jack_server`` -- ``jackd -R -d dummy -r 48000 -p 256`` under a unique server name; sets ``JACK_DEFAULT_SERVER``
  and ``JACK_NO_START_SERVER=1`` in ``os.environ`` for the module, so in-process JACK clients (JACK-Client,
  python-rtmidi's JACK API, PortAudio) and subprocesses find it. Skips if ``jackd`` is not installed.
* ``start_server`` -- a factory: ``start_server("--no-audio", model="gaver")`` runs ``stylesynth serve`` on free
  ports, waits until it answers ``/version``, and stops it (SIGTERM) at teardown.
* ``OscClient`` -- a UDP socket with python-osc encoding: ``send``, ``send_raw``, ``recv``, ``request``.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

REPO = Path(__file__).resolve().parents[1]
STYLESYNTH = Path(sys.executable).with_name("stylesynth")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread for every test: on a busy 2-core machine two threads were 2-30x slower for this project's
    small convolutions (training steps, the encoder, rendering), and the suite shares the machine with jackd/pd."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------------------
# Ports and OSC
# ---------------------------------------------------------------------------------------------------------------

def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free right now on 127.0.0.1 (UDP by default)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class OscClient:
    """A real OSC client: its own UDP socket on 127.0.0.1, python-osc for encoding and decoding.

    Parameters
    ----------
    port : int
        The server's UDP port.
    bind_port : int
        Our port (0: any free one). Tests of ``--reply-port`` bind a second client on the reply port.
    """

    def __init__(self, port: int, bind_port: int = 0, host: str = "127.0.0.1"):
        self.target = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind(("127.0.0.1", bind_port))
        self.port = self.sock.getsockname()[1]

    def send(self, address: str, *args) -> None:
        self.sock.sendto(encode(address, *args), self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def recv(self, timeout: float = 2.0) -> tuple[str, list] | None:
        """The next message, or ``None`` after ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65536)
        except socket.timeout:
            return None
        msg = OscMessage(data)
        return msg.address, list(msg.params)

    def wait_for(self, address: str, timeout: float = 5.0, match=None) -> list | None:
        """Arguments of the next message to ``address`` (whose args satisfy ``match``), skipping others."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            got = self.recv(remaining)
            if got is None:
                return None
            if got[0] == address and (match is None or match(got[1])):
                return got[1]
        return None

    def request(self, address: str, *args, reply: str, timeout: float = 5.0) -> list | None:
        self.send(address, *args)
        return self.wait_for(reply, timeout)

    def drain(self, quiet: float = 0.05) -> list[tuple[str, list]]:
        """Everything received until ``quiet`` seconds pass with nothing new."""
        out = []
        while (got := self.recv(quiet)) is not None:
            out.append(got)
        return out

    def query(self, name: str, timeout: float = 3.0):
        """Value of parameter ``name`` via ``/stylesynth/q/<name>``."""
        args = self.request(f"/stylesynth/q/{name}", reply=f"/stylesynth/{name}", timeout=timeout)
        assert args is not None, f"no reply to /stylesynth/q/{name}"
        return args[0]

    def sync(self, token: int = 1, timeout: float = 20.0) -> None:
        """Return once the server has applied everything sent before (and rendered it)."""
        assert self.request("/sync", token, reply="/synced", timeout=timeout) == [token], "no /synced"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def osc_client_factory():
    clients = []

    def make(port: int, bind_port: int = 0) -> OscClient:
        client = OscClient(port, bind_port)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


# ---------------------------------------------------------------------------------------------------------------
# JACK
# ---------------------------------------------------------------------------------------------------------------

class JackServer:
    def __init__(self, name: str, rate: int, period: int, proc: subprocess.Popen):
        self.name, self.rate, self.period, self.proc = name, rate, period, proc

    @property
    def env(self) -> dict:
        return dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")

    def ports(self, connections: bool = False) -> str:
        args = ["jack_lsp", "-c"] if connections else ["jack_lsp"]
        return subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=5).stdout


def start_jackd(rate: int = 48000, period: int = 256) -> JackServer:
    """Start a private ``jackd`` with the dummy driver and wait until ``system:playback_1`` exists."""
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        pytest.skip("jackd is not installed (apt-get install jackd2)")
    name = f"stylesynth-test-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    proc = subprocess.Popen(["jackd", "-n", name, "-R", "-d", "dummy", "-r", str(rate), "-p", str(period)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = JackServer(name, rate, period, proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jackd exited: {proc.stderr.read().decode(errors='replace')[-500:]}")
        if "system:playback_1" in server.ports():
            return server
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("jackd did not create its ports within 10 s")


def stop_jackd(server: JackServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="module")
def jack_server():
    server = start_jackd()
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    os.environ["JACK_NO_START_SERVER"] = "1"
    yield server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    stop_jackd(server)


# ---------------------------------------------------------------------------------------------------------------
# stylesynth serve
# ---------------------------------------------------------------------------------------------------------------

class ServerProcess:
    """A running ``stylesynth serve``: its ports, log file and process."""

    def __init__(self, proc: subprocess.Popen, port: int, oscquery_port: int, log_path: Path, cache_dir: Path,
                 presets_dir: Path):
        self.proc, self.port, self.oscquery_port = proc, port, oscquery_port
        self.log_path, self.cache_dir, self.presets_dir = log_path, cache_dir, presets_dir

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def launch_server(tmp_path: Path, *args: str, model: str = "gaver", env: dict | None = None,
                  ready_timeout: float = 60.0, probe_port: int = 0, zeroconf: bool = False) -> ServerProcess:
    """Start ``stylesynth serve --model MODEL ARGS`` on free ports; return once it answers ``/version``
    (listened for on ``probe_port``: pass the ``--reply-port`` if the arguments set one). Zeroconf stays off
    unless asked for: dozens of test servers announcing on loopback would only be noise for the one test that
    browses."""
    port, query_port = free_port(), free_port(socket.SOCK_STREAM)
    cache_dir, presets_dir = tmp_path / "clips", tmp_path / "presets"
    log_path = tmp_path / f"serve-{port}.log"
    cmd = [str(STYLESYNTH), "--log-level", "info", "serve", "--model", model, "--osc-port", str(port),
           "--oscquery-port", str(query_port), "--cache-dir", str(cache_dir), "--presets", str(presets_dir), *args]
    if not zeroconf and "--no-zeroconf" not in args:
        cmd.append("--no-zeroconf")
    env = dict(env or os.environ)
    env.setdefault("NUMBA_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    server = ServerProcess(proc, port, query_port, log_path, cache_dir, presets_dir)
    probe = OscClient(port, bind_port=probe_port)
    try:
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"stylesynth serve exited with {proc.returncode}:\n{server.log[-2000:]}")
            if probe.request("/version", reply="/version.reply", timeout=0.2) is not None:
                return server
        server.stop()
        raise RuntimeError(f"stylesynth serve did not answer /version within {ready_timeout} s:\n{server.log}")
    finally:
        probe.close()


def module_server(tmp_path_factory, name: str):
    """Body of a module-scoped ``server`` fixture (``yield from module_server(tmp_path_factory, "osc")``): one
    headless gaver server for the module, which must stop cleanly and log no traceback."""
    server = launch_server(tmp_path_factory.mktemp(name), "--no-audio")
    yield server
    assert server.stop() == 0, server.log[-2000:]
    assert "Traceback" not in server.log, server.log[-3000:]


@pytest.fixture
def udp(server):
    """A python-osc client of the module's ``server``."""
    client = OscClient(server.port)
    yield client
    client.close()


@pytest.fixture
def start_server(tmp_path):
    """Factory fixture: ``server = start_server("--no-audio")``; every server started is stopped afterwards."""
    servers = []

    def start(*args: str, model: str = "gaver", env: dict | None = None, probe_port: int = 0) -> ServerProcess:
        server = launch_server(tmp_path, *args, model=model, env=env, probe_port=probe_port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
