"""Fuzzing the OSC server with 12,000 random and malformed packets from many senders: it must keep serving.

The packets mix pure noise, valid messages with flipped, cut or appended bytes, every address with random
arguments (NaN, inf, huge numbers, wrong types, control characters, blobs), random type tags, and bundles with
random nesting, sizes and time tags. Afterwards the server must answer ``/status`` promptly, still apply a valid
message, and have logged no traceback.
"""
from __future__ import annotations

import random
import struct
import time

import pytest

from conftest import OscClient, encode, launch_server
from stylesynth import params as P

pytestmark = pytest.mark.timeout(180)

ADDRESSES = [p.osc_address for p in P.PARAMS.values()] + [c for c in P.COMMANDS if "<" not in c] + [
    f"{P.PREFIX}/q/{name}" for name in P.PARAMS] + ["/", "/stylesynth", "/stylesynth/", "//", "/error", "/done"]
N_PACKETS = 12_000
SENDERS = 24  # each stays under the per-sender rate limit, so the parser really sees every packet
BATCH = 100


def _random_arg(rng: random.Random):
    kind = rng.randrange(12)
    if kind == 0:
        return float("nan")
    if kind == 1:
        return rng.choice([float("inf"), float("-inf")])
    if kind == 2:
        return rng.uniform(-1e30, 1e30)
    if kind == 3:
        return rng.randint(-2**31, 2**31 - 1)
    if kind == 4:
        return rng.randint(-2**63, 2**63 - 1)  # an int64 ('h')
    if kind == 5:
        return "".join(chr(rng.randrange(0, 0x2FF)) for _ in range(rng.randrange(0, 40)))
    if kind == 6:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    if kind == 7:
        return rng.choice([True, False, None])
    if kind == 8:
        return rng.choice(["Hits", "Scratches", "none", "", "Knock - Wood", "gaver", "../../etc/passwd", "/"])
    if kind == 9:
        return rng.uniform(-10, 10)
    if kind == 10:
        return [rng.uniform(-1, 1) for _ in range(rng.randrange(0, 4))]
    return rng.randrange(0, 2)


def _message(rng: random.Random) -> bytes:
    address = rng.choice(ADDRESSES)
    if address == "/reply_port":  # keep replies with the fuzzer (other ports are tested in test_osc)
        return encode(address, 0)
    try:
        return encode(address, *[_random_arg(rng) for _ in range(rng.choice([0, 1, 1, 1, 2, 3]))])
    except Exception:
        return encode(address)


def _bundle(rng: random.Random, depth: int = 0) -> bytes:
    stamp = rng.choice([1, 0, rng.randrange(2**64), int((time.time() + 2208988800 + rng.uniform(-5, 20)) * 2**32)])
    body = b"#bundle\x00" + struct.pack(">Q", stamp % 2**64)
    for _ in range(rng.randrange(0, 5)):
        part = _bundle(rng, depth + 1) if depth < 10 and rng.random() < 0.2 else _message(rng)
        size = len(part) if rng.random() < 0.9 else rng.randrange(-8, 2 * len(part) + 8)
        body += struct.pack(">i", size) + part
    return body


def _mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(4)
        if op == 0 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif op == 1:
            data = data[:rng.randrange(len(data) + 1)]
        elif op == 2:
            data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
        elif data:
            i = rng.randrange(len(data))
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    return bytes(data)


def fuzz_packet(rng: random.Random) -> bytes:
    """One random packet; about half are well-formed (with hostile values), half malformed."""
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
    if kind == 1:
        return _message(rng)
    if kind == 2:
        return _mutate(rng, _message(rng))
    if kind == 3:
        return _bundle(rng)
    if kind == 4:
        return _mutate(rng, _bundle(rng))
    tags = "".join(rng.choice("ifsbhdtTFN[]rmcSIx,") for _ in range(rng.randrange(0, 8)))
    return encode(rng.choice(ADDRESSES))[:-4] + b"," + tags.encode() + b"\x00" * (4 - (len(tags) + 1) % 4) + \
        bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))


def flood(senders: list, n_packets: int, rng: random.Random, timeout: float = 10.0) -> tuple[int, int]:
    """Send ``n_packets`` fuzzed packets, shared among ``senders`` in batches of :data:`BATCH`, with a barrier
    after each batch; returns (packets sent, /error replies seen). Raises RuntimeError if the server stops
    answering. Used by this test and by ``benchmarks/soak.py``."""
    per_sender = n_packets // len(senders)
    sent = errors = 0
    for sender in senders:
        for start in range(0, per_sender, BATCH):
            for _ in range(min(BATCH, per_sender - start)):
                sender.send_raw(fuzz_packet(rng))
                sent += 1
            # A barrier: the server answers in order, so once /version.reply is back it has handled the batch
            # (and the kernel's socket buffer never overflows, so every packet really reaches the parser).
            sender.send("/reply_port", 0)  # a mutated /reply_port may have sent our replies elsewhere
            sender.send("/version")
            while (msg := sender.recv(timeout)) is not None and msg[0] != "/version.reply":
                errors += msg[0] == "/error"
            if msg is None:
                raise RuntimeError(f"the server stopped answering after {sent} packets")
    return sent, errors


def test_server_survives_fuzzing(tmp_path):
    server = launch_server(tmp_path, "--no-audio", "--oscquery-port", "0")
    rng = random.Random(20261124)
    try:
        senders = [OscClient(server.port) for _ in range(SENDERS)]
        sent, errors = flood(senders, N_PACKETS, rng)
        assert sent >= 10_000
        probe = OscClient(server.port)
        t0 = time.monotonic()
        status = probe.request("/status", reply="/status.reply", timeout=10)
        answered_in = time.monotonic() - t0
        assert status is not None, "no /status reply after fuzzing"
        assert server.alive()
        probe.send("/stylesynth/rate", 1.25)
        assert probe.query("rate") == 1.25
        probe.sync(timeout=30)
        # Malformed and hostile packets were answered with /error, not met with silence.
        answered = errors + sum(1 for s in senders for m in s.drain(0.01) if m[0] == "/error")
        assert answered > N_PACKETS // 2
        log = server.log
        assert "Traceback" not in log and "unexpected failure" not in log, log[-3000:]
        print(f"{sent} packets; /status answered in {answered_in * 1000:.1f} ms; {answered} /error replies; "
              f"status {status}")
        for s in senders + [probe]:
            s.close()
    finally:
        assert server.stop() == 0
