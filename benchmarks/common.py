"""Shared parts of the benchmarks: thread setup, machine info, timing, model lookup, and the tifresi worker.

Every benchmark in this folder prints a table, takes ``--quick`` and ``--json PATH``, and reports ratios against a
baseline measured in the same run (the machine is shared and its load changes by the minute, so absolute figures
from different runs do not compare; same-run ratios do). This module holds what they have in common, so each
script says only what it measures.

tifresi (the research system's PGHI) lives in its own venv, ``benchmarks/.venv-tifresi`` (built by
``tifresi_env.sh``, never a stylesynth dependency), and runs in a subprocess: :class:`TifresiWorker` starts
``_tifresi_worker.py`` there on a set of signals and asks it, one line at a time, to time or return inversions.

Nothing here imports torch, numpy-heavy stylesynth modules or numba at import time: :func:`set_threads` must run
before them, because numba and OpenMP read their thread counts once, when first loaded.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TIFRESI_PY = HERE / ".venv-tifresi" / "bin" / "python"
TIFRESI_WORKER = HERE / "_tifresi_worker.py"
TIFRESI_CHANNELS = 512

#: Printed under every table: why same-run ratios are the headline.
NOISE_NOTE = ("the machine is shared (other jobs, a training run): absolute times are noisy, compare the same-run "
              "ratios")


class BenchError(Exception):
    """Bad input to a benchmark (unknown model, bad option): printed as one line, exit status 2."""


def run(main) -> None:
    """``raise SystemExit(run(main))`` for a benchmark script: a :class:`BenchError` becomes ``error: ...`` on
    stderr and exit status 2, never a traceback."""
    try:
        code = main()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    raise SystemExit(code)


# ---------------------------------------------------------------------------------------------------------------
# Threads and machine
# ---------------------------------------------------------------------------------------------------------------

def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_threads(threads: int) -> int:
    """Use ``threads`` threads in torch, OpenMP/BLAS and numba. Call before importing numba or numpy-heavy modules
    (numba reads ``NUMBA_NUM_THREADS`` once). Returns the count torch reports."""
    if threads < 1:
        raise BenchError(f"--threads must be at least 1, got {threads}")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)       # one op at a time: intra-op threads are the ones that matter here
    except RuntimeError:                       # already set (a second call in the same process)
        pass
    return torch.get_num_threads()


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_flags() -> list[str]:
    """The CPU feature flags relevant to these benchmarks (from /proc/cpuinfo, Linux only)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int) -> dict:
    """What the figures were measured on; ``load_start`` is taken now, :func:`finish` adds ``load_end``."""
    import numpy
    import torch

    return {"cpu": cpu_model(), "cpu_count": cpu_count(), "cpu_flags": cpu_flags(), "threads": threads,
            "torch": torch.__version__, "numpy": numpy.__version__, "python": sys.version.split()[0],
            "load_start": load_average(), "note": NOISE_NOTE}


def finish(doc: dict, json_path: str | None, started: float) -> None:
    """Print the load at the end and the run time, and write ``doc`` (with machine load and seconds) as JSON."""
    doc.setdefault("machine", {})["load_end"] = load_average()
    doc["seconds"] = round(time.perf_counter() - started, 2)
    m = doc["machine"]
    print(f"\nmachine: {m.get('cpu')}, {m.get('cpu_count')} cores, torch {m.get('torch')}, "
          f"{m.get('threads')} thread(s); load average {m.get('load_start')} at start, {m['load_end']} at end")
    print(f"note: {NOISE_NOTE}. Took {doc['seconds']:.0f} s.")
    busiest = max((m.get("load_start") or [0])[0], m["load_end"][0] if m["load_end"] else 0)
    if busiest > cpu_count():
        print(f"warning: load average {busiest:.1f} exceeds the {cpu_count()} cores: other work dominated these "
              "timings (multi-threaded torch suffers most); only the same-run ratios mean much")
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
        print(f"wrote {path}")


# ---------------------------------------------------------------------------------------------------------------
# Timing and figures
# ---------------------------------------------------------------------------------------------------------------

def median_ms(fn, repeats: int, warmup: int = 1) -> tuple[float, object]:
    """Median wall time of ``fn()`` in ms over ``repeats`` calls after ``warmup`` untimed calls; and its last
    result."""
    import numpy as np

    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times)), out


def summary(values_ms) -> dict:
    """p50, p99, mean, min and max of a list of times (ms), and how many there were."""
    import numpy as np

    v = np.asarray(values_ms, dtype=np.float64)
    return {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)), "mean": float(v.mean()),
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def print_goals(goals: list[dict]) -> None:
    print("\ngoals:")
    for g in goals:
        print(f"  [{'PASS' if g['pass'] else 'FAIL'}] {g['goal']} ({g['detail']})")


def goal(text: str, ok: bool, detail: str) -> dict:
    return {"goal": text, "pass": bool(ok), "detail": detail}


def finite_or_none(x):
    """JSON has no NaN/inf: such figures become ``None``."""
    return float(x) if x is not None and math.isfinite(float(x)) else None


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------

def resolve_model(name_or_folder: str) -> Path:
    """``--model`` -> a checkpoint folder, or :class:`BenchError` saying what exists (a training run's ``best``
    folder is never picked silently: it is used only when given explicitly)."""
    from stylesynth import checkpoint

    try:
        return checkpoint.resolve(name_or_folder)
    except checkpoint.ModelError as exc:
        hint = ""
        runs = sorted(Path("/work/runs").glob("*/best/model.json")) if Path("/work/runs").is_dir() else []
        if runs:
            hint = "; a training run's best generator can be given explicitly, e.g. --model " + str(runs[0].parent)
        raise BenchError(f"--model: {exc}{hint}") from None


# ---------------------------------------------------------------------------------------------------------------
# tifresi, in its own venv
# ---------------------------------------------------------------------------------------------------------------

def tifresi_status(build: bool = True) -> tuple[bool, str]:
    """(available, reason). With ``build``, tries ``tifresi_env.sh`` once when the venv is missing."""
    if not TIFRESI_PY.exists():
        if not build:
            return False, f"no venv at {TIFRESI_PY.parent.parent} (build it with benchmarks/tifresi_env.sh)"
        print("tifresi: building benchmarks/.venv-tifresi (first run only, a few minutes) ...", flush=True)
        proc = subprocess.run(["bash", str(HERE / "tifresi_env.sh")], capture_output=True, text=True)
        if proc.returncode != 0:
            text = (proc.stdout + proc.stderr).strip()
            return False, text.splitlines()[-1] if text else f"tifresi_env.sh exited {proc.returncode}"
    proc = subprocess.run([str(TIFRESI_PY), "-c", "import tifresi.stft"], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        return False, f"tifresi does not import in {TIFRESI_PY.parent.parent}: {last}"
    return True, "ok"


class TifresiWorker:
    """``_tifresi_worker.py`` running in the tifresi venv, answering one request per line (its docstring has the
    protocol). It inherits this process's CPU pinning, so its calls can interleave with ours on the same core.

    Parameters
    ----------
    signals : dict
        key -> (audio as a 1-D float array, hop). The worker takes each signal's magnitude in tifresi's own
        transform (truncated Gaussian, ``channels`` channels: the same lattice as ours) and inverts that.
    tmp : Path
        A folder for the signals file and the results.
    channels : int
        FFT channels (512 for both of the project's representations).

    Raises
    ------
    RuntimeError
        The worker failed to start; the message is its last line of stderr.
    """

    def __init__(self, signals: dict, tmp: Path, channels: int = TIFRESI_CHANNELS):
        import numpy as np

        src = Path(tmp) / "signals.npz"
        meta = {"keys": list(signals), "hops": {k: int(hop) for k, (_, hop) in signals.items()}, "channels": channels}
        np.savez(src, meta=json.dumps(meta), **{k: x for k, (x, _) in signals.items()})
        self.tmp = Path(tmp)
        self.proc = subprocess.Popen([str(TIFRESI_PY), str(TIFRESI_WORKER), str(src)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.first_call_ms = self._reply()["first_call_ms"]      # the first call pays tifresi's numba JIT

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines()
            raise RuntimeError(err[-1] if err else f"worker exited {self.proc.wait()}")
        return json.loads(line)

    def _ask(self, *words) -> dict:
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def time(self, key: str, repeats: int) -> dict:
        """``{"cpu": [ms, ...], "wall": [ms, ...]}``: thread CPU and wall time of ``repeats`` inversions."""
        return self._ask("time", key, repeats)

    def result(self, key: str):
        """(spectral convergence in dB in tifresi's transform, the reconstructed signal)."""
        import numpy as np

        out = self.tmp / f"{key.replace('@', '_')}.npy"
        reply = self._ask("result", key, out)
        return reply["sc_db"], np.load(out)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
