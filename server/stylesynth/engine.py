"""The engine: control changes -> state -> a clip rendered on worker threads -> the player.

Every control surface (OSC, MIDI, presets) changes the sound only through :meth:`Engine.set_param`,
:meth:`Engine.trigger` and :meth:`Engine.panic`. Rendering is latest-wins: while the workers render, further changes
only replace the wanted state, so a storm of slider moves costs one regeneration at a time, never a queue (the
skipped states are counted as ``coalesced``).

Rendering is a two-stage pipeline on two threads, one clip apart: stage 1 (``engine-generate``) takes the newest
state and runs the latent and the generator; stage 2 (``engine-finish``) turns the previous spectrogram into sound
(PGHI, loudness, resampling) and hands it to the player. So a change arriving just after a render started waits
for one generator pass, not a whole render, before its own begins. That needs a core per stage: where overlapping
would make a message wait longer than taking turns (the machine is busy: the stages only share a core), stage 1
waits for stage 2 to finish instead, as one worker would; :class:`stylesynth.overlap.OverlapPolicy` decides that
from the stages' measured pass times. With one core in the process's affinity the engine does not split them at
all: one thread (``pipeline=False``).

Between the stages is one slot, never a queue, and stage 1 takes a state only while the slot is empty: a
spectrogram made while another still waits could only replace it or queue behind it, and either way it would have
been better made later, from a newer state. When stage 2 is the slower one, stage 1 therefore waits and the changes
meanwhile coalesce into its next state, instead of being drawn and thrown away. Stage 1 alone touches the model
(loading, generating), so the model needs no locks; stage 2 reads only the spectrogram it was given; the audio
callback never waits on either (:mod:`stylesynth.playback`).

A renderer is anything shaped like :class:`stylesynth.synthesizer.Synthesizer`: attributes ``name``,
``sample_rate``, ``prototypes``, ``start_points`` and ``render(state) -> clip`` with ``clip.audio`` (float32 mono)
and ``clip.timings`` (dict of ms). One that also has ``generate(state) -> draft`` and ``finish(draft) -> clip``
(``render`` = ``finish(generate(state))``) is split between the stages; any other renders whole in stage 1.
``loader(model_name)`` returns one or raises with a precise message.
"""
from __future__ import annotations

import collections
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from stylesynth import params as P
from stylesynth.overlap import OverlapPolicy
from stylesynth.playback import Player, prepare_clip
from stylesynth.state import DEFAULT, ControlError, ControlState

log = logging.getLogger(__name__)

LATENCY_WINDOW = 500  # regenerations kept for the p50/p99 figures

Listener = Callable[[str, dict], None]


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


@dataclass
class _Job:
    """One taken state on its way through the two stages."""

    state: ControlState
    version: int                 # every change up to this version is in ``state``
    request_time: float          # perf_counter of the oldest change folded in (for the control -> clip figure)
    started: float               # perf_counter when stage 1 took it
    synth: object = None         # the renderer stage 1 used (a model switch may follow while stage 2 works)
    render: bool = True          # False: the state's sound is already playing or on its way; only completes
    draft: object = None         # stage 1's output: a draft for ``finish``, or a whole clip
    error: Exception | None = None   # stage 1 failed: reported by stage 2, in order with the clips before it
    number: int = 0              # count of render jobs submitted, to know whether a failed one was the newest
    generated: float = 0.0       # perf_counter when stage 1 finished
    beside: tuple = (False, 0)   # when stage 2 took it: (stage 1 generating, stage 1's takes so far)


def _stages(synth) -> tuple[Callable, Callable | None]:
    """(stage 1, stage 2) of a renderer: ``generate``/``finish`` when it has both, else ``render`` whole and
    nothing (stage 2 then only prepares the clip for the player)."""
    generate, finish = getattr(synth, "generate", None), getattr(synth, "finish", None)
    if callable(generate) and callable(finish):
        return generate, finish
    return synth.render, None


class Engine:
    """Holds the control state, renders clips on a worker thread and feeds a :class:`~stylesynth.playback.Player`.

    Parameters
    ----------
    loader : callable
        ``loader(model_name) -> renderer``; raises (any exception, with a precise message) when the model cannot be
        loaded. Called on the worker thread.
    player : Player
        The mixer the audio output runs; clips are resampled to ``player.sample_rate`` on the worker.
    state : ControlState
        Initial values (``state.model`` is loaded by :meth:`start`).
    pipeline : bool, optional
        Run the two render stages on two threads (see the module docstring). Default: when this process may use
        at least two cores.

    Events sent to listeners (``listener(event, payload)``, called from the thread that caused them; keep them
    quick):

    * ``"value"``: ``{"name", "value", "source"}`` -- a parameter changed.
    * ``"clip"``: ``{"seq", "audio", "sample_rate", "clip", "timings", "state"}`` -- a new clip is playing.
    * ``"model"``: ``{"name"}`` -- a model finished loading.
    * ``"error"``: ``{"address", "reason"}`` -- something failed asynchronously (model load, render).
    """

    def __init__(self, loader: Callable[[str], object], player: Player | None = None,
                 state: ControlState = DEFAULT, pipeline: bool | None = None):
        self.loader = loader
        self.player = player or Player()
        self.pipeline = usable_cores() >= 2 if pipeline is None else bool(pipeline)
        self._state = state
        self._lock = threading.Condition()
        self._listeners: list[Listener] = []
        self._synth = None
        self._model_request: tuple[str, Callable[[str], None] | None] | None = None
        self._dirty = False               # the wanted state differs from what stage 1 last took
        self._generating = False          # stage 1 is loading or generating (or, without pipeline, finishing)
        self._handoff: _Job | None = None  # the slot between the stages: one job at most
        self._finishing = False           # stage 2 is finishing a job
        self._submitted_key = None        # render key of the newest state stage 1 rendered (its sound is coming)
        self._jobs = 0                    # render jobs submitted so far
        self.overlap = OverlapPolicy()    # whether stage 1 may start beside stage 2 (pipeline only)
        self._takes = 0                   # states stage 1 has taken so far
        self._changes_since_take = 0
        self._request_time = 0.0          # perf_counter of the oldest change not yet taken by the worker
        self._version = 0                 # counts changes (of state or model) made so far
        self._done_version = 0            # the newest version the worker has finished with
        self._applied_callbacks: list[tuple[int, Callable[[], None]]] = []
        # Who to tell if a change is refused later on the worker (render refused, reset by a model switch):
        # (param name, origin) -> (version of the change, callback). One entry per sender and parameter, so a
        # storm from one slider is answered by one /error per refused render, not one per message.
        self._refusal_callbacks: dict[tuple[str, object], tuple[int, Callable[[str], None]]] = {}
        self._rendered_state: ControlState | None = None  # the state of the clip playing (None: none yet)
        self._rendered_key = None
        self._seq = 0
        self._running = False
        self._threads: list[threading.Thread] = []
        self.started_at = time.time()
        # Figures for /status.
        self.regenerations = 0
        self.coalesced = 0
        self.render_errors = 0
        self.render_ms: collections.deque = collections.deque(maxlen=LATENCY_WINDOW)
        self.control_to_clip_ms: collections.deque = collections.deque(maxlen=LATENCY_WINDOW)
        self.last_timings: dict = {}
        self.last_clip: dict | None = None  # payload of the newest "clip" event, for late listeners
        self.player.set_gain_db(state.gain)
        self.player.set_loop(state.loop)

    # -- life cycle --------------------------------------------------------------------------------------------

    def start(self, timeout: float | None = None, synth=None) -> None:
        """Start the worker and load ``state.model``; raises the loader's exception if that first load fails
        (a server without a model has nothing to play). ``timeout``: wait up to this long for the first clip;
        ``synth``: an already loaded renderer for ``state.model``."""
        self._synth = synth if synth is not None else self.loader(self._state.model)
        self._state = self._fit_to_model(self._state)[0]
        self._running = True
        self._threads = [threading.Thread(target=self._generate_loop, name="engine-generate", daemon=True)]
        if self.pipeline:
            self._threads.append(threading.Thread(target=self._finish_loop, name="engine-finish", daemon=True))
        for thread in self._threads:
            thread.start()
        log.info("rendering %s", "in two stages on two threads (generator | PGHI, loudness)" if self.pipeline
                 else "on one thread (one core: a pipeline would only take turns)")
        with self._lock:
            self._mark_dirty()
        if timeout is not None:
            self.wait_idle(timeout)

    def stop(self) -> None:
        with self._lock:
            self._running = False
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # -- the public control surface (OSC, MIDI, presets) -------------------------------------------------------

    @property
    def state(self) -> ControlState:
        return self._state

    @property
    def synth(self):
        """The loaded renderer (read-only use from other threads: names and lists)."""
        return self._synth

    def set_param(self, name: str, value, source: str = "osc",
                  on_error: Callable[[str], None] | None = None, origin=None) -> str | None:
        """Change one parameter; the one path every control surface uses.

        Parameters
        ----------
        name : str
            A name from :data:`stylesynth.params.PARAMS`.
        value : float or int or bool or str
            The new value (validated by :meth:`ControlState.with_value`).
        source : str
            Who asked (``"osc"``, ``"midi"``, ``"preset"``): passed to listeners so a surface can skip echoes.
        on_error : callable, optional
            Called (on the worker thread) with a reason if the change is refused later: the model fails to load,
            the renderer refuses the state, or a model switch resets the value. The old sound keeps playing and
            the refused values are put back (listeners get ``"value"`` events with ``source="engine"``).
        origin : hashable, optional
            Who sent the change (an OSC sender's address): of several pending changes to one parameter from one
            origin only the newest's ``on_error`` is kept. ``None``: each ``on_error`` counts as its own origin.

        Returns
        -------
        str or None
            A note when the value was altered (clamped, rounded) or the change is pending (model loading).

        Raises
        ------
        ControlError
            Unknown parameter, wrong type, NaN/inf, or a prototype/start point the loaded model does not have.
        """
        if name == "model":
            new, note = self._state.with_value(name, value)  # validates the string
            with self._lock:
                self._model_request = (new.model, on_error)
                self._mark_dirty(count=False)
            return f"loading model {new.model!r}"
        self._check_against_model(name, value)
        with self._lock:
            old = self._state
            new, note = old.with_value(name, value)
            if new == old:
                return note
            self._state = new
            param = P.PARAMS[name]
            if param.regenerates:
                self._mark_dirty()
                if on_error is not None:
                    key = (name, origin if origin is not None else on_error)
                    self._refusal_callbacks[key] = (self._version, on_error)
        if name == "gain":
            self.player.set_gain_db(new.gain)
        elif name == "loop":
            self.player.set_loop(new.loop)
        self._emit("value", {"name": name, "value": new.get(name), "source": source})
        return note

    def set_values(self, values: dict, source: str = "preset",
                   on_error: Callable[[str], None] | None = None) -> list[str]:
        """Change several parameters at once, all or nothing (a preset). ``model`` is loaded as by
        :meth:`set_param`. Returns notes for altered values; raises :class:`ControlError` and changes nothing if
        any value is refused. ``on_error``: as :meth:`set_param`, once for the whole set."""
        values = dict(values)
        model = values.pop("model", None)
        for name in ("prototype", "start"):
            if name in values:
                self._check_against_model(name, values[name])
        with self._lock:
            old = self._state
            new, notes = old.with_values(values)
            if model is not None:
                old.with_value("model", model)  # validate before anything changes
            self._state = new
            if new.render_key() != old.render_key():
                self._mark_dirty()
                if on_error is not None:
                    self._refusal_callbacks[("", on_error)] = (self._version, on_error)
        self.player.set_gain_db(new.gain)
        self.player.set_loop(new.loop)
        for name in values:
            if old.get(name) != new.get(name):
                self._emit("value", {"name": name, "value": new.get(name), "source": source})
        if model is not None and model != old.model:
            notes.append(self.set_param("model", model, source=source, on_error=on_error))
        return notes

    def trigger(self, velocity: float = 1.0) -> str | None:
        """Play the current clip once as a one-shot voice. ``velocity`` 0..1 scales its amplitude (clamped, with a
        note); NaN/inf raise :class:`ControlError`."""
        if isinstance(velocity, bool) or not isinstance(velocity, (int, float)):
            raise ControlError(f"trigger velocity must be a number, got {type(velocity).__name__}")
        if not math.isfinite(velocity):
            raise ControlError(f"trigger velocity {velocity} refused: must be a finite number in [0, 1]")
        note = None
        if not 0.0 <= velocity <= 1.0:
            clamped = min(max(float(velocity), 0.0), 1.0)
            note = f"trigger velocity {velocity:g} is outside [0, 1]: clamped to {clamped:g}"
            velocity = clamped
        self.player.trigger(float(velocity))
        return note

    def panic(self, source: str = "osc") -> None:
        """Silence at once: all voices fade out within one block and the loop stops (``loop`` becomes 0)."""
        self.player.panic()
        with self._lock:
            old = self._state
            self._state = old.with_value("loop", False)[0]
        if old.loop:
            self._emit("value", {"name": "loop", "value": False, "source": source})

    # -- synchronisation and figures ---------------------------------------------------------------------------

    def idle(self) -> bool:
        """True when the clip playing reflects every change made so far."""
        with self._lock:
            return not self._working()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until :meth:`idle` (or ``timeout`` seconds); returns whether it became idle."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._working():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def when_applied(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once every change made so far is playing: a render (or model load) that includes them
        has been handed to the player. Under a storm of later changes this still fires as soon as that render is
        done; it does not wait for the storm to end. Called at once if nothing is pending, else on a worker
        thread."""
        with self._lock:
            if self._done_version < self._version:
                self._applied_callbacks.append((self._version, callback))
                return
        callback()

    def status(self) -> dict:
        """Figures for ``/status``: counts and regeneration latency percentiles in ms."""
        render = np.array(self.render_ms) if self.render_ms else np.zeros(1)
        total = np.array(self.control_to_clip_ms) if self.control_to_clip_ms else np.zeros(1)
        return {
            "model": self._synth.name if self._synth is not None else "",
            "regenerations": self.regenerations,
            "coalesced": self.coalesced,
            "render_errors": self.render_errors,
            "render_p50_ms": float(np.percentile(render, 50)),
            "render_p99_ms": float(np.percentile(render, 99)),
            "latency_p50_ms": float(np.percentile(total, 50)),
            "latency_p99_ms": float(np.percentile(total, 99)),
            "xruns": self.player.xruns,
            "voices": self.player.active_voices,
            "seq": self._seq,
            "uptime_s": time.time() - self.started_at,
        }

    # -- internals ---------------------------------------------------------------------------------------------

    def _working(self) -> bool:
        """Caller holds the lock: a change is not yet playing (wanted, generating, waiting or finishing)."""
        return self._dirty or self._generating or self._handoff is not None or self._finishing

    def _mark_dirty(self, count: bool = True) -> None:
        """Caller holds the lock."""
        self._version += 1
        if count:
            self._changes_since_take += 1
        if not self._dirty:
            # The oldest change not yet taken: a change folded into a later render waited from here, so the
            # control -> clip figure counts its wait too (not only the newest change's).
            self._request_time = time.perf_counter()
        self._dirty = True
        self._lock.notify_all()

    def _check_against_model(self, name: str, value) -> None:
        synth = self._synth
        if synth is None or not isinstance(value, str):
            return
        if name == "prototype" and value != "none" and value not in synth.prototypes:
            raise ControlError(f"prototype {value!r} is not one of model {synth.name!r}'s: "
                               f"{', '.join(['none', *synth.prototypes])}")
        if name == "start" and value != "" and value not in synth.start_points:
            shown = ", ".join(repr(s) for s in synth.start_points[:12])
            raise ControlError(f"start point {value!r} is not one of model {synth.name!r}'s: '' (seed), {shown}")

    def _fit_to_model(self, state: ControlState) -> tuple[ControlState, dict[str, str]]:
        """After a model change: keep the state's values where the new model has them, reset the rest.
        Returns the fitted state and, per reset parameter, why."""
        notes = {}
        synth = self._synth
        changes = {"model": synth.name}
        if state.prototype != "none" and state.prototype not in synth.prototypes:
            changes["prototype"] = "none"
            notes["prototype"] = f"prototype {state.prototype!r} is not in model {synth.name!r}: reset to none"
        if state.start and state.start not in synth.start_points:
            changes["start"] = ""
            notes["start"] = f"start point {state.start!r} is not in model {synth.name!r}: reset to seed"
        return state.with_values(changes)[0], notes

    def _emit(self, event: str, payload: dict) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, payload)
            except Exception:  # a broken client must not stop the engine
                log.exception("listener failed on %s", event)

    # -- the two stages ------------------------------------------------------------------------------------------

    def _generate_loop(self) -> None:
        """Stage 1: take the newest state once stage 2 has taken the previous job, load a requested model,
        generate; hand the job to stage 2."""
        while True:
            with self._lock:
                while self._running and (not self._dirty or self._handoff is not None or
                                         (self._finishing and not self.overlap.may_overlap())):
                    self._lock.wait()
                if not self._running:
                    return
                self._dirty = False
                self._generating = True
                self._takes += 1
                overlapped = self._finishing
                request = self._model_request
                self._model_request = None
                state = self._state
                taken, self._changes_since_take = self._changes_since_take, 0
                request_time = self._request_time
                version = self._version
            self.coalesced += max(0, taken - 1)
            job = _Job(state, version, request_time, time.perf_counter(), render=False)
            try:
                if request is not None:
                    job.state = self._load_model(*request) or state
                job = self._generate(job, overlapped)
            finally:
                self._submit(job)

    def _generate(self, job: _Job, overlapped: bool = False) -> _Job:
        """Stage 1's work on one job: nothing if its sound is already playing or coming, else the renderer's
        first stage (a failure is kept for stage 2 to report in order)."""
        key = job.state.render_key()
        with self._lock:
            if key == self._submitted_key:
                return job                      # render=False: completes these changes once the sound is out
            self._submitted_key = key
            self._jobs += 1
            job.number = self._jobs
        job.render, job.synth = True, self._synth
        start = time.perf_counter()
        try:
            job.draft = _stages(job.synth)[0](job.state)
        except Exception as exc:
            job.error = exc
        job.generated = time.perf_counter()
        if self.pipeline and job.error is None:
            self.overlap.measure("generate", (job.generated - start) * 1000, overlapped)
        return job

    def _submit(self, job: _Job) -> None:
        """Hand a job from stage 1 to stage 2: into the slot (empty: stage 1 took its state only when it was) or,
        without pipeline, finish it here."""
        if not self.pipeline:
            self._complete(job)
            return
        with self._lock:
            self._handoff = job
            self._generating = False
            self._lock.notify_all()

    def _finish_loop(self) -> None:
        """Stage 2: finish whatever job is in the slot."""
        while True:
            with self._lock:
                while self._running and self._handoff is None:
                    self._lock.wait()
                if not self._running:
                    return
                job, self._handoff = self._handoff, None
                self._finishing = True
                job.beside = (self._generating, self._takes)
            self._complete(job)

    def _complete(self, job: _Job) -> None:
        """Stage 2: finish the job's render (if it has one), then tell whoever waits for its changes."""
        try:
            if job.render:
                self._finish(job)
            else:
                self._take_refusal_callbacks(job.version)  # nothing to refuse: these changes are playing
        finally:
            with self._lock:
                self._finishing = False
                if not self.pipeline:
                    self._generating = False
                self._lock.notify_all()
            self._applied(job.version)

    def _applied(self, version: int) -> None:
        """Every change up to ``version`` is done with (its clip is with the player, or it was refused or had
        nothing to change): call the :meth:`when_applied` callbacks waiting for them."""
        with self._lock:
            self._done_version = max(self._done_version, version)
            callbacks = [cb for target, cb in self._applied_callbacks if target <= version]
            self._applied_callbacks = [(t, cb) for t, cb in self._applied_callbacks if t > version]
            self._lock.notify_all()
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("applied callback failed")

    def _load_model(self, name: str, on_error) -> ControlState | None:
        if self._synth is not None and name == self._synth.name:
            return None
        t0 = time.perf_counter()
        try:
            synth = self.loader(name)
        except Exception as exc:  # any failure: report it precisely, keep the old model playing
            reason = f"model {name!r} not loaded ({exc}); still playing {self._synth.name!r}"
            log.error("%s", reason)
            if on_error is not None:
                on_error(reason)
            self._emit("error", {"address": P.PARAMS["model"].osc_address, "reason": reason})
            return None
        self._synth = synth
        with self._lock:
            self._state, notes = self._fit_to_model(self._state)
            state = self._state
            self._submitted_key = None  # same controls, new model: must render again
        log.info("model %r loaded in %.0f ms", synth.name, (time.perf_counter() - t0) * 1000)
        for name, note in notes.items():  # values the new model does not have: tell whoever set them
            for callback in self._take_refusal_callbacks(name=name) or ([on_error] if on_error else []):
                callback(note)
            self._emit("error", {"address": P.PARAMS[name].osc_address, "reason": note})
            self._emit("value", {"name": name, "value": state.get(name), "source": "engine"})
        self._emit("model", {"name": synth.name})
        self._emit("value", {"name": "model", "value": synth.name, "source": "engine"})
        return state

    def _take_refusal_callbacks(self, version: int | None = None, name: str | None = None) -> list:
        """Remove and return the refusal callbacks of changes up to ``version`` (or of parameter ``name``)."""
        with self._lock:
            keys = [key for key, (v, _) in self._refusal_callbacks.items()
                    if (version is None or v <= version) and (name is None or key[0] == name)]
            return [self._refusal_callbacks.pop(key)[1] for key in keys]

    def _put_back(self, refused: ControlState) -> None:
        """After a refused render: values that differ from the clip playing, and that nobody has changed since,
        go back to the playing clip's, so the state (queries, surfaces) says what is heard."""
        good = self._rendered_state
        if good is None:
            return
        with self._lock:
            current = self._state
            back = {name: good.get(name) for name, param in P.PARAMS.items()
                    if param.regenerates and name != "model" and refused.get(name) != good.get(name)
                    and current.get(name) == refused.get(name)}
            if back:
                self._state = current.with_values(back)[0]
        for name, value in back.items():
            self._emit("value", {"name": name, "value": value, "source": "engine"})

    def _finish(self, job: _Job) -> None:
        """Stage 2's work: the renderer's second stage, the clip prepared for the player and handed over; or the
        failure reported (the previous clip keeps playing)."""
        state, synth = job.state, job.synth
        t0 = time.perf_counter()
        try:
            if job.error is not None:
                raise job.error
            finish = _stages(synth)[1]
            clip = finish(job.draft) if finish is not None else job.draft
            audio = np.asarray(clip.audio, dtype=np.float32).reshape(-1)
            if audio.size == 0:
                raise ValueError("the renderer returned an empty clip")
            t1 = time.perf_counter()
            self._seq += 1
            prepared = prepare_clip(audio, synth.sample_rate, self.player.sample_rate, self._seq)
        except Exception as exc:
            self._refused(job, exc)
            return
        self.player.set_clip(prepared)
        done = time.perf_counter()
        beside = job.beside[0] or job.beside[1] != self._takes  # stage 1 was generating, or began meanwhile
        self._take_refusal_callbacks(job.version)
        self._rendered_key = state.render_key()
        self._rendered_state = state
        self.regenerations += 1
        self.render_ms.append((done - job.started) * 1000)
        self.control_to_clip_ms.append((done - job.request_time) * 1000)
        self.last_timings = dict(getattr(clip, "timings", {}) or {})
        # what stage 2 added: the spectrogram's wait in the slot, and resampling + hand-over to the player
        self.last_timings.update(wait=(t0 - job.generated) * 1000, prepare=(done - t1) * 1000)
        self.last_clip = {"seq": self._seq, "audio": audio, "sample_rate": synth.sample_rate, "clip": clip,
                          "timings": self.last_timings, "state": state}
        # Whoever waits for these changes (/sync) hears now, before the listeners and the stage timing: the
        # reply says the clip is with the player, and the benchmarks time the render by it.
        self._applied(job.version)
        self._emit("clip", self.last_clip)
        if self.pipeline:
            self.overlap.measure("finish", (done - t0) * 1000, beside)

    def _refused(self, job: _Job, exc: Exception) -> None:
        """A render failed (in either stage): say so precisely, keep the previous clip, put the values back."""
        state = job.state
        self.render_errors += 1
        reason = f"render failed ({type(exc).__name__}: {exc}); the previous clip keeps playing"
        if isinstance(exc, ValueError):     # the renderer refused these controls: a message, not a crash
            log.warning("%s", reason)
        else:
            log.error("render failed", exc_info=exc)
        if self._rendered_state is None:
            self._rendered_key = state.render_key()  # nothing to go back to: do not retry the same state
        with self._lock:
            if job.number == self._jobs:   # the newest render failed: what is coming is the clip playing
                self._submitted_key = self._rendered_key
        self._put_back(state)  # before answering, so a query right after the /error sees the old value
        for callback in self._take_refusal_callbacks(job.version):  # every sender of a refused change hears it
            callback(reason)
        self._emit("error", {"address": "/stylesynth/render", "reason": reason})
