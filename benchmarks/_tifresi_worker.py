"""Run tifresi's PGHI on the benchmark's signals, inside benchmarks/.venv-tifresi (its own numpy/ltfatpy).

Called by benchmarks/pghi.py as ``.venv-tifresi/bin/python _tifresi_worker.py IN.npz OUT.npz REPEATS``; imports
nothing from stylesynth. For each signal and hop: tifresi's own transform (GaussTruncTF: truncated Gaussian,
gamma = hop * M, like ours), its own magnitude, ``invert_spectrogram`` (PGHI + dual-window synthesis) timed, and the
spectral convergence measured in its own transform.
"""
import json
import sys
import time

import numpy as np


def main() -> int:
    src, dst, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from tifresi.stft import GaussTruncTF

    data = np.load(src)
    meta = json.loads(str(data["meta"]))
    out = {}
    report = {"first_call_ms": None, "results": {}}
    for key in meta["keys"]:
        hop = meta["hops"][key]
        x = data[key].astype(np.float64)
        tf = GaussTruncTF(hop_size=hop, stft_channels=meta["channels"])
        mag = np.abs(tf.dgt(x))
        if report["first_call_ms"] is None:
            t0 = time.perf_counter()
            tf.invert_spectrogram(mag)
            report["first_call_ms"] = (time.perf_counter() - t0) * 1e3
        times, wall = [], []
        y = None
        for _ in range(repeats):
            c0, w0 = time.thread_time(), time.perf_counter()
            y = tf.invert_spectrogram(mag)
            times.append((time.thread_time() - c0) * 1e3)         # thread CPU time, as benchmarks/pghi.py
            wall.append((time.perf_counter() - w0) * 1e3)
        got = np.abs(tf.dgt(np.asarray(y, dtype=np.float64)))
        sc = 20 * np.log10(np.linalg.norm(got - mag) / np.linalg.norm(mag))
        out[key] = np.asarray(y, dtype=np.float64)
        report["results"][key] = {"ms": float(np.min(times)), "ms_median": float(np.median(times)),
                                  "wall_ms": float(np.min(wall)), "wall_ms_median": float(np.median(wall)),
                                  "sc_db": float(sc)}
    np.savez(dst, report=json.dumps(report), **out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
