"""Sending to OSC clients: subscriptions, value echoes, and each new clip as a wav path and as chunked blobs.

Clients that ``/notify 1`` get ``/stylesynth/<name> value`` when a parameter changes and
``/stylesynth/audio/file path seq`` when a new clip plays (Max: ``buffer~ replace path``; Pd: ``soundfiler read
-resize path array``). Clients that cannot read the server's files subscribe with ``/notify 1 1`` and also get the
samples as ``/stylesynth/audio/chunk seq index count blob`` packets, each under :data:`MAX_PACKET` bytes (one
Ethernet MTU, the safe size for a tablet on Wi-Fi).

Clip files and chunks are produced on a sender thread of their own from a short queue (:data:`PENDING` clips; when
it is full the oldest waiting clip is dropped), so a slow disk or many subscribers never delay the next
regeneration, and a client that keeps up hears of every clip that played.
"""
from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

MAX_PACKET = 1400
CHUNK_SAMPLES = 320        # 1280 bytes of float32 + 48 bytes of address, tags and ints = 1328 < 1400
KEEP_CLIPS = 16            # wav files kept in the cache folder
PENDING = 8                # clips waiting for the sender thread; beyond, the oldest is skipped (latest wins)
MAX_SUBSCRIBERS = 64       # UDP has no disconnect: a bound keeps a /notify flood from growing this forever

Address = tuple[str, int]


@dataclass
class Subscriber:
    address: Address
    chunks: bool = False


class ClientHub:
    """Subscribers and everything pushed to them.

    Parameters
    ----------
    send : callable
        ``send(address, osc_address, *args)``: sends one OSC message to a UDP address (the OSC server's socket, so
        replies come from the port clients talk to).
    cache_dir : Path
        Where clip wavs are written (``clip-<seq>.wav``); created if missing. The last :data:`KEEP_CLIPS` are
        kept.
    """

    def __init__(self, send: Callable[..., None], cache_dir: Path | str, keep: int = KEEP_CLIPS):
        self.send = send
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._subscribers: dict[Address, Subscriber] = {}
        self._lock = threading.Lock()
        self._pending: collections.deque = collections.deque(maxlen=PENDING)
        self._wake = threading.Condition()
        self._running = True
        self.files_written = 0
        self._thread = threading.Thread(target=self._run, name="clip-sender", daemon=True)
        self._thread.start()

    # -- subscriptions -----------------------------------------------------------------------------------------

    def subscribe(self, address: Address, chunks: bool = False) -> None:
        """Add (or update) a subscriber; ``ValueError`` when :data:`MAX_SUBSCRIBERS` are already subscribed."""
        with self._lock:
            if address not in self._subscribers and len(self._subscribers) >= MAX_SUBSCRIBERS:
                raise ValueError(f"{MAX_SUBSCRIBERS} clients are subscribed already: send /notify 0 from one")
            self._subscribers[address] = Subscriber(address, chunks)

    def unsubscribe(self, address: Address) -> None:
        with self._lock:
            self._subscribers.pop(address, None)

    @property
    def count(self) -> int:
        return len(self._subscribers)

    def subscribers(self) -> list[Subscriber]:
        with self._lock:
            return list(self._subscribers.values())

    # -- engine events -----------------------------------------------------------------------------------------

    def on_engine_event(self, event: str, payload: dict) -> None:
        """Engine listener: value changes go out at once; clips go to the sender thread (latest wins)."""
        if event == "value":
            from stylesynth.params import PARAMS
            address = PARAMS[payload["name"]].osc_address
            for sub in self.subscribers():
                self.send(sub.address, address, payload["value"])
        elif event == "clip":
            with self._wake:
                self._pending.append((payload["seq"], payload["audio"], payload["sample_rate"]))
                self._wake.notify()
        elif event == "error":
            for sub in self.subscribers():
                self.send(sub.address, "/error", payload["address"], payload["reason"])

    def stop(self) -> None:
        with self._wake:
            self._running = False
            self._wake.notify()
        self._thread.join(timeout=5)

    # -- clip delivery -----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._running and not self._pending:
                    self._wake.wait()
                if not self._running:
                    return
                item = self._pending.popleft()
            try:
                self._deliver(*item)
            except Exception:  # a full disk must not stop the server; say so and carry on
                log.exception("could not deliver clip %s to clients", item[0])

    def _deliver(self, seq: int, audio: np.ndarray, sample_rate: int) -> None:
        path = self.write_clip(seq, audio, sample_rate)
        subs = self.subscribers()
        for sub in subs:
            self.send(sub.address, "/stylesynth/audio/file", str(path), seq)
        chunked = [s for s in subs if s.chunks]
        if chunked:
            packets = chunk_blobs(audio)
            for index, blob in enumerate(packets):
                for sub in chunked:
                    self.send(sub.address, "/stylesynth/audio/chunk", seq, index, len(packets), blob)

    def write_clip(self, seq: int, audio: np.ndarray, sample_rate: int) -> Path:
        """Write ``clip-<seq>.wav`` (32-bit float, mono) atomically and prune old clips; returns its path."""
        import soundfile as sf

        path = (self.cache_dir / f"clip-{seq:06d}.wav").resolve()
        tmp = path.with_suffix(".tmp.wav")
        sf.write(str(tmp), np.asarray(audio, dtype=np.float32), int(sample_rate), subtype="FLOAT")
        tmp.replace(path)  # readers never see half a file
        self.files_written += 1
        old = sorted(self.cache_dir.glob("clip-*.wav"))
        for stale in old[:-self.keep] if len(old) > self.keep else []:
            stale.unlink(missing_ok=True)
        return path


def chunk_blobs(audio: np.ndarray, samples: int = CHUNK_SAMPLES) -> list[bytes]:
    """Split a clip into float32 little-endian blobs of ``samples`` samples (the last may be shorter)."""
    data = np.asarray(audio, dtype="<f4").reshape(-1)
    return [data[i:i + samples].tobytes() for i in range(0, len(data), samples)] or [b""]
