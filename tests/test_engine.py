"""The engine and the block mixer, in-process: real renders (the procedural ``gaver`` renderer), real mixing.

The player is driven exactly as an audio callback drives it (``process`` on a preallocated block), so these tests
check what reaches the speakers: crossfades without clicks, loop and one-shot modes, the voice pool, gain
smoothing, panics, and latest-wins coalescing of control storms.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from stylesynth.engine import Engine, usable_cores
from stylesynth.gaver_synth import GaverSynth
from stylesynth.overlap import OVERLAP_PROBE_EVERY, STAGE_WINDOW, OverlapPolicy
from stylesynth.playback import CROSSFADE_SECONDS, Player, prepare_clip, resample_circular
from stylesynth.state import DEFAULT, ControlError

pytestmark = pytest.mark.timeout(60)
BLOCK = 256
RATE = 48000


def run_blocks(player: Player, n_blocks: int) -> np.ndarray:
    """Mono output of ``n_blocks`` callbacks."""
    out = np.zeros((BLOCK, player.channels), dtype=np.float32)
    chunks = []
    for _ in range(n_blocks):
        player.process(out)
        assert np.array_equal(out[:, 0], out[:, -1])  # every channel gets the mix
        chunks.append(out[:, 0].copy())
    return np.concatenate(chunks)


@pytest.fixture(params=[True, False], ids=["pipeline", "one-thread"])
def engine(request):
    """The engine both ways it runs: two render stages on two threads, and one after the other on one (one core)."""
    eng = Engine(lambda name: GaverSynth(), Player(RATE, channels=2), pipeline=request.param)
    eng.start(timeout=10)
    yield eng
    eng.stop()


def clip_for(state, seq=1) -> "PreparedClip":  # noqa: F821
    synth = GaverSynth()
    return prepare_clip(synth.render(state).audio, synth.sample_rate, RATE, seq)


# -- resampling and preparation ---------------------------------------------------------------------------------

def test_resample_circular_keeps_pitch_length_and_loop_point():
    tone = np.sin(2 * np.pi * (2048 / 32768) * np.arange(32768)).astype(np.float32)  # whole periods: circular
    up = resample_circular(tone, 16000, 48000)
    assert len(up) == 3 * len(tone)
    spectrum = np.abs(np.fft.rfft(up))
    assert np.fft.rfftfreq(len(up), 1 / 48000)[spectrum.argmax()] == pytest.approx(1000, abs=1)
    reference = np.sin(2 * np.pi * (2048 / 98304) * np.arange(98304))
    error = np.abs(up - reference)
    assert error.max() < 3e-3  # the filter's pass-band ripple
    edges = np.concatenate([error[:2000], error[-2000:]])
    assert edges.max() <= 1.2 * error[2000:-2000].max()  # and no transient at the loop point


def test_resample_circular_down_and_to_44k1_keeps_a_band_limited_loop():
    periods = 2048                                          # 1 kHz over one 2.048 s clip: circular at any rate
    at_48k = np.sin(2 * np.pi * periods * np.arange(98304) / 98304).astype(np.float32)
    down = resample_circular(at_48k, 48000, 16000)
    assert len(down) == 32768 and down.dtype == np.float32
    np.testing.assert_allclose(down, np.sin(2 * np.pi * periods * np.arange(32768) / 32768), atol=1e-4)
    odd = resample_circular(down, 16000, 44100)             # 90316.8 samples: rounded, the loop stays whole
    assert len(odd) == 90317
    np.testing.assert_allclose(odd, np.sin(2 * np.pi * periods * np.arange(90317) / 90317), atol=1e-4)


def test_resample_circular_by_phases_equals_the_zero_padded_transform():
    """Up by a whole factor (16 -> 48 kHz) the samples come from k - 1 transforms of the input's length: the same
    band-limited signal as the general path (zero-padded spectrum, Nyquist bin halved) to float32 precision, and
    every k-th sample is the input's own."""
    import scipy.fft

    rng = np.random.default_rng(1)
    for n, k in ((32768, 3), (7001, 3), (7000, 2)):
        x = rng.normal(size=n).astype(np.float32)
        spectrum = np.zeros(k * n // 2 + 1, dtype=np.complex128)
        spectrum[: n // 2 + 1] = np.fft.rfft(x.astype(np.float64))
        if n % 2 == 0:
            spectrum[n // 2] *= 0.5
        reference = scipy.fft.irfft(spectrum, n=k * n) * k
        up = resample_circular(x, 16000, 16000 * k)
        assert up.dtype == np.float32 and up.shape == (k * n,)
        np.testing.assert_allclose(up, reference, atol=2e-6 * np.abs(x).max())
        np.testing.assert_array_equal(up[::k], x)


def test_prepare_clip_keeps_a_finite_clip_and_its_input():
    audio = np.sin(np.arange(16000, dtype=np.float32) / 7)
    before = audio.copy()
    prepared = prepare_clip(audio, 16000, 48000, seq=1)
    np.testing.assert_array_equal(audio, before)                  # read, never written
    np.testing.assert_array_equal(prepared.loop[::3], audio)
    assert prepared.loop is not prepared.oneshot and not prepared.oneshot.flags.writeable


def test_prepare_clip_silences_non_finite_and_fades_one_shots():
    audio = np.ones(1600, dtype=np.float32)
    audio[10] = np.nan
    prepared = prepare_clip(audio, 16000, 16000, seq=3)
    assert np.isfinite(prepared.loop).all() and prepared.loop[10] == 0.0
    assert prepared.oneshot[0] == 0.0 and prepared.oneshot[-1] < 0.05
    assert not prepared.loop.flags.writeable


# -- the mixer --------------------------------------------------------------------------------------------------

def test_clip_swap_is_an_equal_power_crossfade_without_click():
    player = Player(RATE, channels=1)
    a = clip_for(DEFAULT, 1)
    b = clip_for(DEFAULT.with_values({"brightness": 4.0, "seed": 3})[0], 2)
    player.set_clip(a)
    before = run_blocks(player, 40)
    np.testing.assert_allclose(before, a.loop[:len(before)], atol=1e-6)
    player.set_clip(b)
    swap_at = len(before)
    after = run_blocks(player, 40)
    y = np.concatenate([before, after])
    n = np.arange(swap_at, len(y))
    xf = int(CROSSFADE_SECONDS * RATE)
    theta = np.clip((n - swap_at) / xf, 0, 1) * np.pi / 2
    expected = np.cos(theta) * a.loop[n % len(a.loop)] + np.sin(theta) * b.loop[n % len(b.loop)]
    np.testing.assert_allclose(y[swap_at:], expected, atol=1e-5)  # same position, equal-power curve
    jumps = np.abs(np.diff(np.concatenate([a.loop, b.loop])))
    assert abs(y[swap_at] - y[swap_at - 1]) <= np.percentile(jumps, 99)
    assert np.abs(np.diff(y[swap_at - 1:swap_at + xf + 1])).max() <= jumps.max()
    assert player.swaps[-1][:2] == (2, swap_at)


def test_a_clip_arriving_mid_fade_starts_its_own_fade_at_once():
    """A swap during a running crossfade does not wait: the newest clip fades in, the half-faded pair gives up its
    power oldest first (the first clip is gone before the second), equal power throughout, no click."""
    player = Player(RATE, channels=1)
    clips = [clip_for(DEFAULT.with_value("seed", s)[0], s + 1) for s in range(3)]
    a, b, c = (clip.loop for clip in clips)
    player.set_clip(clips[0])
    before = run_blocks(player, 4)
    player.set_clip(clips[1])
    first = run_blocks(player, 1)
    player.set_clip(clips[2])  # arrives 256 samples into the 960-sample fade to clips[1]
    y = np.concatenate([before, first, run_blocks(player, 6)])
    assert player.current_seq == 3 and player.swaps[-1][:2] == (3, 5 * BLOCK)
    xf = int(CROSSFADE_SECONDS * RATE)
    ramp = lambda x: np.clip(x / xf, 0, 1) * np.pi / 2  # noqa: E731
    n1 = np.arange(4 * BLOCK, 5 * BLOCK)
    expected1 = np.cos(ramp(n1 - 4 * BLOCK)) * a[n1] + np.sin(ramp(n1 - 4 * BLOCK)) * b[n1]
    n2 = np.arange(5 * BLOCK, len(y))
    p_a, p_b = np.cos(ramp(BLOCK)) ** 2, np.sin(ramp(BLOCK)) ** 2  # the pair's powers when clips[2] arrived
    in2 = np.sin(ramp(n2 - 5 * BLOCK))
    left_a = np.clip(p_a - in2 ** 2, 0, p_a)                      # the oldest gives up power first ...
    left_b = np.clip(p_a + p_b - in2 ** 2, 0, p_b)                # ... then the next
    expected2 = np.sqrt(left_a) * a[n2] + np.sqrt(left_b) * b[n2] + in2 * c[n2]
    np.testing.assert_allclose(y[n1], expected1, atol=1e-5)
    np.testing.assert_allclose(y[n2], expected2, atol=1e-5)
    assert left_a + left_b + in2 ** 2 == pytest.approx(1.0)      # equal power at every sample
    gone_a, gone_b = np.flatnonzero(left_a == 0)[0], np.flatnonzero(left_b == 0)[0]
    assert gone_a < gone_b and left_b[gone_a] == pytest.approx(p_b)  # b untouched until a is gone
    jumps = np.abs(np.diff(np.concatenate([a, b, c])))
    assert np.abs(np.diff(y)).max() <= jumps.max()


def test_a_swap_every_block_never_clicks_never_waits_and_settles_on_the_newest():
    """A swap at every block (a storm faster than the crossfade): tails give up power oldest first, so they are
    gone before the slots fill and no swap waits; never a jump."""
    player = Player(RATE, channels=1)
    clips = [clip_for(DEFAULT.with_values({"seed": s, "brightness": s % 5 - 2.0})[0], s + 1) for s in range(12)]
    player.set_clip(clips[0])
    chunks = [run_blocks(player, 2)]
    for clip in clips[1:]:
        player.set_clip(clip)
        chunks.append(run_blocks(player, 1))
    chunks.append(run_blocks(player, 8))
    y = np.concatenate(chunks)
    jumps = np.abs(np.diff(np.concatenate([clip.loop for clip in clips])))
    assert np.abs(np.diff(y)).max() <= jumps.max()
    assert player.current_seq == 12 and player._n_tails == 0
    assert [frame for _, frame, _ in player.swaps][-11:] == [(2 + k) * BLOCK for k in range(11)]  # none waited
    tail = y[-2 * BLOCK:]
    n = np.arange(len(y) - 2 * BLOCK, len(y))
    np.testing.assert_allclose(tail, clips[-1].loop[n % len(clips[-1].loop)], atol=1e-6)  # alone, in time


def test_loop_off_fades_out_and_on_fades_back_in_time():
    player = Player(RATE, channels=1)
    clip = clip_for(DEFAULT)
    player.set_clip(clip)
    run_blocks(player, 10)
    player.set_loop(False)
    fade = run_blocks(player, 1)
    assert np.abs(fade[-8:]).max() < np.abs(clip.loop).max() * 0.05  # ramped down within one block
    assert np.abs(run_blocks(player, 20)).max() == 0.0
    player.set_loop(True)
    back = run_blocks(player, 2)
    pos = 31 * BLOCK  # the loop's clock kept running while silent (10 + 1 + 20 blocks)
    np.testing.assert_allclose(back[BLOCK:], clip.loop[pos + BLOCK:pos + 2 * BLOCK], atol=1e-6)


def test_one_shot_plays_once_scaled_by_velocity():
    player = Player(RATE, channels=1)
    player.set_loop(False)
    clip = clip_for(DEFAULT)
    player.set_clip(clip)
    run_blocks(player, 2)
    player.trigger(0.5)
    n_blocks = len(clip.oneshot) // BLOCK + 4
    y = run_blocks(player, n_blocks)
    np.testing.assert_allclose(y[:len(clip.oneshot)], 0.5 * clip.oneshot, atol=1e-6)
    assert np.abs(y[len(clip.oneshot):]).max() == 0.0
    assert player.active_voices == 0


def test_voice_pool_is_fixed_and_steals_the_oldest_smoothly():
    player = Player(RATE, channels=1, voices=4)
    player.set_loop(False)
    player.set_clip(clip_for(DEFAULT))
    for _ in range(4):
        player.trigger(1.0)
    run_blocks(player, 1)
    assert player.active_voices == 4
    player.trigger(1.0)  # pool full: the oldest fades out over this block, the new voice starts next block
    run_blocks(player, 2)
    assert player.active_voices == 4
    assert player.triggers_dropped == 0


def test_trigger_before_any_clip_is_dropped_not_queued():
    player = Player(RATE, channels=1)
    player.trigger(1.0)
    assert np.abs(run_blocks(player, 2)).max() == 0.0
    assert player.triggers_dropped == 1


def test_gain_is_ramped_across_a_block():
    player = Player(RATE, channels=1)
    dc = prepare_clip(np.full(16000, 0.5, dtype=np.float32), 16000, RATE, 1)
    player.set_clip(dc)
    run_blocks(player, 2)
    player.set_gain_db(-20.0)
    y = run_blocks(player, 2)
    assert y[0] > 0.49 and y[BLOCK - 1] == pytest.approx(0.05, rel=1e-3)
    assert np.abs(np.diff(y[:BLOCK])).max() < 0.01  # a ramp of 256 small steps, not one step of 0.45
    assert y[BLOCK:] == pytest.approx(0.05, rel=1e-3)


def test_panic_silences_within_a_block():
    player = Player(RATE, channels=1)
    player.set_clip(clip_for(DEFAULT))
    for _ in range(3):
        player.trigger(1.0)
    run_blocks(player, 5)
    player.panic()
    run_blocks(player, 1)
    assert np.abs(run_blocks(player, 10)).max() == 0.0
    assert player.active_voices == 0


# -- the engine -------------------------------------------------------------------------------------------------

def test_engine_renders_the_state_and_plays_it(engine):
    assert engine.regenerations == 1 and engine.player.current_seq == 0  # handed over, not yet picked up
    y = run_blocks(engine.player, 400)  # a whole clip (98304 samples at 48 kHz) and a bit
    assert np.sqrt(np.mean(y ** 2)) > 0.01
    expected = clip_for(DEFAULT)
    np.testing.assert_allclose(y, np.resize(expected.loop, len(y)), atol=1e-6)  # and it loops


def test_storm_of_changes_is_coalesced_latest_wins(engine):
    before = engine.regenerations
    for i in range(200):
        engine.set_param("brightness", (i % 100) / 25 - 2, source="test")
    engine.set_param("brightness", 3.3)
    assert engine.wait_idle(20)
    done = engine.regenerations - before
    assert 1 <= done < 100, done
    assert engine.coalesced >= 201 - done - 1
    run_blocks(engine.player, 10)  # the last clip is the one for the last value
    expected = clip_for(DEFAULT.with_value("brightness", 3.3)[0])
    np.testing.assert_allclose(engine.player._clip.loop, expected.loop, atol=1e-6)


def test_callback_keeps_running_while_the_worker_renders(engine):
    """The mixer is fed from another thread while the worker renders: no lock is shared, output keeps coming."""
    stop = threading.Event()
    blocks = []

    def callback_thread():
        out = np.zeros((BLOCK, 2), dtype=np.float32)
        while not stop.is_set():
            engine.player.process(out)
            blocks.append(float(np.abs(out).max()))
            time.sleep(BLOCK / RATE)

    t = threading.Thread(target=callback_thread)
    t.start()
    try:
        for i in range(30):
            engine.set_param("seed", i)
            time.sleep(0.005)
        assert engine.wait_idle(20)
    finally:
        stop.set()
        t.join()
    assert len(blocks) > 20 and max(blocks) > 0


def test_gain_and_loop_do_not_regenerate(engine):
    before = engine.regenerations
    assert engine.set_param("gain", -6.0) is None
    engine.set_param("loop", False)
    assert engine.wait_idle(5) and engine.regenerations == before


def test_validation_goes_through_the_state(engine):
    assert "clamped" in engine.set_param("rate", 9.0)
    with pytest.raises(ControlError, match="finite"):
        engine.set_param("rate", float("nan"))
    with pytest.raises(ControlError, match="unknown parameter"):
        engine.set_param("colour", 1.0)
    with pytest.raises(ControlError, match="not one of model 'gaver'"):
        engine.set_param("prototype", "Dog Bark")
    with pytest.raises(ControlError):
        engine.trigger(float("inf"))
    assert "clamped" in engine.trigger(2.0)
    assert engine.state.rate == 5.0


def test_set_values_is_all_or_nothing(engine):
    with pytest.raises(ControlError):
        engine.set_values({"brightness": 1.0, "rate": float("nan")})
    assert engine.state.brightness == 0.0
    notes = engine.set_values({"brightness": 1.0, "gain": 50.0})
    assert engine.state.brightness == 1.0 and engine.state.gain == 12.0 and len(notes) == 1


def test_failed_model_load_keeps_the_old_model(engine):
    errors = []

    def loader(name):
        if name == "broken":
            raise RuntimeError("generator.safetensors: header is not JSON")
        return GaverSynth()

    engine.loader = loader
    engine.add_listener(lambda event, payload: errors.append(payload) if event == "error" else None)
    reported = []
    assert "loading" in engine.set_param("model", "broken", on_error=reported.append)
    assert engine.wait_idle(10)
    assert reported and "header is not JSON" in reported[0] and "still playing 'gaver'" in reported[0]
    assert errors and errors[0]["address"] == "/stylesynth/model"
    assert engine.state.model == "gaver" and engine.synth.name == "gaver"
    engine.set_param("seed", 11)
    assert engine.wait_idle(10) and engine.render_errors == 0


def test_render_failure_keeps_the_previous_clip(engine):
    class Exploding(GaverSynth):
        def render(self, state):
            if state.seed == 13:
                raise FloatingPointError("generator produced NaN")
            return super().render(state)

    engine._synth = Exploding()
    run_blocks(engine.player, 2)
    seq = engine.player.current_seq
    engine.set_param("seed", 13)
    assert engine.wait_idle(10)
    run_blocks(engine.player, 2)
    assert engine.render_errors == 1 and engine.player.current_seq == seq
    engine.set_param("seed", 14)
    assert engine.wait_idle(10) and engine.regenerations >= 2


def test_panic_sets_loop_off_and_notifies(engine):
    events = []
    engine.add_listener(lambda e, p: events.append((e, p.get("name"), p.get("value"))))
    engine.panic(source="midi")
    assert engine.state.loop is False
    assert ("value", "loop", False) in events


def test_status_figures(engine):
    engine.set_param("seed", 5)
    engine.wait_idle(10)
    s = engine.status()
    assert s["model"] == "gaver" and s["regenerations"] >= 2
    assert 0 < s["render_p50_ms"] <= s["render_p99_ms"]
    assert s["latency_p99_ms"] >= s["render_p50_ms"] * 0.5


def test_when_applied_fires_during_a_storm(engine):
    """/sync must answer while changes keep coming: it waits for a render including the marked change only."""
    fired = threading.Event()
    stop = threading.Event()

    def storm():
        i = 0
        while not stop.is_set():
            engine.set_param("brightness", (i % 50) / 10 - 2.5)
            i += 1
            time.sleep(0.002)

    t = threading.Thread(target=storm)
    t.start()
    try:
        time.sleep(0.05)
        engine.set_param("seed", 21)
        engine.when_applied(fired.set)
        assert fired.wait(10), "never fired while the storm went on"
        assert engine.last_clip["state"].seed == 21
    finally:
        stop.set()
        t.join()


class Refusing(GaverSynth):
    """The procedural renderer, refusing any positive brightness the way a model without semantic controls does."""

    def render(self, state):
        if state.brightness > 0:
            raise ValueError("model 'gaver' ships no semantic controls, so brightness cannot act")
        return super().render(state)


def test_refused_render_answers_each_sender_and_puts_the_value_back(engine):
    engine._synth = Refusing()
    events = []
    engine.add_listener(lambda e, p: events.append((e, p.get("name"), p.get("value"), p.get("source"))))
    seq, regenerations = engine._seq, engine.regenerations
    heard = {"a": [], "b": []}
    for i in range(5):  # one sender's storm: one answer per refused render, not one per message
        engine.set_param("brightness", 1.0 + i / 10, on_error=heard["a"].append, origin="a")
    engine.set_param("rate", 2.0, on_error=heard["b"].append, origin="b")
    assert engine.wait_idle(10)
    assert heard["a"] and len(heard["a"]) <= 2 and "brightness cannot act" in heard["a"][0]
    assert heard["b"] and "previous clip keeps playing" in heard["b"][0]
    assert engine.regenerations == regenerations and engine._seq == seq  # the old sound keeps playing
    assert engine.state.brightness == 0.0 and engine.state.rate == 0.0  # the state says what is heard
    assert ("value", "brightness", 0.0, "engine") in events and ("value", "rate", 0.0, "engine") in events
    engine.set_param("brightness", -1.0, on_error=heard["a"].append, origin="a")  # accepted: nobody hears
    assert engine.wait_idle(10) and engine.regenerations == regenerations + 1 and len(heard["a"]) <= 2


def test_model_switch_tells_the_sender_of_a_value_it_resets(engine):
    """A start point the old model has, set while the new model loads, is reset: its sender hears why."""
    loading = threading.Event()

    class Bare(GaverSynth):
        name = "bare"
        prototypes: list = []
        start_points: list = []

    def loader(name):
        loading.wait(5)
        return Bare() if name == "bare" else GaverSynth()

    engine.loader = loader
    heard, model_heard = [], []
    engine.set_param("model", "bare", on_error=model_heard.append, origin="x")
    time.sleep(0.05)  # the worker is inside the loader now
    engine.set_param("start", "Knock - Wood", on_error=heard.append, origin="x")
    loading.set()
    assert engine.wait_idle(10)
    assert engine.synth.name == "bare" and engine.state.start == ""
    assert heard == ["start point 'Knock - Wood' is not in model 'bare': reset to seed"]
    assert model_heard == []


# -- the two-stage pipeline -------------------------------------------------------------------------------------

class Staged(GaverSynth):
    """The procedural renderer split like the trained model's: ``generate`` draws the clip, ``finish`` hands it on.
    ``finish`` waits at ``gate`` while it is closed and records what each stage did, on which thread."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.finishing = threading.Event()
        self.log: list[tuple[str, float, str]] = []   # (stage, brightness, thread name)

    def generate(self, state):
        self.log.append(("generate", state.brightness, threading.current_thread().name))
        return self.render(state)

    def finish(self, draft):
        self.log.append(("finish", draft.brightness, threading.current_thread().name))
        self.finishing.set()
        assert self.gate.wait(10)
        return draft

    def render(self, state):
        clip = super().render(state)
        clip.brightness = state.brightness  # which state a draft came from, for the log
        return clip

    def wait_logged(self, entry: tuple, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while entry not in self.log and time.monotonic() < deadline:
            time.sleep(0.001)
        return entry in self.log


def staged_engine() -> tuple[Engine, Staged]:
    synth = Staged()
    eng = Engine(lambda name: synth, Player(RATE, channels=1), pipeline=True)
    eng.start(timeout=10, synth=synth)
    return eng, synth


def test_generator_runs_for_the_newest_state_while_the_previous_one_is_finished():
    engine, synth = staged_engine()
    try:
        synth.gate.clear()
        synth.finishing.clear()
        engine.set_param("brightness", 1.0)
        assert synth.finishing.wait(5)                       # stage 2 holds clip 1.0 ...
        engine.set_param("brightness", 2.0)
        assert synth.wait_logged(("generate", 2.0, "engine-generate"))  # ... while stage 1 generates 2.0
        assert not engine.idle()
        synth.gate.set()
        assert engine.wait_idle(10)
        finished = [b for stage, b, thread in synth.log if stage == "finish"]
        assert finished[-2:] == [1.0, 2.0]
        assert {thread for stage, _, thread in synth.log if stage == "finish"} == {"engine-finish"}
    finally:
        synth.gate.set()
        engine.stop()


def test_stage_one_waits_while_a_spectrogram_waits_and_then_takes_the_newest_state():
    """Never a queue between the stages, and no spectrogram drawn only to be thrown away: while one waits for
    stage 2, stage 1 takes no state; the changes meanwhile coalesce, and the next generation is of the newest."""
    engine, synth = staged_engine()
    try:
        synth.gate.clear()
        synth.finishing.clear()
        engine.set_param("brightness", 1.0)
        assert synth.finishing.wait(5)                       # stage 2 busy with 1.0
        engine.set_param("brightness", 2.0)
        assert synth.wait_logged(("generate", 2.0, "engine-generate"))   # 2.0 made, waits in the slot
        applied = threading.Event()
        coalesced = engine.coalesced
        for value in (2.5, 3.0, 3.5):                        # stage 1 must not draw these
            engine.set_param("brightness", value)
        engine.when_applied(applied.set)
        time.sleep(0.1)
        assert [b for stage, b, _ in synth.log if stage == "generate"][-1] == 2.0
        assert not applied.is_set()
        synth.gate.set()
        assert applied.wait(10) and engine.wait_idle(10)
        generated = [b for stage, b, _ in synth.log if stage == "generate"]
        assert generated[-2:] == [2.0, 3.5]                  # 2.5 and 3.0 were never drawn ...
        assert engine.coalesced == coalesced + 2             # ... and count as coalesced
        assert [b for stage, b, _ in synth.log if stage == "finish"][-3:] == [1.0, 2.0, 3.5]
        assert engine.last_clip["state"].brightness == 3.5
        run_blocks(engine.player, 2)
        np.testing.assert_array_equal(engine.player._clip.loop, clip_for(DEFAULT.with_value("brightness", 3.5)[0]).loop)
    finally:
        synth.gate.set()
        engine.stop()


def test_stages_take_turns_when_the_generator_gets_no_core_of_its_own():
    """Overlap pays only with a core per stage: when the stages beside each other only share one, stage 1 waits
    for stage 2 to finish (as one worker would), and overlaps again for a probe after OVERLAP_PROBE_EVERY passes."""
    engine, synth = staged_engine()
    try:
        for _ in range(STAGE_WINDOW):                        # one core, shared (its own passes will not outvote)
            for stage, alone, beside in (("generate", 7.0, 11.0), ("finish", 4.0, 8.0)):
                engine.overlap.measure(stage, alone, overlapped=False)
                engine.overlap.measure(stage, beside, overlapped=True)
        assert not engine.overlap.pays()
        engine.overlap.turns = 0
        synth.gate.clear()
        synth.finishing.clear()
        engine.set_param("brightness", 1.0)
        assert synth.finishing.wait(5)                       # stage 2 busy with 1.0
        engine.set_param("brightness", 2.0)
        assert not synth.wait_logged(("generate", 2.0, "engine-generate"), timeout=0.2)  # waits its turn
        synth.gate.set()
        assert synth.wait_logged(("generate", 2.0, "engine-generate"))
        assert engine.wait_idle(10) and engine.last_clip["state"].brightness == 2.0
        engine.overlap.turns = OVERLAP_PROBE_EVERY           # time for a probe: overlap again, once
        synth.gate.clear()
        synth.finishing.clear()
        engine.set_param("brightness", 3.0)
        assert synth.finishing.wait(5)
        engine.set_param("brightness", 4.0)
        assert synth.wait_logged(("generate", 4.0, "engine-generate"))  # drawn while stage 2 holds 3.0
        synth.gate.set()
        assert engine.wait_idle(10)
    finally:
        synth.gate.set()
        engine.stop()


def test_overlap_pays_while_a_message_waits_less_than_with_the_stages_in_turn():
    policy = OverlapPolicy()
    assert policy.pays() and policy.may_overlap()                  # nothing measured yet: try
    for _ in range(20):                                            # two free cores: the GIL costs ~1 ms
        policy.measure("generate", 7.0, overlapped=False)
        policy.measure("finish", 4.0, overlapped=False)
        policy.measure("generate", 8.0, overlapped=True)
        policy.measure("finish", 4.5, overlapped=True)
    assert policy.pays() and policy.turns == 0                     # 2 * 8 + 4.5 < 2 * (7 + 4)
    for _ in range(20):                                            # one core shared: each slowed by the other
        policy.measure("generate", 11.0, overlapped=True)
        policy.measure("finish", 8.0, overlapped=True)
    assert policy.stage_ms["generate"]["beside"] == 11.0 and not policy.pays()
    policy.measure("finish", 300.0, overlapped=False)              # a hiccup (a first pass) does not decide
    assert policy.stage_ms["finish"]["alone"] == 4.0
    policy.measure("generate", 7.0, overlapped=False)              # alone: counts towards the next probe
    assert policy.turns == 1 and not policy.may_overlap()
    for _ in range(OVERLAP_PROBE_EVERY - 1):
        policy.measure("generate", 7.0, overlapped=False)
    assert policy.may_overlap()                                    # a probe is due


@pytest.mark.parametrize("stage", ["generate", "finish"])
def test_a_failure_in_either_stage_keeps_the_clip_and_is_reported_in_order(stage):
    engine, synth = staged_engine()
    failing = {"generate": synth.generate, "finish": synth.finish}

    def broken(arg, _real=failing[stage]):
        brightness = arg.brightness
        if brightness == 4.0:
            raise FloatingPointError(f"{stage} produced NaN")
        return _real(arg)

    setattr(synth, stage, broken)
    heard = []
    try:
        engine.set_param("brightness", 1.0)
        assert engine.wait_idle(10)
        seq = engine._seq
        engine.set_param("brightness", 4.0, on_error=heard.append, origin="a")
        assert engine.wait_idle(10)
        assert heard and f"{stage} produced NaN" in heard[0] and engine._seq == seq
        assert engine.state.brightness == 1.0                # put back: the state says what is heard
        engine.set_param("brightness", 4.0, on_error=heard.append, origin="a")  # tried again, refused again
        assert engine.wait_idle(10) and len(heard) == 2
        engine.set_param("brightness", 2.0)
        assert engine.wait_idle(10) and engine._seq == seq + 1 and engine.render_errors == 2
    finally:
        engine.stop()


def test_the_pipeline_plays_what_render_makes_bit_for_bit():
    """The trained model through both stages on two threads, under a storm: the clip playing is exactly what
    ``render`` makes of the last state (same state, same samples, whichever path)."""
    from stylesynth.synthesizer import Synthesizer

    synth = Synthesizer.load("hits")
    engine = Engine(lambda name: synth, Player(RATE, channels=1), state=DEFAULT.with_value("model", "hits")[0],
                    pipeline=True)
    engine.start(timeout=60, synth=synth)
    try:
        for i in range(30):
            engine.set_param("brightness", i / 10)
            time.sleep(0.002)
        assert engine.wait_idle(30)
        clip = engine.last_clip
        assert clip["state"].brightness == pytest.approx(2.9)
        expected = synth.render(engine.state)
        np.testing.assert_array_equal(clip["audio"], expected.audio)
        assert {"generator", "pghi", "loudness", "wait", "prepare"} <= set(engine.last_timings)
    finally:
        engine.stop()


def test_one_core_runs_the_stages_on_one_thread():
    """Where the process may use one core, two stages would only take turns: the engine does not split them."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    mask = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(mask)})                     # this thread only (pid 0 = the calling thread)
    try:
        assert usable_cores() == 1
        assert Engine(lambda name: GaverSynth()).pipeline is False
    finally:
        os.sched_setaffinity(0, mask)
    assert Engine(lambda name: GaverSynth()).pipeline is (len(mask) >= 2)
