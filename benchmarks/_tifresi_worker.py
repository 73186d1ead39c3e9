"""tifresi's PGHI as a small line-protocol server, inside benchmarks/.venv-tifresi (its own numpy/ltfatpy).

Two ways to call it (both import nothing from stylesynth):

* ``_tifresi_worker.py SIGNALS.npz`` -- a line-protocol server (benchmarks/pghi.py), see below;
* ``_tifresi_worker.py IN.npz OUT.npz REPEATS`` -- batch (benchmarks/common.py's ``run_tifresi``): times every signal
  ``REPEATS`` times and writes ``report`` (JSON: ``first_call_ms``, per key ``ms`` best, ``ms_median``, ``wall_ms``,
  ``wall_ms_median``, ``sc_db``) and each reconstructed signal under its key to ``OUT.npz``.
 It inherits the benchmark's CPU pinning, so the two processes' calls can be interleaved in time and
measured under the same conditions. For each signal: tifresi's own transform (GaussTruncTF: truncated Gaussian,
gamma = hop * M, like ours), its own magnitude, and ``invert_spectrogram`` (PGHI + dual-window synthesis).

Server protocol (one JSON object per line on stdout):
  on start                 -> {"ready": true, "first_call_ms": ...}   (the first call compiles tifresi's numba code)
  ``time KEY REPEATS``     -> {"cpu": [ms, ...], "wall": [ms, ...]}  thread CPU and wall time per call
  ``result KEY OUT.npy``   -> {"sc_db": ...}  spectral convergence in tifresi's transform; the signal saved to OUT
  ``quit``
"""
import json
import sys
import time

import numpy as np


def _time(tf, mag, repeats):
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.thread_time(), time.perf_counter()
        tf.invert_spectrogram(mag)
        cpu.append((time.thread_time() - c0) * 1e3)              # thread CPU time, as benchmarks/pghi.py
        wall.append((time.perf_counter() - w0) * 1e3)
    return cpu, wall


def _result(tf, mag):
    y = np.asarray(tf.invert_spectrogram(mag), dtype=np.float64)
    got = np.abs(tf.dgt(y))
    return y, float(20 * np.log10(np.linalg.norm(got - mag) / np.linalg.norm(mag)))


def keep_freed_memory() -> None:
    """The malloc setting stylesynth.pghi.warmup makes (glibc keeps freed blocks up to 8 MB for reuse instead of
    unmapping them), so both processes are measured with the same allocator behaviour; ``STYLESYNTH_BENCH_MALLOC=0``
    leaves glibc's defaults."""
    import ctypes
    import os

    if os.environ.get("STYLESYNTH_BENCH_MALLOC", "1") == "0":
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 8 << 20)                                          # M_MMAP_THRESHOLD
    mallopt(-1, 32 << 20)                                         # M_TRIM_THRESHOLD


def main() -> int:
    from tifresi.stft import GaussTruncTF

    keep_freed_memory()

    data = np.load(sys.argv[1])
    meta = json.loads(str(data["meta"]))
    items = {}
    for key in meta["keys"]:
        tf = GaussTruncTF(hop_size=meta["hops"][key], stft_channels=meta["channels"])
        x = data[key].astype(np.float64)
        items[key] = (tf, np.abs(tf.dgt(x)))
    first_key = meta["keys"][0]
    t0 = time.perf_counter()
    items[first_key][0].invert_spectrogram(items[first_key][1])
    first_call_ms = (time.perf_counter() - t0) * 1e3

    if len(sys.argv) == 4:                                        # batch mode
        dst, repeats = sys.argv[2], int(sys.argv[3])
        report = {"first_call_ms": first_call_ms, "results": {}}
        outputs = {}
        for key, (tf, mag) in items.items():
            cpu, wall = _time(tf, mag, repeats)
            outputs[key], sc = _result(tf, mag)
            report["results"][key] = {"ms": float(np.min(cpu)), "ms_median": float(np.median(cpu)),
                                      "wall_ms": float(np.min(wall)), "wall_ms_median": float(np.median(wall)),
                                      "sc_db": sc}
        np.savez(dst, report=json.dumps(report), **outputs)
        return 0

    print(json.dumps({"ready": True, "first_call_ms": first_call_ms}), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        tf, mag = items[parts[1]]
        if parts[0] == "time":
            cpu, wall = _time(tf, mag, int(parts[2]))
            print(json.dumps({"cpu": cpu, "wall": wall}), flush=True)
        elif parts[0] == "result":
            y, sc = _result(tf, mag)
            np.save(parts[2], y)
            print(json.dumps({"sc_db": sc}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
