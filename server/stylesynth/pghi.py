"""Phase from STFT magnitude: Phase Gradient Heap Integration (PGHI), by hand in numba.

PGHI (Průša, Holighaus et al., "A noniterative method for reconstruction of phase from STFT magnitude", IEEE/ACM
TASLP 2017) estimates the phase gradient of a Gaussian-window Gabor transform from its log-magnitude and integrates
it outwards from the strongest coefficients. It needs no iterations, so it is what turns a generated spectrogram
into sound in real time. This implementation follows the textbook algorithm with the changes measured in
``shared/notes/pghi.md``:

1. **Bucket queue** (4096 buckets over log-magnitude, LIFO inside a bucket) instead of a binary heap; the highest
   non-empty bucket comes from a two-level bitmap in two ``ctlz`` instructions. Each coefficient's state carries a
   4-bit mask of its neighbours still waiting, so a pop visits only those. Seeds: the first local maximum of the top
   bucket; the list of all local maxima, counting-sorted by bucket, is built only if that first region leaves
   significant coefficients unreached (sparse spectrograms), so there is never a repeated ``argmax``.
2. **DC/Nyquist phase fix per region.** Each region grown from one seed starts at an arbitrary phase, but a real
   signal's DC and Nyquist coefficients are real (phase 0 or pi) in the time-invariant convention. Each region is
   rotated by ``-1/2 arg(sum |c|^2 e^{2 i phi})`` over its own DC and Nyquist coefficients.
3. **One tolerance pass**: coefficients below ``tol * max`` are not integrated through and get a random phase from a
   counter-based generator (a 32-bit hash of seed and index): deterministic, vectorised, ~0.3 ns each.
4. Optional **fast Griffin-Lim refinement** (Perraudin et al. 2013, momentum 0.99) warm-started from the PGHI phase,
   for noisy textures and hop 256 where PGHI alone is weakest (~1 ms per iteration, complex64).
5. **Anchoring** (``known_phase``): known phases are kept and integration starts from all of them at once, so a
   tile continues its neighbour's phase (``stylesynth reconstruct`` uses it to crossfade tiles without dips).

Conventions (those of :mod:`stylesynth.spectrogram`): ``m`` is the frequency bin (0..M/2), ``n`` the frame, ``a`` the
hop, ``M`` the number of channels, ``gamma = a * M`` the window's spread; phase is time-invariant (measured from each
window's centre), frames are circular. With ``s = ln |c|`` and centred differences:

* phase advance per frame: ``phi_t(m, n) = (a M / gamma) (s(m+1, n) - s(m-1, n)) / 2 + 2 pi a m / M``
  (the derivative part is 0 at DC and Nyquist);
* phase advance per bin: ``phi_f(m, n) = -(gamma / (a M)) (s(m, n+1) - s(m, n-1)) / 2``.

Speed (``benchmarks/pghi.py``, one core, CPU time per 2 s clip, magnitude -> float32 audio, 2026-11-25): 0.52 ms on
a chirp, 0.75 on clicks, 1.4 on noise and impacts (11.1-12.5x tifresi). Where a noise clip's 1.37 ms go: the
integration ~0.9 (66k coefficients at ~13.5 ns, bound by memory latency and branches), building its arrays 0.07, the
final wrap and polar -> complex (vectorised polynomial sincos) 0.08, the input scan and transpose 0.02 and the log
0.025 (numpy's, in place), synthesis 0.21 (complex64 irfft 0.16, fixed by pocketfft, + overlap-add with the float32
dual window truncated at 1e-5 0.045), Python glue ~0.01. The work arrays (1.9 MB for 256 frames) belong to the
calling thread and are reused by its next clip of the same shape (:class:`_Workspace`). Every speed change keeps the
output bits (``tests/data/pghi_bits.json``). The JIT-compiled kernels are cached on disk (``cache=True``: ~20 s to
compile once, ~0.3 s to load); call :func:`warmup` at server start so the first request does not pay for loading
them.
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import scipy.fft
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import intrinsic

from stylesynth.spectrogram import HITS, Representation, analysis_window, dual_window

N_BUCKETS = 4096
DEFAULT_TOL = 1e-5
FGLA_MOMENTUM = 0.99
# The synthesis (dual) window is truncated where it falls below this fraction of its peak (then rounded up to a
# multiple of M: 3072 taps at hop 128, 6144 at hop 256). The fast synthesis then matches spectrogram.istft to
# better than -120 dB on both hops (tests/test_pghi.py).
DUAL_TOLERANCE = 1e-7
# The float32 (audio) path's window is truncated sooner: 2048 taps at hop 128, 4096 at hop 256, a third less
# overlap-add; measured error -111 dB against spectrogram.istft, below 16-bit quantisation (-98 dB) and 60 dB below
# the best PGHI reconstruction (-50 dB).
DUAL_TOLERANCE_32 = 1e-5

__all__ = ["pghi", "pghi_batch", "pghi_phase", "spectral_convergence", "fast_stft", "fast_istft",
           "refine_fgla", "warmup", "keep_freed_memory", "N_BUCKETS", "DEFAULT_TOL"]


# ---------------------------------------------------------------------------------------------------------------
# The integration kernel
# ---------------------------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _transpose_into(a, out, absolute):  # pragma: no cover - compiled
    """out = a.T (or |a|.T), in strips of 8 rows: each output write is 8 contiguous values and 8 input lines stream
    in parallel (2-3x a blocked transpose here, several times numpy's strided copy)."""
    rows, cols = a.shape
    r = 0
    while r + 8 <= rows:
        for c in range(cols):
            o = out[c]
            for k in range(8):
                v = a[r + k, c]
                o[r + k] = abs(v) if absolute else v
        r += 8
    for rr in range(r, rows):
        for c in range(cols):
            v = a[rr, c]
            out[c, rr] = abs(v) if absolute else v


def _transpose(a: np.ndarray, dtype=None, absolute: bool = False) -> np.ndarray:
    """``a.T`` (``|a|.T`` if ``absolute``) as a new C-contiguous array of ``dtype`` (default: ``a``'s)."""
    out = np.empty(a.shape[::-1], dtype=dtype or a.dtype)
    _transpose_into(a, out, absolute)
    return out


@njit(cache=True, nogil=True, inline="always")
def _tally(u, top, low, bad, zero, inf_bits):  # pragma: no cover - compiled
    """Fold the bits ``u`` of one |value| into (largest finite, smallest, how many NaN/inf)."""
    nonfinite = u >= inf_bits
    return max(top, zero if nonfinite else u), min(low, u), bad + nonfinite


@njit(cache=True, nogil=True)
def _scan_into(a, bits, abs_mask, inf_bits, transpose, out):  # pragma: no cover - compiled
    """One pass over a magnitude: ``out`` = |a| as float32, frame-major (``a.T``, in strips as
    :func:`_transpose_into`, if ``transpose``); and over ``bits`` (a's memory as uint32 for float32, uint64 for
    float64): the bits of the largest finite |value|, of the smallest |value|, and how many are NaN or infinite. On
    the bits, because integer compares and maxima vectorise without fast-math (which would assume away the NaNs
    being counted); for non-negative floats the integer order of the bits is the float order."""
    zero = abs_mask ^ abs_mask                      # 0 of the bits type (a literal 0 would make numba unify to float)
    top, low, bad = zero, abs_mask, 0
    rows, cols = a.shape
    if not transpose:
        for r in range(rows):
            o, ar, br = out[r], a[r], bits[r]
            for c in range(cols):
                top, low, bad = _tally(br[c] & abs_mask, top, low, bad, zero, inf_bits)
                o[c] = np.float32(abs(ar[c]))
        return top, low, bad
    r = 0
    while r + 8 <= rows:
        for c in range(cols):
            o = out[c]
            for k in range(8):
                top, low, bad = _tally(bits[r + k, c] & abs_mask, top, low, bad, zero, inf_bits)
                o[r + k] = np.float32(abs(a[r + k, c]))
        r += 8
    for rr in range(r, rows):
        for c in range(cols):
            top, low, bad = _tally(bits[rr, c] & abs_mask, top, low, bad, zero, inf_bits)
            out[c, rr] = np.float32(abs(a[rr, c]))
    return top, low, bad


@njit(cache=True, nogil=True)
def _floor_into(x, tiny, out):  # pragma: no cover - compiled
    """out = max(x, tiny): what np.maximum computes, vectorised (numpy's takes as long as its log, 0.025 ms a clip)."""
    for r in range(x.shape[0]):
        xr, o = x[r], out[r]
        for c in range(x.shape[1]):
            o[c] = max(xr[c], tiny)


def _prepare(mag: np.ndarray, ws: "_Workspace") -> tuple[np.ndarray, np.ndarray, float, int]:
    """A (bins, F) float32/float64 magnitude -> (|mag| frame-major float32, its natural log, its peak, how many values
    are NaN/inf), the two arrays in ``ws``. Either memory order: a decoded spectrogram is bin-major (transposed
    here), a transform's magnitude (``np.abs(fast_stft(x))``) is already frame-major (only converted). Values below
    1e-30 of the peak (zeros; and below the smallest float32 normal number) are clamped before the log, so it is
    always finite: the scan finds the smallest value, so the clamping pass runs only when one is that small (silent
    stretches: clicks)."""
    frame_major = mag.flags.f_contiguous and not mag.flags.c_contiguous
    a = mag.T if frame_major else np.ascontiguousarray(mag)
    if a.dtype == np.float32:
        top, low, bad = _scan_into(a, a.view(np.uint32), np.uint32(0x7FFFFFFF), np.uint32(0x7F800000),
                                   not frame_major, ws.mag_t)
    else:
        top, low, bad = _scan_into(a, a.view(np.uint64), np.uint64(0x7FFFFFFFFFFFFFFF),
                                   np.uint64(0x7FF0000000000000), not frame_major, ws.mag_t)
    bits = np.array([top, low], dtype=np.uint32 if a.dtype == np.float32 else np.uint64)
    peak, smallest = bits.view(a.dtype).tolist()
    tiny = np.float32(max(peak * 1e-30, 1e-37))
    if np.float32(smallest) >= tiny:                 # max(mag_t, tiny) would be mag_t itself
        np.log(ws.mag_t, out=ws.log_t)
    else:
        _floor_into(ws.mag_t, tiny, ws.log_t)
        np.log(ws.log_t, out=ws.log_t)
    return ws.mag_t, ws.log_t, peak, int(bad)


@njit(cache=True, nogil=True, inline="always")
def _random_phase(seed, i):  # pragma: no cover - compiled
    """A phase in [-pi, pi) from a counter-based generator (Wellons' lowbias32 hash of seed and index): deterministic,
    no state, 32-bit arithmetic so a loop of them vectorises; a clip's mostly-silent coefficients cost nothing."""
    mask = np.uint64(0xFFFFFFFF)
    x = (np.uint64(i) + np.uint64(seed) * np.uint64(0x9E3779B9)) & mask
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & mask
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & mask
    x ^= x >> np.uint64(16)
    return np.float32(x) * np.float32(2.0 * np.pi / 4294967296.0) - np.float32(np.pi)


@intrinsic
def _leading_zeros(typingctx, x):
    """LLVM's ctlz: the number of leading zero bits of an integer (the highest non-empty bucket in one instruction)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], llvm_ir.Constant(llvm_ir.IntType(1), 0))
    return x(x), codegen


@intrinsic
def _prefetch(typingctx, address):
    """LLVM's prefetch (read, keep in all cache levels) of the cache line at an integer address."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i8p = llvm_ir.IntType(8).as_pointer()
        i32 = llvm_ir.IntType(32)
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p],
                                              llvm_ir.FunctionType(llvm_ir.VoidType(), [i8p, i32, i32, i32]))
        builder.call(fn, [builder.inttoptr(args[0], i8p), llvm_ir.Constant(i32, 0), llvm_ir.Constant(i32, 3),
                          llvm_ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.none(address), codegen


# The integration works on three frame-major arrays in rows of B + 1 (B = M/2 + 1 bins; the slot ending each row is
# permanently quiet, so a bin's neighbours q +- 1 need no bounds check):
#   grad[2q], grad[2q + 1]  the phase advance to the next frame (the log-magnitude part plus 2 pi a m / M reduced to
#                  (-pi, pi], so the phase stays small enough for float32 and the bin index is never needed while
#                  growing) and to the next bin, float32, read-only: one cache line for both;
#   phase[q]       float32, written once when the coefficient is reached;
#   state[q]       int32, code << 4 | mask. The code is the coefficient's bucket (>= 0) while waiting, _QUIET below
#                  tolerance, -3 - next while queued (LIFO list per bucket), -2 - region once done. Mask bit d is
#                  set while the neighbour in direction d is still waiting (cleared by that neighbour when it is
#                  reached, with branch-free stores): a pop visits only those instead of testing all four, and a
#                  coefficient reached with an empty mask is never queued (7 % of them on noise).
# The state array is the hot one (every reached coefficient clears a bit in its four neighbours): kept compact (4
# bytes a coefficient, 264 kB) it stays in L2. Measured on noise against one 16-byte record per coefficient: 7 %
# faster, and the final pass reads contiguous arrays.
_QUIET = -1
_U = np.uint64
_NEXT_FRAME, _PREV_FRAME, _NEXT_BIN, _PREV_BIN = 1, 2, 4, 8


@njit(cache=True, nogil=True, inline="always")
def _neighbours(q, step, last, end):  # pragma: no cover - compiled
    """Records of q's next frame, previous frame, next bin and previous bin (frames circular; bin 0's previous bin
    is the previous row's pad slot, the very first's the last pad)."""
    return (q + step if q < last else q - last, q - step if q >= step else q + last, q + _U(1),
            q - _U(1) if q > _U(0) else end)


@njit(cache=True, nogil=True, inline="always")
def _reached(q, state, step, last, end):  # pragma: no cover - compiled
    """q has left the waiting state: clear its bit in each neighbour's mask (branch-free stores)."""
    tn, tp, bn, bp = _neighbours(q, step, last, end)
    state[tn] &= ~_PREV_FRAME
    state[tp] &= ~_NEXT_FRAME
    state[bn] &= ~_PREV_BIN
    state[bp] &= ~_NEXT_BIN


@njit(cache=True, nogil=True, inline="always")
def _push(q, b, state, head, words, summary):  # pragma: no cover - compiled
    """Queue record q in bucket b: head of the bucket's list, the bucket's bit set in the two-level bitmap."""
    st = state[q]
    state[q] = ((-3 - head[b]) << 4) | (st & 15)
    head[b] = q
    w = _U(b) >> _U(6)
    words[w] |= _U(1) << (_U(b) & _U(63))
    return summary | (_U(1) << w)


@njit(cache=True, nogil=True, inline="always")
def _assign(j, value, state, phase, head, words, summary, popped, step, last, end, log, n_log):  # pragma: no cover
    """Give waiting record j its phase (and write j to ``log[n_log]``, if a log is given: None compiles to code
    without it, so the first region pays nothing); queue it if a neighbour still waits for it, else it is done (its
    pop would do nothing). Returns (summary, n_log)."""
    st = state[j]
    phase[j] = value
    if log is not None:
        log[n_log] = np.int32(j)
        n_log += 1
    _reached(j, state, step, last, end)
    if st & 15:
        return _push(j, st >> 4, state, head, words, summary), n_log
    state[j] = popped
    return summary, n_log


@njit(cache=True, nogil=True)
def _grow(summary, r, grad, phase, state, head, words, row, n_frames, log, n_log):  # pragma: no cover - compiled
    """Pop the strongest queued coefficient (the highest set bit of the bucket bitmap, LIFO inside a bucket), give
    the neighbours its mask says are still waiting a phase by the trapezoid rule, and queue those that still have a
    waiting neighbour themselves; until the queue is empty. Everything reached is labelled region ``r``. Returns
    (how many coefficients were reached, n_log) (they are logged, see :func:`_assign`). Indices are unsigned, so
    numba emits no negative-index wraparound code."""
    last = _U((n_frames - 1) * row)
    step = _U(row)
    end = _U(n_frames) * step - _U(1)
    grad_at = _U(grad.ctypes.data)                         # addresses for prefetching
    phase_at = _U(phase.ctypes.data)
    state_at = _U(state.ctypes.data)
    popped = np.int32((-2 - r) << 4)
    half = np.float32(0.5)
    reached = 0
    while summary != 0:
        w = _U(63) - _U(_leading_zeros(summary))
        word = words[w]
        bit = _U(63) - _U(_leading_zeros(word))
        b = (w << _U(6)) + bit
        i = _U(head[b])
        st = state[i]
        nxt = -3 - (st >> 4)
        head[b] = nxt
        state[i] = popped
        word &= ~(_U(nxt == -1) << bit)
        words[w] = word
        summary &= ~(_U(word == 0) << w)
        if nxt >= 0:
            _prefetch(grad_at + (_U(nxt) << _U(3)))
            _prefetch(phase_at + (_U(nxt) << _U(2)))
            _prefetch(state_at + (_U(nxt) << _U(2)))
        mask = st & 15                                     # the neighbours still waiting
        if mask == 0:
            continue
        p = phase[i]
        tn, tp, bn, bp = _neighbours(i, step, last, end)
        if mask & _NEXT_FRAME and state[tn] >= 0:
            reached += 1
            summary, n_log = _assign(tn, p + half * (grad[i << _U(1)] + grad[tn << _U(1)]), state, phase, head,
                                     words, summary, popped, step, last, end, log, n_log)
        if mask & _PREV_FRAME and state[tp] >= 0:
            reached += 1
            summary, n_log = _assign(tp, p - half * (grad[i << _U(1)] + grad[tp << _U(1)]), state, phase, head,
                                     words, summary, popped, step, last, end, log, n_log)
        if mask & _NEXT_BIN and state[bn] >= 0:
            reached += 1
            summary, n_log = _assign(bn, p + half * (grad[(i << _U(1)) + _U(1)] + grad[(bn << _U(1)) + _U(1)]),
                                     state, phase, head, words, summary, popped, step, last, end, log, n_log)
        if mask & _PREV_BIN and state[bp] >= 0:
            reached += 1
            summary, n_log = _assign(bp, p - half * (grad[(i << _U(1)) + _U(1)] + grad[(bp << _U(1)) + _U(1)]),
                                     state, phase, head, words, summary, popped, step, last, end, log, n_log)
    return reached, n_log


@njit(cache=True, nogil=True)
def _significant_row(mrow, thr, out):  # pragma: no cover - compiled
    """out[1 + m] = mrow[m] > thr; out[0] and out[-1] stay 0 (no bin beyond the edges)."""
    for m in range(mrow.shape[0]):
        out[m + 1] = np.int32(mrow[m] > thr)


@njit(cache=True, nogil=True)
def _records(mag, s, a, M, gamma, thr, s_lo, scale, n_buckets, grad, state, live):  # pragma: no cover
    """Fill the arrays grad and state (see above) of a frame-major magnitude and its log: every element of state, and
    grad in the rows holding a significant coefficient (the only ones it is read in); live[n] says whether row n
    holds one. Returns (n_significant, top bucket, the first frame holding it). Each row's fields are computed in
    branch-free loops LLVM vectorises. Phases need no set-up: a coefficient's phase is written when it is reached,
    and read only where it was."""
    n_frames, n_bins = mag.shape
    row = n_bins + 1
    ct = np.float32(0.5 * a * M / gamma)
    cf = np.float32(-0.5 * gamma / (a * M))
    nominal = np.zeros(row, dtype=np.float32)
    for m in range(n_bins):
        v = 2.0 * np.pi * ((int(a) * m) % int(M)) / M
        nominal[m] = v - 2.0 * np.pi if v > np.pi else v
    # per-bin weights of the log-magnitude differences: 0 for the frame advance at DC and Nyquist, 0 in the pad slot
    wt = np.full(row, ct, dtype=np.float32)
    wt[0] = 0.0
    wt[n_bins - 1] = 0.0
    wt[n_bins] = 0.0
    wf = np.full(row, cf, dtype=np.float32)
    wf[n_bins] = 0.0
    zero = np.float32(0.0)                              # the log-magnitude beyond either edge bin
    sig_prev = np.zeros(n_bins + 2, dtype=np.int32)
    sig_cur = np.zeros(n_bins + 2, dtype=np.int32)
    sig_next = np.zeros(n_bins + 2, dtype=np.int32)
    _significant_row(mag[n_frames - 1], thr, sig_prev)
    _significant_row(mag[0], thr, sig_cur)
    grad_pairs = grad.view(np.complex64)               # (frame advance, bin advance) pairs: one store each
    n_sig = 0
    top = -1
    top_row = 0
    for n in range(n_frames):
        sc = s[n]
        sn = s[(n + 1) % n_frames]
        sp = s[(n - 1 + n_frames) % n_frames]
        _significant_row(mag[(n + 1) % n_frames], thr, sig_next)
        st = state[n * row: (n + 1) * row]
        row_top = -1
        for m in range(n_bins):
            b = min(max(np.int32((sc[m] - s_lo) * scale), 0), n_buckets - 1)
            sig = sig_cur[m + 1]
            mask = sig_next[m + 1] | (sig_prev[m + 1] << 1) | (sig_cur[m + 2] << 2) | (sig_cur[m] << 3)
            code = b if sig else _QUIET
            st[m] = (code << 4) | mask
            n_sig += sig
            row_top = max(row_top, b if sig else -1)
        st[n_bins] = _QUIET << 4                        # the pad slot
        live[n] = row_top >= 0
        if row_top >= 0:
            # grad is read only at significant coefficients (popped, or waiting neighbours): a row without any (165
            # of 256 frames of clicks) is skipped
            g = grad_pairs[n * row: (n + 1) * row]
            # the edge bins on their own, so the loop reads sc directly (copying each row into a zero-padded buffer
            # cost 0.018 ms a clip); their weight is 0 anyway
            g[0] = complex(wt[0] * (sc[1] - zero) + nominal[0], wf[0] * (sn[0] - sp[0]))
            for m in range(1, n_bins - 1):
                g[m] = complex(wt[m] * (sc[m + 1] - sc[m - 1]) + nominal[m], wf[m] * (sn[m] - sp[m]))
            last = n_bins - 1
            g[last] = complex(wt[last] * (zero - sc[last - 1]) + nominal[last], wf[last] * (sn[last] - sp[last]))
            g[n_bins] = 0.0
        if row_top > top:                               # the first row holding the (so far) top bucket
            top = row_top
            top_row = n
        sig_prev, sig_cur, sig_next = sig_cur, sig_next, sig_prev
    return n_sig, top, top_row


@njit(cache=True, nogil=True)
def _first_seed(state, mag, b_top, first_frame):  # pragma: no cover - compiled
    """The first local maximum (>= its 4-neighbours, raster order) in the top bucket, searched from the first frame
    holding that bucket: the seed the sorted list of local maxima would start with, without building the list (on
    dense spectrograms its region reaches everything)."""
    n_frames, n_bins = mag.shape
    for n in range(first_frame, n_frames):
        mn = mag[(n + 1) % n_frames]
        mp = mag[(n - 1 + n_frames) % n_frames]
        mc = mag[n]
        for m in range(n_bins):
            if (state[n * (n_bins + 1) + m] >> 4) != b_top:
                continue
            v = mc[m]
            if mn[m] > v or mp[m] > v or (m > 0 and mc[m - 1] > v) or (m < n_bins - 1 and mc[m + 1] > v):
                continue
            return n * (n_bins + 1) + m
    return -1


@njit(cache=True, nogil=True)
def _seeds(state, mag, n_buckets):  # pragma: no cover - compiled
    """Records of the coefficients still waiting that are local maxima (>= the 4-neighbours), counting-sorted by
    bucket, strongest first. Branch-free: on noise the comparisons are coin flips and mispredicted branches cost
    more than the arithmetic."""
    n_frames, n_bins = mag.shape
    row = n_bins + 1
    count = np.zeros(n_buckets + 1, dtype=np.int32)
    unsorted = np.empty(n_frames * n_bins, dtype=np.int32)
    n_cand = 0
    for n in range(n_frames):
        mn = mag[(n + 1) % n_frames]
        mp = mag[(n - 1 + n_frames) % n_frames]
        mc = mag[n]
        for m in range(n_bins):
            q = n * row + m
            st = state[q] >> 4
            if st < 0:                  # below tolerance or already reached (long predictable runs)
                continue
            v = mc[m]
            left = mc[m - 1] if m > 0 else v
            right = mc[m + 1] if m < n_bins - 1 else v
            ok = (mn[m] <= v) & (mp[m] <= v) & (left <= v) & (right <= v)
            unsorted[n_cand] = q
            n_cand += ok
            count[n_buckets - st] += ok
    for b in range(n_buckets):
        count[b + 1] += count[b]
    cand = np.empty(n_cand, dtype=np.int32)
    for c in range(n_cand):
        q = unsorted[c]
        k = n_buckets - 1 - (state[q] >> 4)
        cand[count[k]] = q
        count[k] += 1
    return cand


@njit(cache=True, nogil=True)
def _seed_and_grow(q, r, grad, phase, state, head, words, n_frames, log, n_log):  # pragma: no cover - compiled
    """Grow region r from record q alone (phase 0), logging what it reaches (q included) from ``log[n_log]`` if a
    log is given. Returns (how many coefficients it reached, q included; n_log)."""
    row = state.shape[0] // n_frames
    step = _U(row)
    phase[q] = 0.0
    if log is not None:
        log[n_log] = q
        n_log += 1
    _reached(_U(q), state, step, _U((n_frames - 1) * row), _U(n_frames) * step - _U(1))
    summary = _push(_U(q), state[q] >> 4, state, head, words, _U(0))
    reached, n_log = _grow(summary, r, grad, phase, state, head, words, row, n_frames, log, n_log)
    return 1 + reached, n_log


@njit(cache=True, nogil=True, fastmath={"nnan", "ninf", "nsz", "contract"})
def _polar_row(mg, phase, o):  # pragma: no cover - compiled
    """o[2m], o[2m + 1] = mg[m] * (cos, sin)(phase[m]) for phases in [-pi, pi]: a quadrant reduction and Taylor
    polynomials (error < 1e-7), branch-free so LLVM vectorises it (twice as fast as numpy's float32 cos + sin)."""
    for m in range(mg.shape[0]):
        x = np.float32(phase[m])
        k = np.floor(x * np.float32(2.0 / np.pi) + np.float32(0.5))          # quadrant
        r = (x - k * np.float32(1.5703125)) - k * np.float32(4.837512969970703125e-4)   # x - k pi/2 in 3 parts
        r = r - k * np.float32(7.549789948768648e-8)
        r2 = r * r
        sn = r + r * r2 * (np.float32(-1.0 / 6.0) + r2 * (np.float32(1.0 / 120.0) + r2 * (
            np.float32(-1.0 / 5040.0) + r2 * np.float32(1.0 / 362880.0))))
        cs = np.float32(1.0) + r2 * (np.float32(-0.5) + r2 * (np.float32(1.0 / 24.0) + r2 * (
            np.float32(-1.0 / 720.0) + r2 * (np.float32(1.0 / 40320.0) + r2 * np.float32(-1.0 / 3628800.0)))))
        # rotate by k quarter turns with arithmetic, not branches (random quadrants mispredict); the quadrant's bits
        # from float floors, exact for these small k: numba widens integer arithmetic to 64 bits, and 64-bit lanes
        # and int64 -> float32 conversions halved the vector width (this loop took 0.052 ms a clip, now 0.045)
        one = np.float32(1.0)
        two = np.float32(2.0)
        swap = k - two * np.floor(k * np.float32(0.5))                      # k & 1
        k4 = k - np.float32(4.0) * np.floor(k * np.float32(0.25))           # k mod 4, in 0..3
        k41 = k4 + one
        sign_c = one - two * (np.floor(k41 * np.float32(0.5)) - two * np.floor(k41 * np.float32(0.25)))
        # (that is 1 - ((k + 1) & 2))
        sign_s = one - two * np.floor(k4 * np.float32(0.5))                 # 1 - (k & 2)
        c = (sn * swap + cs * (one - swap)) * sign_c
        si = (cs * swap + sn * (one - swap)) * sign_s
        o[2 * m] = mg[m] * c
        o[2 * m + 1] = mg[m] * si


@njit(cache=True, nogil=True)
def _angle(re, im):  # pragma: no cover - compiled
    """The rotation -1/2 arg(re + i im) that makes a region's DC and Nyquist coefficients as real as possible."""
    return -0.5 * math.atan2(im, re) if (re != 0.0 or im != 0.0) else 0.0


@njit(cache=True, nogil=True)
def _edge_angle(state, phase, mag, code):  # pragma: no cover - compiled
    """The DC/Nyquist angle of the region whose state code is ``code``, from the two edge bins of every frame."""
    n_frames, n_bins = mag.shape
    row = n_bins + 1
    re = 0.0
    im = 0.0
    for n in range(n_frames):
        for m in (0, n_bins - 1):
            q = n * row + m
            if state[q] >> 4 == code:
                w = np.float64(mag[n, m]) ** 2
                re += w * math.cos(2.0 * phase[q])
                im += w * math.sin(2.0 * phase[q])
    return _angle(re, im)


@njit(cache=True, nogil=True)
def _logged_angle(log, n_log, phase, mag):  # pragma: no cover - compiled
    """The DC/Nyquist angle of the region whose coefficients are log[:n_log]."""
    n_bins = mag.shape[1]
    row = n_bins + 1
    re = 0.0
    im = 0.0
    for i in range(n_log):
        q = log[i]
        n = q // row
        m = q - n * row
        if m == 0 or m == n_bins - 1:
            w = np.float64(mag[n, m]) ** 2
            re += w * math.cos(2.0 * phase[q])
            im += w * math.sin(2.0 * phase[q])
    return _angle(re, im)


@njit(cache=True, nogil=True, inline="always")
def _wrap_row(st, p, rot0, seed, i0, on):  # pragma: no cover - compiled
    """on[m] = p[m] + rot0 wrapped to [-pi, pi] where the state says the coefficient was reached, else a random
    phase (of seed and i0 + m). Branch-free, so LLVM vectorises it."""
    two_pi = 2.0 * np.pi
    for m in range(on.shape[0]):
        reached = (st[m] >> 4) <= -2
        v = (np.float64(p[m]) if reached else 0.0) + rot0
        wrapped = v - two_pi * np.floor(v / two_pi + 0.5)
        on[m] = wrapped if reached else _random_phase(seed, i0 + m)


@njit(cache=True, nogil=True, inline="always")
def _random_row(seed, i0, on):  # pragma: no cover - compiled
    """:func:`_wrap_row` of a frame where nothing was reached (no significant or known coefficient): random phases
    only, without the float64 wrap (165 of 256 frames of clicks)."""
    for m in range(on.shape[0]):
        on[m] = _random_phase(seed, i0 + m)


@njit(cache=True, nogil=True)
def _pghi_kernel(mag, s, peak, a, M, gamma, tol, seed, n_buckets, known, mag_c, coef, ws):  # pragma: no cover
    """Bucket-queue PGHI plus the DC/Nyquist region fix, on frame-major arrays.

    ``mag`` is the magnitude transposed, (F, M/2+1), C-contiguous float32, ``peak`` its maximum; ``s`` its natural
    log (any finite value where ``mag`` is 0). ``known`` is either (F, M/2+1) phases with NaN where unknown
    (anchored PGHI: known phases are kept and integration starts from all of them at once) or any other shape for
    none. Returns ``(phase, n_regions)`` with ``phase`` (F, M/2+1) float32, wrapped to [-pi, pi]. If ``coef`` is
    (F, M + 2) (the real view of complex coefficients), it also receives ``mag_c * exp(1j * phase)``, each row while
    its phases are still in the L1 cache. ``ws`` is the tuple of work arrays (grad, phase, state, out) of
    :class:`_Workspace`, any contents: each element is written before it is read, and ``out`` is the returned phase.
    """
    n_frames, n_bins = mag.shape
    row = n_bins + 1
    grad, phase, state, out = ws
    anchored = known.shape[0] == n_frames and known.shape[1] == n_bins
    if not peak > 0.0:
        for n in range(n_frames):
            for m in range(n_bins):
                out[n, m] = _random_phase(seed, n * n_bins + m)
                if anchored and not np.isnan(known[n, m]):
                    out[n, m] = known[n, m] - 2.0 * np.pi * math.floor(known[n, m] / (2.0 * np.pi) + 0.5)
            if coef.shape[0] == n_frames:
                _polar_row(mag_c[n], out[n], coef[n])
        return out, 0
    thr = tol * peak
    s_lo = math.log(thr)
    span = math.log(peak) - s_lo
    scale = (n_buckets - 1) / span if span > 0 else 0.0
    live = np.empty(n_frames, dtype=np.bool_)          # frames where a coefficient may be reached
    n_sig, b_top, top_frame = _records(mag, s, a, M, gamma, thr, s_lo, scale, n_buckets, grad, state, live)
    head = np.full(n_buckets, -1, dtype=np.int32)
    words = np.zeros(n_buckets // 64, dtype=np.uint64)

    n_regions = 0
    n_done = 0                      # significant coefficients reached so far
    if anchored:
        # every known coefficient keeps its phase; the significant ones seed region 0 together
        summary = _U(0)
        for n in range(n_frames):
            for m in range(n_bins):
                if np.isnan(known[n, m]):
                    continue
                q = n * row + m
                phase[q] = known[n, m]
                live[n] = True
                n_regions = 1
                st = state[q]
                if st >= 0:
                    _reached(_U(q), state, _U(row), _U((n_frames - 1) * row), _U(n_frames * row - 1))
                    summary = _push(_U(q), st >> 4, state, head, words, summary)
                    n_done += 1
                else:
                    state[q] = -2 << 4        # popped, region 0
        if n_regions:
            n_done += _grow(summary, 0, grad, phase, state, head, words, row, n_frames, None, 0)[0]
    if n_done < n_sig and not anchored:
        q = _first_seed(state, mag, b_top, top_frame)
        if q >= 0:
            n_done += _seed_and_grow(q, 0, grad, phase, state, head, words, n_frames, None, 0)[0]
            n_regions = 1

    # DC / Nyquist fix: rotate each region so its DC and Nyquist coefficients are as real as possible. Region 0 (the
    # only one on dense spectrograms) is rotated in the final pass, by a constant; later regions are rotated right
    # away, through the log of what they reached, by the difference to region 0's angle.
    rot0 = 0.0
    if n_regions and not anchored:
        rot0 = _edge_angle(state, phase, mag, -2)
    if n_done < n_sig:
        log = np.empty(n_sig, dtype=np.int32)            # each region's, used once
        cand = _seeds(state, mag, n_buckets)
        for k in range(cand.shape[0]):
            if state[cand[k]] >= 0:
                reached, n_log = _seed_and_grow(cand[k], n_regions, grad, phase, state, head, words, n_frames, log, 0)
                n_done += reached
                turn = np.float32(_logged_angle(log, n_log, phase, mag) - rot0)
                for i in range(n_log):
                    phase[log[i]] += turn
                n_regions += 1

    # region 0's rotation, the wrap to [-pi, pi] (so the phase survives float32), a random phase below tolerance
    for n in range(n_frames):
        if live[n]:
            _wrap_row(state[n * row: n * row + n_bins], phase[n * row: n * row + n_bins], rot0, seed, n * n_bins,
                      out[n])
        else:
            _random_row(seed, n * n_bins, out[n])
        if coef.shape[0] == n_frames:
            _polar_row(mag_c[n], out[n], coef[n])
    return out, n_regions


class _Workspace:
    """The work arrays of one clip shape: the float32 magnitude and its log, and the kernel's (grad, phase, state,
    out), ~1.9 MB for 256 frames. Reused by every call on one thread (:func:`_workspace`), so a clip neither
    allocates nor frees them and finds them at the same, cache-warm addresses; none escapes to a caller."""

    def __init__(self, n_frames: int, n_bins: int):
        row = n_bins + 1
        self.mag_t = np.empty((n_frames, n_bins), dtype=np.float32)
        self.log_t = np.empty((n_frames, n_bins), dtype=np.float32)
        self.kernel = (np.empty(2 * n_frames * row, dtype=np.float32),      # grad
                       np.empty(n_frames * row, dtype=np.float32),          # phase
                       np.empty(n_frames * row, dtype=np.int32),            # state
                       np.empty((n_frames, n_bins), dtype=np.float32))      # out (the wrapped phase)


_local = threading.local()
_WORKSPACES_PER_THREAD = 4           # distinct clip shapes kept per thread (both representations have 256 frames)


def _workspace(n_frames: int, n_bins: int) -> _Workspace:
    """This thread's workspace for the shape (threads: pghi_batch's workers, the server's render thread), the
    oldest shape dropped beyond :data:`_WORKSPACES_PER_THREAD`."""
    cache = _local.__dict__.setdefault("workspaces", {})
    ws = cache.pop((n_frames, n_bins), None)
    if ws is None:
        ws = _Workspace(n_frames, n_bins)
        while len(cache) >= _WORKSPACES_PER_THREAD:
            cache.pop(next(iter(cache)))
    cache[(n_frames, n_bins)] = ws                  # most recent last
    return ws


_NO_KNOWN = np.empty((0, 0))
_NO_COEF = np.empty((0, 0), dtype=np.float32)


def _integrate(mag: np.ndarray, rep: Representation, tol: float, seed: int, known_phase: np.ndarray | None = None,
               coef_dtype=None) -> tuple[np.ndarray, np.ndarray | None]:
    """PGHI of a (bins, F) magnitude -> (phase_t float32, coef_t), both frame-major (F, bins). ``coef_t`` is None,
    or for ``coef_dtype`` complex64 ``|mag| exp(1j phase)`` from the float32 magnitude, for complex128 from the
    exact float64 magnitude. ``phase_t`` is this thread's workspace: valid until its next call, copy to keep it.

    Raises ValueError for NaN/inf magnitudes or a malformed ``known_phase``."""
    ws = _workspace(mag.shape[1], mag.shape[0])
    mag_t, log_t, peak, bad = _prepare(mag, ws)
    if bad:
        raise ValueError(f"magnitude has {bad} NaN/inf values")
    known = _NO_KNOWN
    if known_phase is not None:
        known = np.asarray(known_phase, dtype=np.float64)
        if known.shape != mag.shape:
            raise ValueError(f"known_phase must have the magnitude's shape {mag.shape}, got {known.shape}")
        if np.isinf(known).any():
            raise ValueError("known_phase must be finite where known (NaN marks unknown)")
        known = _transpose(np.ascontiguousarray(known))
    coef_t, mag_c, coef_real = None, mag_t, _NO_COEF
    if coef_dtype is not None:
        coef_t = np.empty(mag_t.shape, dtype=coef_dtype)
        if coef_t.dtype == np.complex64:
            coef_real = coef_t.view(np.float32)
        else:
            mag_c = _transpose(np.asarray(mag, dtype=np.float64), absolute=True)
            coef_real = coef_t.view(np.float64)
    phase_t, _ = _pghi_kernel(mag_t, log_t, peak, float(rep.hop), float(rep.channels), float(rep.gamma), float(tol),
                              int(seed) & 0x7FFFFFFF, N_BUCKETS, known, mag_c, coef_real, ws.kernel)
    return phase_t, coef_t


# ---------------------------------------------------------------------------------------------------------------
# Fast transforms with the same numbers as spectrogram.stft / istft
# ---------------------------------------------------------------------------------------------------------------

class _Plan:
    """Precomputed windows for one representation: a zero-padded analysis window on ``[-half_span, half_span)`` and
    the dual window truncated at :data:`DUAL_TOLERANCE` (float64) and :data:`DUAL_TOLERANCE_32` (float32); all spans
    are multiples of ``M`` so offset ``o`` lands on FFT position ``o mod M`` without any index arithmetic."""

    def __init__(self, rep: Representation):
        M, a, L = rep.channels, rep.hop, rep.n_samples
        if M % a or L % M:
            raise ValueError(f"hop {a} must divide {M} channels and the clip length {L}")
        g, half = analysis_window(rep)
        self.rep = rep
        self.ana_span = M * int(math.ceil((half + 1) / M))
        gpad = np.zeros(2 * self.ana_span)
        gpad[self.ana_span - half: self.ana_span + half + 1] = g
        self.ana_window = gpad
        self.ana_window32 = gpad.astype(np.float32)
        dual = dual_window(rep)
        self.syn_window = self._truncated(dual, M, L, DUAL_TOLERANCE)
        self.syn_window32 = self._truncated(dual, M, L, DUAL_TOLERANCE_32).astype(np.float32)

    @staticmethod
    def _truncated(dual: np.ndarray, M: int, L: int, tolerance: float) -> np.ndarray:
        """The dual window on ``[-span, span)``, ``span`` the smallest multiple of M holding every tap above
        ``tolerance`` of the peak; times M (the irfft's 1/M normalisation is undone here rather than in a pass over
        the frames)."""
        span = np.arange(-(L // 2), L // 2)
        keep = span[np.abs(dual[span % L]) > tolerance * np.abs(dual).max()]
        reach = int(max(-keep.min(), keep.max() + 1))
        half = min(M * int(math.ceil(reach / M)), L // 2)
        return np.ascontiguousarray(dual[np.arange(-half, half) % L] * M)


@lru_cache(maxsize=8)
def _plan(rep: Representation) -> _Plan:
    return _Plan(rep)


def _as_batch(x: np.ndarray, rep: Representation) -> np.ndarray:
    x = np.asarray(x)
    x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
    x2 = x if x.ndim == 2 else x.reshape(1, -1)
    L = rep.n_samples
    if x2.shape[1] != L:
        x2 = x2[:, :L] if x2.shape[1] > L else np.pad(x2, ((0, 0), (0, L - x2.shape[1])))
    return x2


@njit(cache=True, nogil=True, fastmath=True)
def _fold(ext, window, a, out):  # pragma: no cover - compiled
    """out[n, j] = sum_t ext[n a + t M + j] * window[t M + j]: windowed frames folded modulo M, tile by tile on
    contiguous slices (vectorised, no (frames, window) temporary)."""
    n_frames, M = out.shape
    tiles = window.shape[0] // M
    for n in range(n_frames):
        o = out[n]
        for j in range(M):
            o[j] = 0.0
        for t in range(tiles):
            e = ext[n * a + t * M: n * a + t * M + M]
            w = window[t * M: t * M + M]
            for j in range(M):
                o[j] += e[j] * w[j]


def _analysis_t(x2: np.ndarray, rep: Representation) -> np.ndarray:
    """Frame-major transform: (B, n_samples) -> complex (B, frames, 257), C-contiguous; complex64 for float32
    input, complex128 otherwise."""
    plan = _plan(rep)
    L, a, M, F = rep.n_samples, rep.hop, rep.channels, rep.frames
    h = plan.ana_span
    single = x2.dtype == np.float32
    window = plan.ana_window32 if single else plan.ana_window
    wrap = np.tile(x2, (1, int(math.ceil(h / L)))) if h > L else x2
    ext = np.concatenate([wrap[:, -h:], x2, wrap[:, :h]], axis=1)
    folded = np.empty((x2.shape[0], F, M), dtype=x2.dtype)
    for b in range(x2.shape[0]):
        _fold(ext[b], window, a, folded[b])
    return scipy.fft.rfft(folded, axis=2)


def fast_stft(x: np.ndarray, rep: Representation = HITS) -> np.ndarray:
    """Same numbers as :func:`stylesynth.spectrogram.stft` (to float64 rounding), many times faster.

    ``x`` is (n_samples,) or batched (B, n_samples), cut or zero-padded to ``rep.n_samples``. Returns complex128
    (257, frames) or (B, 257, frames); the array is a transposed view of frame-major memory, which is the layout
    :func:`fast_istft` is fastest on.
    """
    x = np.asarray(x)
    coef = _analysis_t(_as_batch(x, rep), rep).transpose(0, 2, 1)
    return coef if x.ndim == 2 else coef[0]


@njit(cache=True, nogil=True, fastmath=True)
def _overlap_add(y, window, a, out):  # pragma: no cover - compiled
    """out[(n a - S/2 + j) mod L] += window[j] * y[n, j mod M] for each frame n (S = len(window), a multiple of M).

    Accumulates into a linear buffer tile by tile on contiguous slices (so LLVM vectorises it), then folds the
    buffer onto the circle: its first lap is copied (``out`` may hold anything before), the part reaching past L is
    added. (Copying instead of adding to zeros changes no bit: the buffer, sums from +0 of products, is never -0.)"""
    n_frames, M = y.shape
    S = window.shape[0]
    L = out.shape[0]
    tiles = S // M
    size = (n_frames - 1) * a + S
    ext = np.zeros(size, dtype=out.dtype)
    for n in range(n_frames):
        yn = y[n]
        for t in range(tiles):
            e = ext[n * a + t * M: n * a + t * M + M]
            w = window[t * M: t * M + M]
            for j in range(M):
                e[j] += w[j] * yn[j]
    # ext[i] belongs at circular position (i - S/2) mod L
    start = (-(S // 2)) % L
    i = 0
    while i < size:
        k = (start + i) % L
        run = min(L - k, size - i, L - i) if i < L else min(L - k, size - i)   # the first lap stops at L
        o = out[k: k + run]
        src = ext[i: i + run]
        if i < L:
            for j in range(run):
                o[j] = src[j]
        else:
            for j in range(run):
                o[j] += src[j]
        i += run


def _synthesis_t(c_t: np.ndarray, rep: Representation) -> np.ndarray:
    """Frame-major inverse: complex (B, frames, 257) -> (B, n_samples), float32 for complex64 input (about twice as
    fast, ~-110 dB), else float64."""
    plan = _plan(rep)
    y = scipy.fft.irfft(c_t, n=rep.channels, axis=2)          # (B, F, M), contiguous along M
    single = y.dtype == np.float32
    window = plan.syn_window32 if single else plan.syn_window
    out = np.empty((c_t.shape[0], rep.n_samples), dtype=np.float32 if single else np.float64)   # all written
    for b in range(c_t.shape[0]):
        _overlap_add(np.ascontiguousarray(y[b]), window, rep.hop, out[b])
    return out


def fast_istft(coefficients: np.ndarray, rep: Representation = HITS) -> np.ndarray:
    """Same as :func:`stylesynth.spectrogram.istft` to better than -120 dB, many times faster.

    ``coefficients`` is (257, frames) or batched (B, 257, frames); returns (n_samples,) or (B, n_samples), float32
    for complex64 coefficients (twice as fast, error ~-110 dB: :data:`DUAL_TOLERANCE_32`), float64 otherwise. Fastest
    when the coefficients are frame-major in memory (as :func:`pghi` and :func:`fast_stft` return them).
    """
    c = np.asarray(coefficients)
    if c.ndim not in (2, 3) or c.shape[-2] != rep.rows + 1:
        raise ValueError(f"coefficients must have shape ({rep.rows + 1}, frames) or (B, {rep.rows + 1}, frames), "
                         f"got {c.shape}")
    if c.dtype != np.complex64:
        c = c.astype(np.complex128, copy=False)
    c3 = c if c.ndim == 3 else c[None]
    out = _synthesis_t(np.ascontiguousarray(c3.transpose(0, 2, 1)), rep)
    return out if c.ndim == 3 else out[0]


# ---------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------

def _check_magnitude(magnitude: np.ndarray, rep: Representation, batched: bool) -> np.ndarray:
    """Shape check only; non-finite values are counted by the kernel's first pass (:func:`_prepare`)."""
    mag = np.asarray(magnitude)
    if mag.dtype.kind not in "fiu":
        raise ValueError(f"magnitude must be real (e.g. np.abs of the coefficients), got dtype {mag.dtype}")
    want = 3 if batched else 2
    if mag.ndim != want or mag.shape[-2] != rep.rows + 1:
        shape = "(B, " if batched else "("
        raise ValueError(f"magnitude must have shape {shape}{rep.rows + 1}, frames), got {mag.shape}")
    if mag.dtype not in (np.float32, np.float64):
        mag = mag.astype(np.float64)
    return mag


def pghi_phase(magnitude: np.ndarray, rep: Representation = HITS, tol: float = DEFAULT_TOL,
               seed: int = 0, known_phase: np.ndarray | None = None) -> np.ndarray:
    """The PGHI phase alone (float64 in [-pi, pi], same shape as ``magnitude``), without refinement. See
    :func:`pghi`."""
    mag = _check_magnitude(magnitude, rep, batched=False)
    return np.ascontiguousarray(_integrate(mag, rep, tol, seed, known_phase)[0].T, dtype=np.float64)


def _coefficients_t(mag: np.ndarray, rep: Representation, tol: float, seed: int, known_phase, dtype,
                    refine: int) -> np.ndarray:
    """Frame-major (F, bins) coefficients of ``dtype``: float32 magnitude for complex64 (the audio path), the exact
    float64 magnitude for complex128; refined in complex128 when ``refine > 0``."""
    single = np.dtype(dtype) == np.complex64 and refine <= 0
    _, coef_t = _integrate(mag, rep, tol, seed, known_phase, np.complex64 if single else np.complex128)
    if refine > 0:
        mag_t = _transpose(np.asarray(mag, dtype=np.float64), absolute=True)
        coef_t = _fgla_t(mag_t[None], coef_t[None], rep, refine, FGLA_MOMENTUM)[0]
    return coef_t.astype(dtype, copy=False)


def _fgla_t(mag_t: np.ndarray, c_t: np.ndarray, rep: Representation, iterations: int,
            momentum: float) -> np.ndarray:
    """Fast Griffin-Lim on frame-major (B, F, 257) arrays, in complex64/float32 arithmetic (twice as fast; its
    error, ~-110 dB with the float32 window, is far below what the iterations reach). Returns complex128."""
    mag = mag_t.astype(np.float32)
    c = c_t.astype(np.complex64)
    tiny = np.float32(1e-30)
    mom = np.float32(momentum)
    t_prev = c
    for _ in range(int(iterations)):
        proj = c * (mag / np.maximum(np.abs(c), tiny))
        t = _analysis_t(_synthesis_t(proj, rep), rep)
        c = t + mom * (t - t_prev)
        t_prev = t
    t = t_prev.astype(np.complex128)
    return t * (mag_t / np.maximum(np.abs(t), 1e-300))


def refine_fgla(magnitude: np.ndarray, coefficients: np.ndarray, rep: Representation = HITS,
                iterations: int = 10, momentum: float = FGLA_MOMENTUM) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin, Balazs & Søndergaard 2013) warm-started from ``coefficients``.

    ``t_k = P_C1(P_C2(c_{k-1}))``, ``c_k = t_k + momentum (t_k - t_{k-1})``, where ``P_C2`` imposes the target
    magnitude and ``P_C1`` projects on consistent transforms (``stft(istft(.))``). Returns the target magnitude with
    the phase of the last consistent estimate ``t_k``. Works on (257, F) or batched (B, 257, F) arrays.
    """
    mag = np.abs(np.asarray(magnitude, dtype=np.float64))
    c = np.asarray(coefficients, dtype=np.complex128)
    if iterations <= 0:
        return c
    batched = c.ndim == 3
    mag3 = mag if batched else mag[None]
    c3 = c if batched else c[None]
    out = _fgla_t(np.ascontiguousarray(mag3.transpose(0, 2, 1)), np.ascontiguousarray(c3.transpose(0, 2, 1)),
                  rep, iterations, momentum).transpose(0, 2, 1)
    return out if batched else out[0]


def pghi(magnitude: np.ndarray, rep: Representation = HITS, tol: float = DEFAULT_TOL, refine: int = 0,
         seed: int = 0, known_phase: np.ndarray | None = None, dtype=np.complex128) -> np.ndarray:
    """Complex Gabor coefficients with the given magnitude and a phase reconstructed by PGHI.

    Parameters
    ----------
    magnitude : np.ndarray, shape (257, frames)
        Linear STFT magnitude in the representation of ``rep`` (e.g. ``np.abs(spectrogram.stft(x, rep))`` or
        ``spectrogram.decode(spec, rep)``). Any overall scale; must be finite.
    rep : Representation
        ``HITS`` (hop 128) or ``ENV`` (hop 256): fixes the lattice and window used for the phase gradients.
    tol : float
        Coefficients below ``tol * max`` are not integrated through; they get a random phase from ``seed``.
        Keep it at or just above the spectrogram's floor (``1e-5`` for the model's -50 dB floor).
    refine : int
        Number of warm-started fast Griffin-Lim iterations after PGHI (0 = PGHI only). 10 gains 5-15 dB of spectral
        convergence at ~1.5 ms per iteration (hop 128).
    seed : int
        Seed of the random phase given to sub-tolerance coefficients. Same input and seed -> identical output.
    known_phase : np.ndarray, shape (257, frames), optional
        Phases already known (NaN where unknown), e.g. the overlap with the previous tile of a long file. They are
        kept, and integration starts from all of them at once, so the new phase continues theirs (the region they
        seed is not rotated by the DC/Nyquist fix). Refinement, if any, may still move them slightly.
    dtype : np.complex128 or np.complex64
        Of the result. complex64 makes :func:`fast_istft` synthesise in float32, twice as fast (the audio path).

    Returns
    -------
    coefficients : np.ndarray, ``dtype``, shape (257, frames)
        ``magnitude * exp(1j * phase)``; :func:`stylesynth.spectrogram.istft` (or :func:`fast_istft`) makes audio.

    See Also
    --------
    pghi_batch : the same for a batch.
    spectral_convergence : the quality figure.

    Examples
    --------
    >>> from stylesynth.spectrogram import stft, istft, HITS
    >>> coef = pghi(np.abs(stft(x, HITS)), HITS)              # doctest: +SKIP
    >>> y = istft(coef, HITS)                                  # doctest: +SKIP
    """
    mag = _check_magnitude(magnitude, rep, batched=False)
    return _coefficients_t(mag, rep, tol, seed, known_phase, dtype, refine).T


def pghi_batch(magnitudes: np.ndarray, rep: Representation = HITS, tol: float = DEFAULT_TOL, refine: int = 0,
               seed: int = 0, workers: int = 1, dtype=np.complex128) -> np.ndarray:
    """:func:`pghi` over a batch: ``magnitudes`` (B, 257, frames) -> ``dtype`` (B, 257, frames).

    Item ``b`` uses seed ``seed + b``, so an item's result does not depend on the batch it came in only through its
    position. ``workers > 1`` integrates items in parallel threads (the numba kernel releases the GIL); refinement
    runs batched.
    """
    mags = _check_magnitude(magnitudes, rep, batched=True)
    single = np.dtype(dtype) == np.complex64 and refine <= 0
    out_t = np.empty((mags.shape[0], mags.shape[2], mags.shape[1]),
                     dtype=np.complex64 if single else np.complex128)                          # frame-major

    def one(b: int) -> None:
        out_t[b] = _coefficients_t(mags[b], rep, tol, int(seed) + b, None, out_t.dtype, 0)

    if workers > 1 and len(mags) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, range(len(mags))))
    else:
        for b in range(len(mags)):
            one(b)
    if refine > 0:
        mags_t = np.ascontiguousarray(np.abs(mags.astype(np.float64, copy=False)).transpose(0, 2, 1))
        out_t = _fgla_t(mags_t, out_t, rep, refine, FGLA_MOMENTUM)
    return out_t.astype(dtype, copy=False).transpose(0, 2, 1)


def spectral_convergence(magnitude: np.ndarray, coefficients_or_signal: np.ndarray,
                         rep: Representation = HITS) -> float:
    """Spectral convergence in dB: ``20 log10(|| |STFT(x)| - target || / || target ||)``; lower is better.

    Parameters
    ----------
    magnitude : np.ndarray, (257, frames)
        The target magnitude.
    coefficients_or_signal : np.ndarray
        Either complex coefficients (257, frames), turned into a signal ``x`` with the dual window first, or a real
        signal ``x`` (n_samples,) directly.
    rep : Representation
    """
    target = np.abs(np.asarray(magnitude, dtype=np.float64))
    z = np.asarray(coefficients_or_signal)
    x = fast_istft(z, rep) if (np.iscomplexobj(z) or z.ndim == 2) else z.astype(np.float64)
    got = np.abs(fast_stft(x, rep))
    num = np.linalg.norm(got - target)
    den = np.linalg.norm(target)
    if den == 0:
        return 0.0 if num == 0 else float("inf")
    if num == 0:
        return -float("inf")
    return float(20.0 * np.log10(num / den))


# glibc malloc: blocks up to this size come from the heap, and freed memory stays there up to the trim size
MALLOC_MMAP_THRESHOLD = 8 << 20
MALLOC_TRIM_THRESHOLD = 32 << 20


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to reuse freed memory for blocks up to 8 MB instead of unmapping it (process-wide).

    One clip through PGHI and synthesis allocates and frees ~3.5 MB. With glibc's adaptive thresholds some call
    sequences hand those blocks back to the kernel after every clip, and the next clip page-faults them in again:
    measured 547 faults and +0.9 ms per 2 s clip in this VM (benchmarks/pghi.py). With fixed thresholds the heap keeps
    up to 32 MB of freed memory for reuse. Returns False (and changes nothing) without glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3                    # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold,
                                                                                     MALLOC_TRIM_THRESHOLD))


def warmup() -> None:
    """Load (or, the first time, compile) every JIT kernel signature the audio paths use and build the window plans
    for both hops, so the first real request is as fast as the rest (~0.3-1 s with a warm on-disk cache); and keep
    freed memory for reuse (:func:`keep_freed_memory`), so clips do not page-fault their buffers in again."""
    from stylesynth.spectrogram import ENV

    keep_freed_memory()

    for rep in (HITS, ENV):
        noise = np.random.default_rng(0).standard_normal(rep.n_samples)
        tone = np.sin(2 * np.pi * 1000.0 * np.arange(rep.n_samples) / rep.sample_rate)
        for x in (noise, tone):                                   # dense and sparse (seed list) spectrograms
            mag = np.abs(fast_stft(x, rep))
            fast_istft(pghi(mag, rep, dtype=np.complex64), rep)   # the audio path (float32 synthesis)
        fast_istft(pghi(mag, rep, refine=1), rep)                  # complex128 + float32 refinement
        known = np.full(mag.shape, np.nan)
        known[:, :4] = 0.0
        pghi(mag, rep, known_phase=known)                          # anchored
