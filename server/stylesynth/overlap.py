"""Whether the engine's two render stages should overlap, decided from their measured pass times.

The engine (:mod:`stylesynth.engine`) renders in two stages on two threads: the generator (G) and PGHI, loudness and
resampling (F). Overlapping them pays only with a core per stage. What a storm's message waits at worst is a whole
pass of what is running, then its own render:

* overlapped: ``2 G' + F'`` (primed: each stage's pass time beside the other);
* in turn (stage 1 waits for stage 2, as one worker would): ``2 (G + F)``.

With two free cores G' ~ G (the GIL costs a little) and overlap wins by about F; with one core shared (other work on
the machine) G' ~ G + F and F' ~ 2 F, and it loses. Neither the CPU share of each thread nor an average told this
apart: both modes pay the GIL and run-queue waits, and one slow first pass outweighed many; so each stage's time
is the median of its last :data:`STAGE_WINDOW` passes, alone and beside the other. While taking turns, one pass in
:data:`OVERLAP_PROBE_EVERY` overlaps anyway, so that a machine that frees up is noticed.

This is its own class because it is one decision with its own data (recent pass times), tested on its own, and
the engine only asks it two questions: may stage 1 start beside stage 2 now, and here is a pass that took so long.
"""
from __future__ import annotations

import collections
import logging

import numpy as np

log = logging.getLogger(__name__)

OVERLAP_PROBE_EVERY = 16   # generator passes in turn-taking mode between two overlapped probes
STAGE_WINDOW = 15          # recent passes whose median is a stage's time (a first pass or a hiccup is no guide)
STAGES = ("generate", "finish")


class OverlapPolicy:
    """Recent pass times of the two render stages, alone and beside each other, and what they say.

    Not locked: the engine calls :meth:`may_overlap` under its own lock and :meth:`measure` from the stage that
    just finished a pass; a decision read while a pass is being recorded is at worst one pass old.
    """

    def __init__(self):
        self._passes = {(stage, kind): collections.deque(maxlen=STAGE_WINDOW)
                        for stage in STAGES for kind in ("alone", "beside")}
        self.turns = 0   # generator passes taken in turn since the last overlapped one

    @property
    def stage_ms(self) -> dict:
        """Median recent pass of each stage, alone and beside the other (ms; None until measured)."""
        out: dict = {stage: {} for stage in STAGES}
        for (stage, kind), passes in self._passes.items():
            out[stage][kind] = float(np.median(passes)) if passes else None
        return out

    def pays(self) -> bool:
        """Whether a storm's message waits less with the stages overlapped than in turn (yes until measured)."""
        times = self.stage_ms
        g, f = times["generate"], times["finish"]
        if None in (g["alone"], g["beside"], f["alone"], f["beside"]):
            return True
        return 2 * g["beside"] + f["beside"] < 2 * (g["alone"] + f["alone"])

    def may_overlap(self) -> bool:
        """May stage 1 take a state while stage 2 works? Yes while overlap pays, and once every
        :data:`OVERLAP_PROBE_EVERY` passes to measure it again."""
        return self.pays() or self.turns >= OVERLAP_PROBE_EVERY

    def measure(self, stage: str, ms: float, overlapped: bool) -> None:
        """A pass of ``stage`` ("generate" or "finish") took ``ms``, beside the other stage or alone. Logs when
        the decision changes."""
        was = self.pays()
        self._passes[stage, "beside" if overlapped else "alone"].append(ms)
        if stage == "generate":
            self.turns = 0 if overlapped else self.turns + 1
        if was != self.pays():
            times = self.stage_ms
            g, f = times["generate"], times["finish"]
            log.info("render stages %s: generator %.1f ms beside stage 2, %.1f alone; stage 2 %.1f beside, %.1f "
                     "alone", "overlap again" if not was else "take turns", g["beside"], g["alone"], f["beside"],
                     f["alone"])
