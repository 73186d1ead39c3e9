"""Click-free playback: a block mixer fed by the engine, and the audio outputs that drive it.

The one rule here is that the audio callback never waits. The engine's worker prepares each clip completely
(resampled to the device rate once, one-shot fades applied) and hands the :class:`Player` a reference; the
callback picks the newest reference up at the next block boundary and crossfades to it with an equal-power curve.
Triggers, panics, gain and loop changes arrive through a ``collections.deque`` (atomic append/popleft in CPython)
or plain attribute writes, so no lock is ever taken inside :meth:`Player.process`. Mixing works on preallocated
buffers; per block there are only a handful of numpy calls, independent of the number of samples.

Outputs: :class:`SoundDeviceOutput` (PortAudio; under JACK its client is named ``stylesynth``) and
:func:`open_output`, which falls back to headless (no audio output) with one clear log line when no device works.
"""
from __future__ import annotations

import collections
import ctypes
import ctypes.util
import functools
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

CROSSFADE_SECONDS = 0.02   # clip swaps: long enough to hide any discontinuity, short enough to feel immediate
ONESHOT_FADE_SECONDS = 0.003  # one-shot start/end ramps: a clip need not start or end at zero
VOICES = 16
MAX_BLOCK = 8192
TAILS = 8                  # clips still fading out at once: ~1 / sin^2(pi/2 * block / crossfade) at a swap per block
SILENT_TAIL = 1e-3         # a tail below this gain (-60 dB) is dropped: nobody hears it go


@dataclass(frozen=True)
class PreparedClip:
    """A clip ready for the callback: everything expensive already done on the worker thread.

    Parameters
    ----------
    seq : int
        Sequence number of the clip (1, 2, ...), as sent to OSC clients.
    loop : np.ndarray
        float32 mono at the device rate, circular (its end runs smoothly into its start).
    oneshot : np.ndarray
        The same samples with short fades in and out, for triggered voices.
    ready_time : float
        ``time.perf_counter()`` when it was handed over (for latency figures).
    """

    seq: int
    loop: np.ndarray
    oneshot: np.ndarray
    ready_time: float = field(default_factory=time.perf_counter)


def resample_circular(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample a circular clip (its end continues into its start, as the Gabor transform assumes).

    Parameters
    ----------
    audio : np.ndarray
        Mono samples at ``rate_in``.
    rate_in, rate_out : int
        Sample rates in Hz (e.g. 16000 -> 48000).

    Returns
    -------
    np.ndarray
        float32, ``round(len(audio) * rate_out / rate_in)`` samples.

    A circular clip is one period of a periodic signal, so its band-limited resampling is exact in the frequency
    domain: its spectrum, zero-padded (up) or cut at the lower Nyquist (down), transformed back at the new length.
    No filter transient at the loop point by construction, no pass-band ripple, and a third of the time of a
    polyphase filter over the wrapped clip (it runs on the render path of every clip). Up by a whole factor ``k``
    (16 -> 48 kHz), the same samples come from ``k - 1`` transforms of the input's length instead of one ``k`` times
    as long: every ``k``-th output sample is an input sample, and the others are the input delayed by a fraction of
    a sample (its spectrum turned), half the time.
    """
    import scipy.fft

    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    n = len(audio)
    n_out = int(round(n * int(rate_out) / int(rate_in)))
    if n_out == n or n == 0:
        return audio.copy()
    if n_out % n == 0:
        k = n_out // n
        out = np.empty((n, k), dtype=np.float32)
        out[:, 0] = audio
        between = scipy.fft.irfft(scipy.fft.rfft(audio) * _fraction_turns(n, k), n=n, axis=-1)
        for p in range(1, k):
            out[:, p] = between[p - 1]     # a column at a time: 4x faster than one transposed copy
        return out.reshape(-1)
    # norm="forward" scales by 1 / n on the way in and not at all on the way out: the n_out / n the new length
    # needs, with no pass over the output for it. irfft zero-pads (up) or cuts (down) the spectrum to n_out itself.
    spectrum = scipy.fft.rfft(audio, norm="forward")
    if n < n_out and n % 2 == 0:
        spectrum[n // 2] *= 0.5   # the input's Nyquist cosine is now an ordinary bin: half of it was the mirror's
    return scipy.fft.irfft(spectrum, n=n_out, norm="forward")    # float32 (complex64 in)


@functools.lru_cache(maxsize=8)
def _fraction_turns(n: int, k: int) -> np.ndarray:
    """complex64 (k - 1, n // 2 + 1): an rfft of ``n`` samples times row ``p - 1`` is the rfft of the signal moved
    ``p / k`` of a sample earlier (band-limited, circular). Its Nyquist bin keeps only its real part in the inverse,
    cos(pi p / k) of it: as the zero-padded transform with that bin halved (the general path) has it."""
    m = np.arange(n // 2 + 1)
    turns = np.exp(2j * np.pi * np.outer(np.arange(1, k), m) / (k * n)).astype(np.complex64)
    turns.setflags(write=False)
    return turns


def prepare_clip(audio: np.ndarray, clip_rate: int, device_rate: int, seq: int) -> PreparedClip:
    """Turn a rendered clip into a :class:`PreparedClip` at ``device_rate`` (done on the worker, not the
    callback). Non-finite samples (a diverged model) become silence rather than reaching the speakers."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    # One reduction finds a NaN or infinity (the sum is then not finite; in float64 float32 samples cannot
    # overflow it), so a finite clip, every clip but a diverged model's, is neither scanned again nor copied.
    if not math.isfinite(np.sum(audio, dtype=np.float64)):
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    loop = resample_circular(audio, clip_rate, device_rate)
    oneshot = loop.copy()
    fade = min(int(ONESHOT_FADE_SECONDS * device_rate), len(oneshot) // 2)
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
        oneshot[:fade] *= ramp
        oneshot[-fade:] *= ramp[::-1]
    loop.setflags(write=False)
    oneshot.setflags(write=False)
    return PreparedClip(seq=seq, loop=loop, oneshot=oneshot)


class _Tail:
    """A clip fading out. ``power``: its squared gain when the running crossfade began; ``older``: the sum of the
    older tails' ``power``. As the new clip rises (power sin^2), the tails give up that much power oldest first:
    this one keeps ``clip(power + older - sin^2, 0, power)``."""

    __slots__ = ("clip", "pos", "power", "older")

    def __init__(self):
        self.clip = None
        self.pos = 0
        self.power = 0.0
        self.older = 0.0

    def power_at(self, rise: float) -> float:
        """Its power once the new clip has risen to power ``rise``."""
        return min(max(self.power + self.older - rise, 0.0), self.power)


class _Voice:
    __slots__ = ("clip", "pos", "gain", "active", "releasing", "started")

    def __init__(self):
        self.clip = None
        self.pos = 0
        self.gain = 0.0
        self.active = False
        self.releasing = False
        self.started = 0


class Player:
    """The mixer the audio callback runs: a looping clip (crossfaded on change) plus a pool of one-shot voices.

    Parameters
    ----------
    sample_rate : int
        Device rate in Hz; clips must already be at this rate (:func:`prepare_clip`).
    channels : int
        Output channels; the mono mix is copied to each.
    voices : int
        Size of the fixed one-shot voice pool. When all are busy the oldest is faded out over one block and
        reused.
    """

    def __init__(self, sample_rate: int = 48000, channels: int = 2, voices: int = VOICES):
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self._xfade_len = max(1, int(CROSSFADE_SECONDS * self.sample_rate))
        theta = (np.arange(self._xfade_len + MAX_BLOCK, dtype=np.float64) / self._xfade_len).clip(0, 1)
        # Equal power: the new clip rises on sin, the parts fading out share the rest, cos^2 = 1 - sin^2.
        self._fade_in_curve = np.sin(theta * np.pi / 2).astype(np.float32)
        self._ramp = np.arange(1, MAX_BLOCK + 1, dtype=np.float32)           # divided by block length per use
        self._mix = np.zeros(MAX_BLOCK, dtype=np.float32)
        self._tmp = np.zeros(MAX_BLOCK, dtype=np.float32)
        self._tmp2 = np.zeros(MAX_BLOCK, dtype=np.float32)
        self._env = np.zeros(MAX_BLOCK, dtype=np.float32)
        self._rise = np.zeros(MAX_BLOCK, dtype=np.float32)
        self._voices = [_Voice() for _ in range(voices)]
        self._commands: collections.deque = collections.deque(maxlen=1024)
        # Written by other threads as whole references / floats; read once per block by the callback.
        self._next_clip: PreparedClip | None = None
        self._target_gain = 1.0
        self._loop_on = True
        # Callback-owned state.
        self._clip: PreparedClip | None = None
        self._tails = [_Tail() for _ in range(TAILS)]   # preallocated: a swap never allocates
        self._n_tails = 0                                # the first _n_tails are fading out
        self._xfade_pos = 0                              # samples into the current crossfade
        self._pos = 0
        self._gain = 1.0
        self._loop_level = 1.0
        self.frames = 0            # frames processed so far
        self.blocks = 0
        self.swaps: collections.deque = collections.deque(maxlen=64)  # (seq, frame, perf_counter at the block)
        self.xruns = 0
        self.triggers_dropped = 0

    # -- control side (any thread) -----------------------------------------------------------------------------

    def set_clip(self, clip: PreparedClip) -> None:
        """Hand over a new clip; the callback crossfades to it at its next block."""
        self._next_clip = clip

    def set_gain_db(self, db: float) -> None:
        """Target gain; the callback ramps to it across one block (no zipper noise)."""
        self._target_gain = float(10.0 ** (db / 20.0))

    def set_loop(self, on: bool) -> None:
        """Loop on: the current clip plays continuously; off: it fades out over one block (voices continue)."""
        self._loop_on = bool(on)

    def trigger(self, velocity: float = 1.0) -> None:
        """Start a one-shot voice of the current clip at the next block; ``velocity`` 0..1 is its amplitude."""
        self._commands.append(("trigger", float(velocity)))

    def panic(self) -> None:
        """Fade every voice out over one block and stop the loop."""
        self._loop_on = False
        self._commands.append(("panic", 0.0))

    @property
    def current_seq(self) -> int:
        clip = self._clip
        return clip.seq if clip is not None else 0

    @property
    def active_voices(self) -> int:
        return sum(1 for v in self._voices if v.active)

    def clone(self) -> "Player":
        """An independent copy of the mixer in its current state (clips and scratch buffers are shared: clips are
        read-only and a mixer's buffers are only used inside :meth:`process`). For replaying a recording offline
        to find where each clip was swapped in (``benchmarks/latency.py``); never used by the audio path."""
        import copy

        twin = copy.copy(self)
        twin._tails = [copy.copy(tail) for tail in self._tails]
        twin._voices = [copy.copy(voice) for voice in self._voices]
        twin._commands = collections.deque(self._commands, maxlen=self._commands.maxlen)
        twin.swaps = collections.deque(self.swaps, maxlen=self.swaps.maxlen)
        return twin

    # -- audio side (the callback) -----------------------------------------------------------------------------

    def process(self, out: np.ndarray) -> None:
        """Fill ``out`` (frames x channels float32) with the next block. Called by the audio callback only."""
        n = out.shape[0]
        if n > MAX_BLOCK:  # never expected from a real device; keep correct anyway
            for start in range(0, n, MAX_BLOCK):
                self.process(out[start:start + MAX_BLOCK])
            return
        now = time.perf_counter()
        mix = self._mix[:n]
        mix.fill(0.0)
        self._run_commands(n)
        nxt = self._next_clip
        # A clip arriving mid-fade starts its own fade at once: the half-faded mix becomes the fading-out part.
        # Only if every tail slot is still audible does it wait a block (the tails fade meanwhile).
        if nxt is not None and nxt is not self._clip and self._make_room():
            self._start_crossfade(nxt, now)
        self._mix_loop(mix, n)
        self._mix_voices(mix, n)
        # Gain, ramped linearly from the last block's value to the target across this block.
        target = self._target_gain
        if target != self._gain:
            env = self._env[:n]
            np.multiply(self._ramp[:n], (target - self._gain) / n, out=env)
            env += self._gain
            mix *= env
            self._gain = target
        elif target != 1.0:
            mix *= target
        np.clip(mix, -1.0, 1.0, out=mix)
        out[:] = mix[:, None]
        self.frames += n
        self.blocks += 1

    def _run_commands(self, n: int) -> None:
        retry = []
        while self._commands:
            kind, value = self._commands.popleft()
            if kind == "panic":
                for v in self._voices:
                    if v.active:
                        v.releasing = True
            elif kind == "trigger":
                if not self._start_voice(value):
                    retry.append((kind, value))
        for item in retry:  # the pool was full: the oldest voice is fading out this block; start next block
            self._commands.append(item)

    def _start_voice(self, velocity: float) -> bool:
        clip = self._next_clip or self._clip
        if clip is None:
            self.triggers_dropped += 1
            return True  # nothing to play yet: drop it, do not retry
        free = next((v for v in self._voices if not v.active), None)
        if free is None:
            oldest = min((v for v in self._voices if not v.releasing), key=lambda v: v.started, default=None)
            if oldest is not None:
                oldest.releasing = True
            return False
        free.clip, free.pos, free.gain = clip, 0, velocity
        free.active, free.releasing, free.started = True, False, self.frames
        return True

    def _risen(self) -> float:
        """Power the clip fading in has reached (0 when a crossfade starts, 1 once it is over)."""
        return float(self._fade_in_curve[min(self._xfade_pos, self._xfade_len)]) ** 2

    def _make_room(self) -> bool:
        """Drop inaudible tails; True when a tail slot is free for the clip playing now."""
        if self._n_tails == 0:
            return True
        rise = self._risen()
        tails, kept = self._tails, 0
        for i in range(self._n_tails):
            if tails[i].power_at(rise) >= SILENT_TAIL ** 2:
                tails[i], tails[kept] = tails[kept], tails[i]   # keeps their order: oldest first
                kept += 1
            else:
                tails[i].clip = None
        self._n_tails = kept
        return kept < TAILS

    def _start_crossfade(self, clip: PreparedClip, now: float) -> None:
        if self._clip is not None and self._loop_level > 0.0:
            # Equal power over every part: the tails' powers and the new clip's sum to 1 throughout. The tails
            # give up power oldest first, so in a storm of swaps the old ones are gone within a block or two
            # instead of lingering at ever smaller gains (which filled the tail slots and made swaps wait).
            rise = self._risen() if self._n_tails else 1.0   # the clip that was fading in: its power now
            older = 0.0
            for i in range(self._n_tails):
                tail = self._tails[i]
                tail.power, tail.older = tail.power_at(rise), older
                older += tail.power
            tail = self._tails[self._n_tails]
            tail.clip, tail.pos, tail.power, tail.older = self._clip, self._pos, rise, older
            self._n_tails += 1
            self._xfade_pos = 0
            # Keep the rhythm: the new clip continues from the same place in the loop.
            self._pos = self._pos % len(clip.loop)
        else:
            self._drop_tails()
            self._pos = 0 if self._clip is None else self._pos % len(clip.loop)
        self._clip = clip
        self.swaps.append((clip.seq, self.frames, now))

    def _drop_tails(self) -> None:
        for i in range(self._n_tails):
            self._tails[i].clip = None
        self._n_tails = 0

    def _read_loop(self, clip: PreparedClip, pos: int, n: int, dest: np.ndarray) -> int:
        """Copy ``n`` samples of the looping clip from ``pos`` into ``dest`` (wrapping); returns the new pos."""
        data = clip.loop
        length = len(data)
        filled = 0
        while filled < n:
            take = min(n - filled, length - pos)
            dest[filled:filled + take] = data[pos:pos + take]
            filled += take
            pos = (pos + take) % length
        return pos

    def _mix_loop(self, mix: np.ndarray, n: int) -> None:
        target = 1.0 if self._loop_on else 0.0
        if self._clip is None or (target == 0.0 and self._loop_level == 0.0):
            if self._clip is not None:  # keep the loop's clock running so re-enabling stays in time
                self._pos = (self._pos + n) % len(self._clip.loop)
            self._drop_tails()
            return
        tmp = self._tmp[:n]
        self._pos = self._read_loop(self._clip, self._pos, n, tmp)
        if self._n_tails:
            # Equal-power crossfade: the new clip rises on sin, the tails give up its power (sin^2) oldest first.
            a = self._xfade_pos
            rise = self._rise[:n]
            np.square(self._fade_in_curve[a:a + n], out=rise)
            tmp *= self._fade_in_curve[a:a + n]
            tmp2, env = self._tmp2[:n], self._env[:n]
            for i in range(self._n_tails):
                tail = self._tails[i]
                tail.pos = self._read_loop(tail.clip, tail.pos, n, tmp2)
                np.subtract(tail.power + tail.older, rise, out=env)
                np.clip(env, 0.0, tail.power, out=env)
                np.sqrt(env, out=env)
                tmp2 *= env
                tmp += tmp2
            self._xfade_pos += n
            if self._xfade_pos >= self._xfade_len:
                self._drop_tails()
        if target != self._loop_level:
            env = self._env[:n]
            np.multiply(self._ramp[:n], (target - self._loop_level) / n, out=env)
            env += self._loop_level
            tmp *= env
            self._loop_level = target
        mix += tmp

    def _mix_voices(self, mix: np.ndarray, n: int) -> None:
        for v in self._voices:
            if not v.active:
                continue
            data = v.clip.oneshot
            take = min(n, len(data) - v.pos)
            seg = self._tmp[:take]
            np.multiply(data[v.pos:v.pos + take], v.gain, out=seg)
            if v.releasing:  # linear fade to zero across this block, then free the voice
                env = self._env[:take]
                np.subtract(take, self._ramp[:take], out=env)
                env *= 1.0 / take
                seg *= env
                v.active = False
            mix[:take] += seg
            v.pos += take
            if v.pos >= len(data):
                v.active = False


# ---------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------

def jack_running() -> bool:
    """Whether a JACK server answers (without starting one)."""
    import os
    import subprocess

    env = dict(os.environ, JACK_NO_START_SERVER="1")
    try:
        result = subprocess.run(["jack_lsp"], env=env, capture_output=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def set_jack_client_name(name: str) -> bool:
    """Name PortAudio's JACK client (default ``PortAudio``); must run before a stream is opened."""
    import sounddevice as sd

    try:
        lib = ctypes.CDLL(sd._libname)
        fn = lib.PaJack_SetClientName
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_char_p]
    fn.restype = ctypes.c_int
    # PortAudio keeps the pointer: keep the bytes alive for the life of the process.
    set_jack_client_name._keep = name.encode()
    return fn(set_jack_client_name._keep) == 0


class HeadlessOutput:
    """No audio device: nothing is played; clips still reach OSC clients as files and blobs."""

    kind = "headless"
    description = "headless (no audio output)"

    def __init__(self, player: Player):
        self.player = player

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class SoundDeviceOutput:
    """Plays a :class:`Player` through PortAudio (sounddevice); creates the player at the device's rate.

    Parameters
    ----------
    device : int or str or None
        PortAudio device (index or name substring); ``None``: JACK's when a JACK server runs, else the default.
    block_size : int
        Frames per callback (0 lets PortAudio choose; JACK imposes its own period).
    sample_rate : int or None
        ``None``: the device's own rate (JACK's rate under JACK, which cannot be changed by a client).
    jack_name : str
        JACK client name (``stylesynth``).
    connect : bool
        Under JACK, connect our outputs to ``system:playback_*`` once the stream runs; without it they are left
        unconnected (PortAudio's own automatic connections are undone) for a patchbay to decide.
    channels : int
        Output channels (the mono mix is copied to each).
    """

    kind = "sounddevice"

    def __init__(self, device=None, block_size: int = 256, sample_rate: int | None = None,
                 jack_name: str = "stylesynth", connect: bool = False, channels: int = 2):
        import sounddevice as sd

        self.sd = sd
        self.jack = False
        if jack_running():
            set_jack_client_name(jack_name)
            # PortAudio scans host APIs once; re-scan so a JACK server started after import is seen.
            sd._terminate()
            sd._initialize()
            if device is None:
                device = _jack_device(sd)
        if device is None and not any(d["max_output_channels"] > 0 for d in sd.query_devices()):
            raise RuntimeError("PortAudio sees no output device")
        info = sd.query_devices(device, "output")
        self.jack = "JACK" in sd.query_hostapis(info["hostapi"])["name"]
        self.device_name = info["name"]
        rate = int(sample_rate or info["default_samplerate"])
        channels = max(1, min(channels, int(info["max_output_channels"])))
        self.player = Player(sample_rate=rate, channels=channels)
        self.connect = connect
        self.jack_name = jack_name
        self.stream = sd.OutputStream(samplerate=rate, channels=channels, dtype="float32", device=device,
                                      blocksize=block_size, callback=self._callback, latency="low")
        self.description = (f"{'JACK client ' + repr(jack_name) if self.jack else 'PortAudio device'} "
                            f"'{self.device_name}' at {rate} Hz, block {block_size}")

    def _callback(self, outdata, frames, time_info, status) -> None:
        if status.output_underflow or status.output_overflow:
            self.player.xruns += 1
        try:
            self.player.process(outdata)
        except Exception:  # never let an exception kill the stream; silence this block instead
            outdata.fill(0.0)
            log.exception("audio callback failed")

    def start(self) -> None:
        # The callback is Python: it must get the GIL well within one period. CPython hands the GIL over only
        # every switch interval (5 ms by default, about one 256-frame period at 48 kHz), so while the worker or
        # the OSC thread runs Python code the callback could miss its deadline; a quarter period bounds the wait.
        period = (self.stream.blocksize or 256) / self.stream.samplerate
        sys.setswitchinterval(min(sys.getswitchinterval(), period / 4))
        self.stream.start()
        if self.jack:
            self._patch(connect=self.connect)

    def _patch(self, connect: bool) -> None:
        """Under JACK: connect our outputs to the physical playback ports (``--connect``), or undo PortAudio's
        automatic connections so that a patchbay (or the user) decides."""
        try:
            import jack
        except ImportError:
            log.warning("JACK-Client is missing: left %s's ports as PortAudio connected them", self.jack_name)
            return
        client = jack.Client(f"{self.jack_name}-patch", no_start_server=True)
        try:
            ours = client.get_ports(f"{self.jack_name}:", is_audio=True, is_output=True)
            if connect:
                system = client.get_ports(is_audio=True, is_input=True, is_physical=True)
                for src, dst in zip(ours, system):
                    if dst not in client.get_all_connections(src):
                        client.connect(src, dst)
                log.info("JACK: connected %s to %s", [p.name for p in ours], [p.name for p in system[:len(ours)]])
            else:
                for src in ours:
                    for dst in client.get_all_connections(src):
                        client.disconnect(src, dst)
                log.info("JACK: %s left unconnected (use --connect to connect to system playback)",
                         [p.name for p in ours])
        except jack.JackError as exc:
            log.warning("JACK: could not patch %s (%s)", self.jack_name, exc)
        finally:
            client.close()

    def stop(self) -> None:
        try:
            self.stream.stop()
            self.stream.close()
        finally:
            if self.jack:
                self.sd._terminate()  # before jackd may go away, or PortAudio aborts the process


def _jack_device(sd):
    for i, dev in enumerate(sd.query_devices()):
        if dev["max_output_channels"] > 0 and "JACK" in sd.query_hostapis(dev["hostapi"])["name"]:
            return i
    return None


def open_output(device=None, no_audio: bool = False, block_size: int = 256, connect: bool = False,
                sample_rate: int | None = None, channels: int = 2):
    """The best output available, with its :class:`Player` (``output.player``): the requested device, else JACK
    if a JACK server runs, else the default sound card, else headless -- logged in one line saying which and, for
    headless, why. A device asked for by name that cannot be opened is an error, not a silent fallback."""
    if no_audio:
        log.info("audio output: headless (--no-audio); clips still go to OSC clients as wav files")
        return HeadlessOutput(Player(sample_rate or 48000, channels))
    try:
        output = SoundDeviceOutput(device=device, block_size=block_size, sample_rate=sample_rate,
                                   connect=connect, channels=channels)
    except Exception as exc:  # no PortAudio, no device, device busy
        if device is not None:
            raise RuntimeError(f"audio device {device!r} cannot be opened: {_first_line(exc)}") from None
        log.warning("audio output: headless -- no sound card or JACK server usable (%s); still serving OSC and "
                    "writing wavs for clients", _first_line(exc))
        return HeadlessOutput(Player(sample_rate or 48000, channels))
    log.info("audio output: %s", output.description)
    return output


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ClockedOutput:
    """Runs a :class:`Player` from a thread at real-time pace without a device: a stand-in clock for headless
    measurements (it is what a sound card would do, minus the sound)."""

    kind = "clock"
    description = "software clock (no device)"

    def __init__(self, player: Player, block_size: int = 256):
        self.player = player
        self.block_size = block_size
        self._stop = threading.Event()
        self._buf = np.zeros((block_size, player.channels), dtype=np.float32)
        self._thread = threading.Thread(target=self._run, name="clock-output", daemon=True)

    def _run(self) -> None:
        period = self.block_size / self.player.sample_rate
        deadline = time.perf_counter()
        while not self._stop.is_set():
            self.player.process(self._buf)
            deadline += period
            delay = deadline - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -period:
                self.player.xruns += 1
                deadline = time.perf_counter()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
