"""Soak: 100,000 fuzzed OSC packets and 100,000 junk MIDI bytes into one ``stylesynth serve``, then is it well?

The server runs with its virtual MIDI input (``--midi-virtual``) in a private JACK dummy server (audio to JACK
too), so both control paths and the audio callback are exercised at once. OSC packets come from the fuzz generator
of ``tests/test_fuzz_osc.py`` (noise, mutated messages, hostile values, nested and timed bundles), sent by many
senders in batches, each batch closed by a ``/version`` barrier so every packet reaches the parser. MIDI bytes are
random (status bytes, data bytes, sysex starts without ends) sent through a JACK MIDI port.

Measured, with a baseline from the same run before the flood: ``/status`` round trip (goal < 50 ms afterwards),
resident memory of the server (goal: growth < 10 MB), xruns, and whether a normal message still works.

Usage::

    python benchmarks/soak.py             # 100k packets + 100k MIDI bytes (~1-3 min)
    python benchmarks/soak.py --quick     # 10k + 10k (< 1 min)
    python benchmarks/soak.py --json out.json
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "server"))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from latency import STYLESYNTH, free_port, start_jackd  # noqa: E402
from conftest import OscClient  # noqa: E402
from test_fuzz_osc import BATCH, flood  # noqa: E402

GOAL_STATUS_MS = 50.0
GOAL_GROWTH_MB = 10.0
SENDERS = 100


def rss_mb(pid: int) -> float:
    """Anonymous resident memory (heap, stacks) in MB: what a leak grows. Plain VmRSS also counts JACK's
    shared-memory port buffers, which come and go by tens of MB with the graph."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/PID/status")


def status_ms(port: int, n: int = 20) -> list[float]:
    """Round trips of /status from a fresh sender, in ms."""
    client = OscClient(port)
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            assert client.request("/status", reply="/status.reply", timeout=5) is not None, "no /status reply"
            times.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
    finally:
        client.close()
    return times


def flood_osc(port: int, n_packets: int, rng: random.Random) -> dict:
    senders = [OscClient(port) for _ in range(max(1, min(SENDERS, n_packets // BATCH)))]
    t0 = time.perf_counter()
    try:
        sent, errors = flood(senders, n_packets, rng, timeout=20.0)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc} (stacks in its log: SIGUSR1 was sent)") from None
    finally:
        for sender in senders:
            sender.close()
    return {"packets": sent, "error_replies": errors, "seconds": time.perf_counter() - t0}


class MidiFlooder:
    """One JACK MIDI output connected to the server's virtual input (one client for the whole run: python-rtmidi's
    JACK API does not reopen cleanly within a process)."""

    def __init__(self):
        import rtmidi

        self.rtmidi = rtmidi
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="soak")
        deadline = time.monotonic() + 20
        while True:
            ports = self.out.get_ports()
            target = next((i for i, p in enumerate(ports) if p.startswith("stylesynth") and "midi_in" in p), None)
            if target is not None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no stylesynth midi_in among JACK MIDI ports {ports}")
            time.sleep(0.1)
        self.out.open_port(target)
        self.port_name = ports[target]

    def flood(self, n_bytes: int, rng: random.Random) -> dict:
        sent = messages = 0
        t0 = time.perf_counter()
        while sent < n_bytes:
            size = rng.choice([1, 2, 3, 3, 3, 4, 8])
            data = [rng.randrange(256) for _ in range(size)]
            try:
                self.out.send_message(data)
            except (ValueError, self.rtmidi.InvalidUseError):  # shapes rtmidi refuses to send
                continue
            sent += size
            messages += 1
            if messages % 200 == 0:
                time.sleep(0.005)  # stay under the JACK MIDI ring buffer's size
        return {"bytes": sent, "messages": messages, "seconds": time.perf_counter() - t0}

    def close(self) -> None:
        self.out.close_port()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gaver", help="model to serve (default: the procedural renderer)")
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--midi-bytes", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="10k packets and 10k MIDI bytes")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    if args.quick:
        args.packets, args.midi_bytes = 10_000, 10_000
    try:
        import stylesynth.midi_in  # noqa: F401
        midi = args.midi_bytes > 0
    except ImportError:
        midi = False
    jackd, env = start_jackd()
    workdir = Path(tempfile.mkdtemp(prefix="stylesynth-soak-"))
    port = free_port()
    cmd = [str(STYLESYNTH), "serve", "--model", args.model, "--osc-port", str(port), "--oscquery-port", "0",
           "--cache-dir", str(workdir / "clips"), "--presets", str(workdir / "presets")]
    if midi:
        cmd.append("--midi-virtual")
    import subprocess
    log = open(workdir / "serve.log", "wb")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    result: dict = {"model": args.model, "midi": midi}
    try:
        probe = OscClient(port)
        deadline = time.monotonic() + 120
        while probe.request("/version", reply="/version.reply", timeout=0.3) is None:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start:\n{(workdir / 'serve.log').read_text()[-2000:]}")
        probe.send("/stylesynth/seed", 1)
        probe.sync(timeout=60)
        rng = random.Random(20261125)
        # Warm every path first (a fifth of the flood), so first-use allocations and the allocator's high-water
        # marks are not counted as growth; then the flood in two halves, to tell a leak (grows with packets)
        # from a plateau.
        # A model request is part of the fuzz: the first one imports torch (tens of MB, once). Do it here.
        probe.send("/stylesynth/model", "no-such-model")
        probe.wait_for("/error", timeout=60)
        flood_osc(port, max(2000, args.packets // 5), rng)
        flooder = MidiFlooder() if midi else None
        if flooder:
            flooder.flood(max(2000, args.midi_bytes // 5), rng)
        time.sleep(1.0)
        before_status = status_ms(port)
        rss_before = rss_mb(server.pid)
        t0 = time.perf_counter()
        half = args.packets // 2
        osc_a = flood_osc(port, half, rng)
        midi_a = flooder.flood(args.midi_bytes // 2, rng) if flooder else None
        rss_half = rss_mb(server.pid)
        osc_b = flood_osc(port, args.packets - half, rng)
        midi_b = flooder.flood(args.midi_bytes - args.midi_bytes // 2, rng) if flooder else None
        result["osc"] = {k: osc_a[k] + osc_b[k] for k in osc_a}
        result["midi_flood"] = {k: midi_a[k] + midi_b[k] for k in midi_a} if flooder else None
        if flooder:
            result["midi_port"] = flooder.port_name
            flooder.close()
        result["flood_seconds"] = time.perf_counter() - t0
        time.sleep(1.0)
        probe.drain(0.2)
        probe.send("/stylesynth/rate", 1.5)
        works = probe.query("rate") == 1.5
        after_status = status_ms(port)
        rss_after = rss_mb(server.pid)
        status = probe.request("/status", reply="/status.reply")
        alive = server.poll() is None
    except BaseException:
        import signal as _signal
        server.send_signal(_signal.SIGUSR1)  # the server prints every thread's stack to its log
        time.sleep(1.0)
        text = (workdir / "serve.log").read_text(errors="replace")
        print(text[text.find("Thread 0x") - 200 if "Thread 0x" in text else -3000:][-6000:], file=sys.stderr)
        raise
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        jackd.terminate()
        jackd.wait(timeout=10)
    text = (workdir / "serve.log").read_text(errors="replace")
    shutil.rmtree(workdir, ignore_errors=True)
    result.update({
        "status_before_ms": {"p50": float(np.median(before_status)), "max": float(max(before_status))},
        "status_after_ms": {"p50": float(np.median(after_status)), "max": float(max(after_status))},
        "rss_before_mb": rss_before, "rss_half_mb": rss_half, "rss_after_mb": rss_after,
        "rss_growth_mb": rss_after - rss_before, "rss_growth_second_half_mb": rss_after - rss_half,
        "alive": alive, "normal_message_works": works, "exit_code": server.returncode,
        "tracebacks_in_log": text.count("Traceback"), "dropped": status[3], "xruns": status[4],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    })
    print(f"\nstylesynth soak, model {args.model!r}")
    print(f"{'measure':40} {'before':>10} {'after':>10} {'ratio':>8}")
    b, a = result["status_before_ms"], result["status_after_ms"]
    print(f"{'/status round trip p50 (ms)':40} {b['p50']:>10.2f} {a['p50']:>10.2f} {a['p50'] / b['p50']:>7.2f}x")
    print(f"{'/status round trip max (ms)':40} {b['max']:>10.2f} {a['max']:>10.2f} {a['max'] / b['max']:>7.2f}x")
    print(f"{'server anonymous RSS (MB)':40} {rss_before:>10.1f} {rss_after:>10.1f} {rss_after / rss_before:>7.3f}x")
    print(f"{'  ... after the first half (MB)':40} {rss_before:>10.1f} {rss_half:>10.1f} "
          f"{rss_half / rss_before:>7.3f}x")
    osc = result["osc"]
    print(f"OSC: {osc['packets']} packets in {osc['seconds']:.1f} s, {osc['error_replies']} /error replies, "
          f"{status[3]} dropped")
    if result["midi_flood"]:
        m = result["midi_flood"]
        print(f"MIDI: {m['bytes']} junk bytes in {m['messages']} JACK MIDI events, {m['seconds']:.1f} s")
    else:
        print("MIDI: skipped (stylesynth.midi_in not available)")
    print(f"alive {alive}, normal message works {works}, clean exit {server.returncode == 0}, tracebacks in log "
          f"{result['tracebacks_in_log']}, xruns {status[4]}")
    ok = (alive and works and a["max"] < GOAL_STATUS_MS and result["rss_growth_mb"] < GOAL_GROWTH_MB
          and result["tracebacks_in_log"] == 0)
    print(f"goals: /status < {GOAL_STATUS_MS:g} ms after the flood, RSS growth < {GOAL_GROWTH_MB:g} MB: "
          f"{'met' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
