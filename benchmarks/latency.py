"""Benchmark: OSC message -> first changed sample at a JACK output, and -> new-audio notification.

Three real processes: a private ``jackd`` (dummy driver, 48 kHz, 256-frame periods, realtime), ``stylesynth serve``
playing into it, and this process, which sends OSC, records the server's output port with a JACK client of its
own (JACK-Client) and receives ``/stylesynth/audio/file`` notifications (``/notify 1``).

How the first changed sample is found: every clip is announced with its wav, so the benchmark knows exactly what
the player must output. It replays the recording with the server's own mixer (``Player.clone``): starting from a
stretch where one clip plays alone (its loop position found by least squares), at every JACK period boundary it
tries "no swap" and "swap to the next announced clip(s)" and keeps the one that equals the recording sample for
sample. That gives the boundary at which each clip started fading in, even when swaps overlap a running crossfade.
Latency is that boundary minus the JACK frame time at which the message was sent. This is the sample at the
server's output port; a sound card adds its own buffering (2 periods with the dummy driver, 10.7 ms).

Measured:

* baseline: a ``gain`` change (no regeneration): the floor of the transport and the block clock;
* at rest: one ``seed`` change with the server idle;
* storm: a slider moved at 200 messages/s for a while, then one final message: its latency includes waiting for
  the render in progress (latest wins), its own render and any crossfade still running. The storm's own
  messages are measured too (every 4th, followed by ``/sync``, at random phases of the renders): a message folded
  into a later render (coalesced) counts until that render is ready (``/synced``) and until that render's first
  sample at the output (the first replayed swap after its ``/synced``, see :func:`storm_messages`). Coalesced
  regenerations and xruns are counted.

The benchmark's own work must not move the figures. Its JACK recorder is a Python callback that needs this
process's GIL every period, so nothing heavy runs here while it records: every recording is analysed after the last
storm, once the recorder has stopped (replaying a storm here between storms held the GIL long enough for the
recorder to miss its period: a JACK xrun, counted by the server too). And ``/synced`` times are the kernel's arrival
stamps of the reply (``SO_TIMESTAMPNS``), not the moment the receiving thread got the CPU and the GIL back (2-11 ms
later while the server kept both cores busy, which matched a storm message to the clip after its own).

Usage::

    python benchmarks/latency.py --model hits          # full run (~2 min)
    python benchmarks/latency.py --quick               # < 1 min
    python benchmarks/latency.py --model gaver --json out.json
    python benchmarks/latency.py --quick --server-cores 1   # the server pinned to one core
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import queue  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402,F401  (imported here: a first import inside the OSC thread takes seconds)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "server"))

from pythonosc.osc_message import OscMessage  # noqa: E402
from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402

from stylesynth.playback import Player, PreparedClip, resample_circular  # noqa: E402

RATE, PERIOD = 48000, 256
GOAL_P99_MS = 30.0
SYNC_EVERY = 4     # every 4th storm message is followed by /sync and measured (more would load the server more)
SYNC_SLACK = 1.0   # ms: a render's /synced leaves the server this long after its hand-over at most
STORM_RATE = 200.0
STYLESYNTH = Path(sys.executable).with_name("stylesynth")


# ---------------------------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------------------------

def start_jackd() -> tuple[subprocess.Popen, dict]:
    if shutil.which("jackd") is None:
        raise SystemExit("jackd is not installed (apt-get install jackd2)")
    name = f"stylesynth-bench-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=name)
    proc = subprocess.Popen(["jackd", "-n", name, "-R", "-d", "dummy", "-r", str(RATE), "-p", str(PERIOD)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while "system:playback_1" not in _jack_ports(env):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("jackd did not start")
        time.sleep(0.02)
    os.environ.update(JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=name)
    return proc, env


def _jack_ports(env: dict) -> str:
    return subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True).stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_cpus(cores: int | None) -> set[int] | None:
    """The first ``cores`` CPUs this process may use (``None``: all of them, no pinning)."""
    if cores is None:
        return None
    mine = sorted(os.sched_getaffinity(0))
    if not 1 <= cores <= len(mine):
        raise SystemExit(f"--server-cores {cores}: this process may use {len(mine)} CPU(s)")
    return set(mine[:cores])


def start_server(model: str, env: dict, workdir: Path,
                 cpus: set[int] | None = None) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    cache = workdir / "clips"
    log = open(workdir / "serve.log", "wb")
    # Pinned before exec, so the server sees one core as a one-core machine would show it (its affinity mask).
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen([str(STYLESYNTH), "serve", "--model", model, "--osc-port", str(port),
                             "--oscquery-port", "0", "--cache-dir", str(cache), "--presets", str(workdir),
                             "--block-size", str(PERIOD)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=pin)
    deadline = time.monotonic() + 600
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    probe.settimeout(0.3)
    version = OscMessageBuilder("/version").build().dgram
    try:
        while True:  # ready when it answers /version (after its first render) and its JACK ports exist
            if proc.poll() is not None:
                raise SystemExit(f"stylesynth serve exited:\n{(workdir / 'serve.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise SystemExit("stylesynth serve did not become ready")
            probe.sendto(version, ("127.0.0.1", port))
            try:
                probe.recvfrom(65536)
                break
            except socket.timeout:
                continue
    finally:
        probe.close()
    while "stylesynth:out_0" not in _jack_ports(env):
        time.sleep(0.05)
    return proc, port, cache


# ---------------------------------------------------------------------------------------------------------------
# Recording and OSC
# ---------------------------------------------------------------------------------------------------------------

class Recorder:
    """Records ``stylesynth:out_0`` into a buffer indexed by JACK frame time (``frame - base``)."""

    def __init__(self, seconds: float):
        import jack

        self.jack = jack
        self.client = jack.Client("latency-recorder", no_start_server=True)
        self.buffer = np.zeros(int(seconds * RATE), dtype=np.float32)
        self.base = None
        self.last = 0
        self.xruns = 0
        self.port = self.client.inports.register("in")
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()
        self._active = True
        for _ in range(200):
            try:
                self.client.connect("stylesynth:out_0", self.port)
                break
            except jack.JackError:
                time.sleep(0.05)

    def _process(self, frames: int) -> None:
        start = self.client.last_frame_time
        if self.base is None:
            self.base = start
        i = start - self.base
        if 0 <= i and i + frames <= len(self.buffer):
            self.buffer[i:i + frames] = self.port.get_array()
            self.last = i + frames

    def _xrun(self, delay: float) -> None:
        self.xruns += 1

    def now(self) -> int:
        """Current position in the buffer (JACK's estimate of the frame being played)."""
        return self.client.frame_time - self.base

    def wait_until(self, index: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.last < index and time.monotonic() < deadline:
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop recording (the buffer stays): nothing the analysis does can make the recorder miss a period."""
        if self._active:
            self.client.deactivate()
            self._active = False

    def close(self) -> None:
        self.stop()
        self.client.close()


def engine_mode(log: str) -> str:
    """How the server said it renders (its 'rendering ...' log line), or that it did not say (an older server)."""
    lines = log.splitlines()
    if any("rendering on one thread" in line for line in lines):
        return "one thread"
    if not any("rendering in two stages" in line for line in lines):
        return "not logged (a server from before the pipeline: one worker)"
    turns = sum("render stages take turns" in line for line in lines)
    again = sum("render stages overlap again" in line for line in lines)
    return f"pipeline (stages took turns {turns}x, overlapped again {again}x)" if turns else "pipeline"


# Python's socket module does not export it; 35 on Linux's common architectures (asm-generic), whose control message
# (SCM_TIMESTAMPNS, the same number) carries a struct timespec.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)


def kernel_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each datagram with its arrival time (Linux); False where it cannot."""
    if SO_TIMESTAMPNS is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return True
    except OSError:
        return False


def arrival_time(ancillary: list) -> float:
    """``time.perf_counter()`` of a datagram's arrival: the kernel's stamp (CLOCK_REALTIME, moved onto the
    perf_counter clock through a reading of both taken now) or, without one, now."""
    before = time.perf_counter()
    realtime = time.time()
    now = time.perf_counter()
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) in (8, 16):
            sec, nsec = struct.unpack("qq" if len(payload) == 16 else "ii", payload)
            return min(now, (before + now) / 2 + (sec + nsec * 1e-9 - realtime))
    return now


class Osc:
    """OSC client: one thread receives (``/synced`` times are measurements: each reply carries the kernel's
    arrival stamp, see :func:`arrival_time`), a second reads each announced wav at once (the server prunes old
    ones). Clips are resampled to the JACK rate only when the analysis asks (:meth:`clip`), after the recording:
    the benchmark must not take CPU from the server it measures, nor the GIL from its own recorder."""

    def __init__(self, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.stamped = kernel_timestamps(self.sock)
        self.target = ("127.0.0.1", port)
        self.clips: dict[int, tuple[np.ndarray, int]] = {}   # seq -> (samples, rate) as announced
        self._resampled: dict[int, np.ndarray] = {}
        self.synced: dict = {}
        self.replies: list = []
        self.running = True
        self._files: queue.Queue = queue.Queue()
        self.threads = [threading.Thread(target=self._run, daemon=True),
                        threading.Thread(target=self._read_files, daemon=True)]
        for thread in self.threads:
            thread.start()

    def send(self, address: str, *args) -> None:
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        self.sock.sendto(b.build().dgram, self.target)

    def _run(self) -> None:
        while self.running:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
            except (socket.timeout, OSError):
                continue
            t = arrival_time(ancillary)
            msg = OscMessage(data)
            if msg.address == "/stylesynth/audio/file":
                self._files.put(msg.params)
            elif msg.address == "/synced":
                self.synced[msg.params[0]] = t
            else:
                self.replies.append((t, msg.address, msg.params))

    def _read_files(self) -> None:
        import soundfile as sf

        while self.running:
            try:
                path, seq = self._files.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.clips[seq] = sf.read(path, dtype="float32")
            except Exception as exc:  # pruned already: that clip cannot be checked
                print(f"could not read clip {seq}: {exc}", file=sys.stderr)

    def clip(self, seq: int) -> np.ndarray:
        """Clip ``seq`` at the JACK rate, as the server's player has it."""
        if seq not in self._resampled:
            self._resampled[seq] = resample_circular(*self.clips[seq], RATE)
        return self._resampled[seq]

    def request(self, address: str, reply: str, *args, timeout: float = 10.0):
        n = len(self.replies)
        self.send(address, *args)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, addr, params in self.replies[n:]:
                if addr == reply:
                    return params
            time.sleep(0.002)
        raise RuntimeError(f"no {reply} reply")

    def sync(self, token, timeout: float = 30.0) -> float:
        self.send("/sync", token)
        deadline = time.monotonic() + timeout
        while token not in self.synced:
            if time.monotonic() > deadline:
                raise RuntimeError("no /synced")
            time.sleep(0.001)
        return self.synced[token]

    def wait_clip(self, seq: int, timeout: float = 10.0) -> None:
        """Wait until clip ``seq`` (or a later one) has been announced and read."""
        deadline = time.monotonic() + timeout
        while not self.clips or max(self.clips) < seq:
            if time.monotonic() > deadline:
                raise RuntimeError(f"clip {seq} was never announced")
            time.sleep(0.002)

    def close(self) -> None:
        self.running = False
        for thread in self.threads:
            thread.join()
        self.sock.close()


# ---------------------------------------------------------------------------------------------------------------
# Finding the change in the recording
# ---------------------------------------------------------------------------------------------------------------

def loop_offset(segment: np.ndarray, loop: np.ndarray) -> int:
    """k with segment[i] == loop[(k + i) % len(loop)] (least squares over every k, by FFT)."""
    n = len(loop)
    seg, box = np.zeros(n), np.zeros(n)
    seg[:len(segment)], box[:len(segment)] = segment, 1.0

    def xcorr(a, b):
        return np.fft.irfft(np.fft.rfft(a) * np.conj(np.fft.rfft(b)), n=n)

    return int(np.argmin(xcorr(loop.astype(np.float64) ** 2, box) - 2 * xcorr(loop.astype(np.float64), seg)))


MATCH = 1e-6   # recording vs replay, per sample: the same float32 mixer on the same samples (a wav read back)


def replay_swaps(rec: np.ndarray, start: int, end: int, first: np.ndarray, clips: dict,
                 lookahead: int = 6) -> list[tuple[int, int]] | None:
    """Replay ``rec[start:end]`` with the server's mixer: ``[(seq, boundary), ...]`` of every swap, or ``None``
    when the recording cannot be explained by the announced clips (a clip never announced, an xrun).

    ``first`` is the clip playing alone just before ``start`` (a period boundary); the later candidates are the
    announced clips newer than the one playing, ``lookahead`` at most (a clip replaced before the callback took it
    is never heard, so the next swap may skip seqs)."""
    start = start // PERIOD * PERIOD
    lead = rec[start - RATE // 10:start]
    k = loop_offset(lead, first) - (start - RATE // 10)
    idx = (k + np.arange(start - RATE // 10, start)) % len(first)
    if np.abs(lead - first[idx]).max() >= MATCH:
        return None                                   # not one clip alone before the start
    player = Player(RATE, channels=1)
    player.set_clip(PreparedClip(seq=0, loop=first, oneshot=first))
    block = np.zeros((PERIOD, 1), dtype=np.float32)
    player.process(block)
    player._pos = (k + start) % len(first)            # where the server's loop is at ``start``
    seqs = sorted(clips)
    hypotheses = [(player, 0, [])]                      # (mixer, seq playing, swaps so far)
    for b in range(start, min(end, len(rec) - PERIOD) // PERIOD * PERIOD, PERIOD):
        target = rec[b:b + PERIOD]
        survivors = []
        for player, current, swaps in hypotheses:
            for seq in [None] + [q for q in seqs if q > current][:lookahead]:
                trial = player.clone()
                if seq is not None:
                    trial.set_clip(PreparedClip(seq=seq, loop=clips[seq], oneshot=clips[seq]))
                trial.process(block)
                if np.abs(block[:, 0] - target).max() < MATCH:
                    survivors.append((trial, current, swaps) if seq is None else (trial, seq, swaps + [(seq, b)]))
                    break
            else:
                if not np.any(target):
                    # A silent period: an xrun (the server's callback or the recorder's did not run). Keep both
                    # readings, the mixer stood still or it ran unrecorded; the next periods decide.
                    advanced = player.clone()
                    advanced.process(block)
                    survivors += [(player, current, swaps), (advanced, current, swaps)]
        if not survivors:
            return None
        hypotheses = survivors[:4]
    return hypotheses[0][2]


def find_gain_change(rec: np.ndarray, start: int, clip: np.ndarray) -> int | None:
    """First period boundary after ``start`` where the recording stops being ``clip`` at unit gain."""
    before = rec[start - RATE // 5:start]
    k = loop_offset(before, clip) - (start - RATE // 5)
    i = np.arange(start, min(len(rec), start + RATE))
    differs = np.flatnonzero(np.abs(rec[i] - clip[(k + i) % len(clip)]) > 1e-6)
    if not len(differs):
        return None
    return (start + differs[0]) // PERIOD * PERIOD


# ---------------------------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------------------------

def storm_messages(results: dict, sent: list, osc: "Osc", swaps: list | None) -> None:
    """Latency of every storm message: to its ``/synced`` (the render that includes it is ready), and to the first
    sample of that render at the output.

    Which swap is that render's first sample: the server hands the render to its player and then sends ``/synced``,
    and the player takes the clip at its next period boundary. So it is the first replayed swap at or after the
    JACK frame at which ``/synced`` arrived (the send's frame plus the time since), less ``SYNC_SLACK`` for the
    reply's own way here. A swap inside that slack to an older clip would need two hand-overs less than a period
    plus the slack apart, which the model's renders (stage 2 alone is longer than a period) rule out. (Clip
    announcements cannot tell: they come from the server's clip-writer thread, which may lag several renders
    behind when two render stages keep the cores busy.)"""
    for token, t_send, f_send in sent:
        t_synced = osc.synced.get(token)
        if t_synced is None:
            results["storm_all_unmatched"] += 1
            continue
        results["storm_all_notify"].append((t_synced - t_send) * 1000)
        f_ready = f_send + (t_synced - t_send - SYNC_SLACK / 1000) * RATE
        b = next((frame for _, frame in swaps or [] if frame >= f_ready), None)
        if b is None:
            results["storm_all_unmatched"] += 1
        else:
            results["storm_all_sample"].append((b - f_send) / RATE * 1000)
            # the player's share: a period at most, unless its crossfade pool is full and the swap waits
            results["storm_all_swap_wait"].append((b - f_ready) / RATE * 1000 - SYNC_SLACK)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    a = np.array(values)
    return {"n": len(values), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max())}


def run(model: str, trials: int, storms: int, storm_seconds: float, slider: str,
        cpus: set[int] | None = None) -> dict:
    jackd, env = start_jackd()
    workdir = Path(tempfile.mkdtemp(prefix="stylesynth-latency-"))
    server = recorder = osc = None
    try:
        server, port, _ = start_server(model, env, workdir, cpus)
        total = 8 + trials * 1.2 + storms * (storm_seconds + 1.5) + 5
        recorder = Recorder(total + 30)
        osc = Osc(port)
        osc.request("/notify", "/done", 1)
        osc.send("/stylesynth/seed", 999)  # a first announced clip (and a warm model)
        osc.sync("warm")
        osc.wait_clip(1)
        time.sleep(0.5)
        seq_now = lambda: max(osc.clips) if osc.clips else 0  # noqa: E731
        rng = random.Random(7)
        results: dict = {"baseline_gain": [], "rest_sample": [], "rest_notify": [], "storm_sample": [],
                         "storm_notify": [], "unmatched": 0, "storm_all_sample": [], "storm_all_notify": [],
                         "storm_all_unmatched": 0, "storm_all_swap_wait": []}
        seed = 1000

        # What each trial needs to be found in the recording, analysed once the recording is over (see the
        # module docstring): (f_send, seq playing) per gain change, (f_send, old seq, new seq, end frame) per
        # change at rest, (f_start, f_send, seq before, final seq, sent) per storm.
        gain_trials, rest_trials, storm_trials = [], [], []

        # Baseline: a gain change (no regeneration).
        for i in range(max(3, trials // 3)):
            time.sleep(0.25 + rng.random() * 0.1)
            seq = seq_now()
            f_send = recorder.now()
            osc.send("/stylesynth/gain", -1.0 if i % 2 == 0 else 0.0)
            recorder.wait_until(f_send + RATE // 2)
            if i % 2 == 0:  # measured only from unit gain, where the clip is known sample for sample
                gain_trials.append((f_send, seq))
        osc.send("/stylesynth/gain", 0.0)
        osc.sync("gain-done")
        time.sleep(0.3)

        # At rest: one change, server idle.
        for _ in range(trials):
            time.sleep(0.3 + rng.random() * 0.2)
            old_seq = seq_now()
            seed += 1
            t_send, f_send = time.perf_counter(), recorder.now()
            osc.send("/stylesynth/seed", seed)
            t_ready = osc.sync(f"rest-{seed}")
            results["rest_notify"].append((t_ready - t_send) * 1000)
            osc.wait_clip(old_seq + 1)
            recorder.wait_until(f_send + RATE // 2)
            rest_trials.append((f_send, old_seq, seq_now(), recorder.now() - RATE // 3))

        status_before = osc.request("/status", "/status.reply")
        # Storms: a slider at 200 msg/s, then one final message.
        for s in range(storms):
            before_seq = seq_now()
            f_start = recorder.now()
            sent = []                                          # (token, perf_counter, frame) per storm message
            stop_at = time.perf_counter() + storm_seconds
            k = 0
            while time.perf_counter() < stop_at:
                # k + 1: the first message moves the slider too (brightness rests at sin 0 = 0 before the first
                # storm, seed at ``seed``): a message that changes nothing is answered at once and has no changed
                # sample to find, so the next clip's was counted as its own
                value = float(np.sin((k + 1) / 20.0) * 3.0) if slider != "seed" else seed + k + 1
                token = f"s{s}-{k}"
                measured = k % SYNC_EVERY == 0
                if measured:
                    sent.append((token, time.perf_counter(), recorder.now()))
                osc.send(f"/stylesynth/{slider}", value)
                if measured:
                    osc.send("/sync", token)
                k += 1
                time.sleep(max(0.0, (k / STORM_RATE) - (time.perf_counter() - (stop_at - storm_seconds))))
            seed += 1
            t_send, f_send = time.perf_counter(), recorder.now()
            osc.send("/stylesynth/seed", seed)  # the final message: what is its latency?
            t_ready = osc.sync(f"storm-{s}")
            results["storm_notify"].append((t_ready - t_send) * 1000)
            recorder.wait_until(f_send + RATE)
            time.sleep(0.1)
            osc.sync(f"storm-{s}-settled")
            time.sleep(0.05)
            storm_trials.append((f_start, f_send, before_seq, seq_now(), sent))
            time.sleep(0.3)
        status = osc.request("/status", "/status.reply")
        graph_xruns = recorder.xruns
        recorder.stop()

        # The analysis, with the recording over.
        for f_send, seq in gain_trials:
            b = find_gain_change(recorder.buffer, f_send, osc.clip(seq))
            if b is None:
                results["unmatched"] += 1
            else:
                results["baseline_gain"].append((b - f_send) / RATE * 1000)
        for f_send, old_seq, new_seq, end in rest_trials:
            b = None
            if new_seq == old_seq + 1:
                swaps = replay_swaps(recorder.buffer, f_send, end, osc.clip(old_seq), {new_seq: osc.clip(new_seq)})
                b = next((frame for seq, frame in swaps or [] if seq == new_seq), None)
            if b is None:
                results["unmatched"] += 1
            else:
                results["rest_sample"].append((b - f_send) / RATE * 1000)
        for f_start, f_send, before_seq, final, sent in storm_trials:
            swaps = replay_swaps(recorder.buffer, f_start, f_send + RATE // 2, osc.clip(before_seq),
                                 {q: osc.clip(q) for q in list(osc.clips) if before_seq < q <= final})
            b = next((frame for seq, frame in swaps or [] if seq == final), None)
            if b is None:
                results["unmatched"] += 1
            else:
                results["storm_sample"].append((b - f_send) / RATE * 1000)
            storm_messages(results, sent, osc, swaps)
        return {
            "model": status[0], "slider": slider, "trials": trials, "storms": storms,
            "server_cores": len(cpus) if cpus else len(os.sched_getaffinity(0)),
            "engine": engine_mode((workdir / "serve.log").read_text(errors="replace")),
            "storm_messages_per_s": STORM_RATE, "storm_seconds": storm_seconds,
            "baseline_gain": percentiles(results["baseline_gain"]),
            "rest_first_sample": percentiles(results["rest_sample"]),
            "rest_notify": percentiles(results["rest_notify"]),
            "storm_first_sample": percentiles(results["storm_sample"]),
            "storm_notify": percentiles(results["storm_notify"]),
            "storm_messages_first_sample": percentiles(results["storm_all_sample"]),
            "storm_messages_notify": percentiles(results["storm_all_notify"]),
            "storm_messages_ready_to_sample": percentiles(results["storm_all_swap_wait"]),
            "unmatched_trials": results["unmatched"],
            "storm_messages_unmatched": results["storm_all_unmatched"],
            "regenerations": status[1], "coalesced_in_storms": status[2] - status_before[2],
            "coalesced_total": status[2], "server_xruns": status[4], "graph_xruns": graph_xruns,
            "server_regeneration_p50_ms": status[5], "server_regeneration_p99_ms": status[6],
        }
    finally:
        if osc:
            osc.close()
        if recorder:
            recorder.close()
        if server:
            server.terminate()
            server.wait(timeout=20)
        jackd.terminate()
        jackd.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(r: dict) -> None:
    base = r["baseline_gain"]["p50_ms"] or float("nan")
    print(f"\nstylesynth latency, model {r['model']!r}, JACK dummy {RATE} Hz / {PERIOD} frames, "
          f"slider {r['slider']!r} at {r['storm_messages_per_s']:.0f} msg/s; server on {r['server_cores']} "
          f"core(s), rendering: {r['engine']}")
    print(f"{'measure':42} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p50 / baseline':>15}")
    rows = [("baseline: gain change -> first sample", "baseline_gain"),
            ("at rest: OSC -> first changed sample", "rest_first_sample"),
            ("at rest: OSC -> new audio ready (/synced)", "rest_notify"),
            ("storm end: OSC -> first changed sample", "storm_first_sample"),
            ("storm end: OSC -> new audio ready", "storm_notify"),
            ("storm messages (1 in 4): -> first sample", "storm_messages_first_sample"),
            ("storm messages (1 in 4): -> ready", "storm_messages_notify"),
            ("storm messages: ready -> first sample", "storm_messages_ready_to_sample")]
    for label, key in rows:
        m = r[key]
        if not m["n"]:
            print(f"{label:42} {0:>4} {'-':>8} {'-':>8} {'-':>8}")
            continue
        print(f"{label:42} {m['n']:>4} {m['p50_ms']:>8.1f} {m['p99_ms']:>8.1f} {m['max_ms']:>8.1f} "
              f"{m['p50_ms'] / base:>14.1f}x")
    print(f"regenerations {r['regenerations']}, coalesced during storms {r['coalesced_in_storms']}, "
          f"xruns: server {r['server_xruns']}, JACK graph {r['graph_xruns']}, unmatched trials "
          f"{r['unmatched_trials']}, unmatched storm messages {r['storm_messages_unmatched']}")
    for label, key in (("at rest", "rest_first_sample"), ("storm end", "storm_first_sample"),
                       ("storm messages", "storm_messages_first_sample")):
        p99 = r[key]["p99_ms"]
        if p99 is not None:
            print(f"goal p99 <= {GOAL_P99_MS:g} ms {label} (first changed sample): "
                  f"{'met' if p99 <= GOAL_P99_MS else 'NOT met'} ({p99:.1f} ms)")
    print(f"load average (1 min) before {r['load_before'][0]:.2f}, after {r['load_after'][0]:.2f}; the figures are "
          "at the server's output port (a sound card adds its own buffer)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="hits", help="model to serve ('gaver': the procedural renderer)")
    ap.add_argument("--slider", default=None,
                    help="parameter moved in the storm (default: brightness if the model has semantic controls, "
                         "else seed)")
    ap.add_argument("--trials", type=int, default=40, help="changes at rest")
    ap.add_argument("--storms", type=int, default=15, help="storms (each ends with one measured message)")
    ap.add_argument("--storm-seconds", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="10 trials, 4 storms of 0.6 s (< 1 min)")
    ap.add_argument("--server-cores", type=int, default=None, metavar="N",
                    help="pin the server to the first N CPUs of this process (e.g. 1: a one-core machine); "
                         "default: all")
    ap.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.trials, args.storms, args.storm_seconds = 10, 4, 0.6
    slider = args.slider or _default_slider(args.model)
    # The recorder's callback is Python: it must get the GIL within a period although this process's OSC and
    # file threads run Python too, and CPython passes the GIL on only every switch interval (5 ms by default,
    # about a period): as the server does, ask for 0.5 ms.
    sys.setswitchinterval(0.0005)
    t0 = time.perf_counter()
    load_before = os.getloadavg()   # other work on the machine shifts every figure: keep it beside them
    result = run(args.model, args.trials, args.storms, args.storm_seconds, slider, server_cpus(args.server_cores))
    result["wall_s"] = time.perf_counter() - t0
    result["load_before"], result["load_after"] = list(load_before), list(os.getloadavg())
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                         "platform": platform.platform()}
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _default_slider(model: str) -> str:
    if model == "gaver":
        return "brightness"
    try:
        from stylesynth.synthesizer import Synthesizer
        return "brightness" if Synthesizer.load(model).prototypes else "seed"
    except Exception:
        return "seed"


if __name__ == "__main__":
    raise SystemExit(main())
