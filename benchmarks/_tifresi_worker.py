"""tifresi's PGHI as a small line-protocol server, inside benchmarks/.venv-tifresi (its own numpy/ltfatpy).

Started by benchmarks/pghi.py as ``.venv-tifresi/bin/python _tifresi_worker.py SIGNALS.npz``; imports nothing from
stylesynth. It inherits the benchmark's CPU pinning, so the two processes' calls can be interleaved in time and
measured under the same conditions. For each signal: tifresi's own transform (GaussTruncTF: truncated Gaussian,
gamma = hop * M, like ours), its own magnitude, and ``invert_spectrogram`` (PGHI + dual-window synthesis).

Protocol (one JSON object per line on stdout):
  on start                 -> {"ready": true, "first_call_ms": ...}   (the first call compiles tifresi's numba code)
  ``time KEY REPEATS``     -> {"cpu": [ms, ...], "wall": [ms, ...]}  thread CPU and wall time per call
  ``result KEY OUT.npy``   -> {"sc_db": ...}  spectral convergence in tifresi's transform; the signal saved to OUT
  ``quit``
"""
import json
import sys
import time

import numpy as np


def main() -> int:
    from tifresi.stft import GaussTruncTF

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
    print(json.dumps({"ready": True, "first_call_ms": (time.perf_counter() - t0) * 1e3}), flush=True)

    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        tf, mag = items[parts[1]]
        if parts[0] == "time":
            cpu, wall = [], []
            for _ in range(int(parts[2])):
                c0, w0 = time.thread_time(), time.perf_counter()
                tf.invert_spectrogram(mag)
                cpu.append((time.thread_time() - c0) * 1e3)
                wall.append((time.perf_counter() - w0) * 1e3)
            print(json.dumps({"cpu": cpu, "wall": wall}), flush=True)
        elif parts[0] == "result":
            y = np.asarray(tf.invert_spectrogram(mag), dtype=np.float64)
            got = np.abs(tf.dgt(y))
            np.save(parts[2], y)
            sc = 20 * np.log10(np.linalg.norm(got - mag) / np.linalg.norm(mag))
            print(json.dumps({"sc_db": float(sc)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
