"""Smoke tests of the model benchmarks (benchmarks/generate.py, quality.py, train.py): each runs end to end as a
script on small settings, exits 0 and writes JSON whose figures are all finite and consistent with each other.
Speed is never asserted (the machine is shared); bad input must give one line and exit status 2.

The generator used is small in width but full in shape (256 rows x 256 frames): PGHI, the loudness stage and the
features need a real 2.048 s clip spectrogram, which ``model.tiny_config()`` (64 x 64) is not.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylesynth import checkpoint
from stylesynth.model import Generator, cpu_config
from stylesynth.spectrogram import HITS

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    cfg = cpu_config(16)
    cfg.z_dim = cfg.w_dim = 32
    cfg.mapping_layers = 2
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "small"
    checkpoint.save_generator(Generator(cfg), folder, HITS,
                              {"name": "small", "training": {"kimg": 0, "data": {"seed": 0}}})
    return folder


def run_bench(script: str, tmp_path: Path, *args: str) -> tuple[dict, str]:
    out = tmp_path / f"{script}.json"
    proc = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text()), proc.stdout


def numbers(doc, path=""):
    """Every number in a JSON document, with its path."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from numbers(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from numbers(v, f"{path}[{i}]")
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        yield path, doc


def check_common(doc: dict, stdout: str) -> None:
    bad = [p for p, v in numbers(doc) if not math.isfinite(v)]
    assert not bad, f"non-finite figures: {bad}"
    machine = doc["machine"]
    assert machine["cpu_count"] >= 1 and machine["threads"] >= 1 and machine["torch"] == torch.__version__
    assert len(machine["load_start"]) == 3 and len(machine["load_end"]) == 3
    assert doc["goals"] and all(isinstance(g["pass"], bool) and g["detail"] for g in doc["goals"])
    assert "goals:" in stdout and "shared" in stdout        # the table, the goals and the noise warning are printed


def test_generate_smoke(small_model, tmp_path):
    doc, stdout = run_bench("generate", tmp_path, "--model", str(small_model), "--smoke", "--no-tifresi",
                            "--threads", "1", "--renders", "6", "--batch", "4")
    check_common(doc, stdout)
    latency = doc["ours"]["latency_ms"]
    for stage in ("latent", "generator", "pghi", "loudness", "total"):
        assert latency[stage]["n"] == 6
        assert 0 < latency[stage]["p50"] <= latency[stage]["p99"] <= latency[stage]["max"]
    # the whole chain takes at least as long as its slowest stage, and no longer than the stages together (+ slack)
    stage_p50 = [latency[s]["p50"] for s in ("latent", "generator", "pghi", "loudness")]
    assert max(stage_p50) <= latency["total"]["p50"] <= 1.5 * sum(stage_p50) + 1.0
    batch = doc["ours"]["batch"]
    assert batch["batch"] == 4 and batch["clips_per_s"] == pytest.approx(4 / (batch["total"] / 1e3))
    research = doc["research"]
    assert research["generator"]["weights"].startswith("random")
    assert "OUR PGHI" in research["pghi"]["label"] and "--no-tifresi" in research["pghi"]["status"]
    assert research["one_clip_ms"] == pytest.approx(research["generator"]["one"]["p50"] + research["decode_ms_per_clip"]
                                                    + research["pghi"]["ms_per_clip"]
                                                    + research["loudness_ms_per_clip"])
    assert doc["ratios"]["latency_speedup_p50"] == pytest.approx(research["one_clip_ms"] / latency["total"]["p50"])
    assert len(doc["goals"]) == 2


def test_quality_smoke(small_model, tmp_path):
    doc, stdout = run_bench("quality", tmp_path, "--model", str(small_model), "--n", "24", "--workers", "1")
    check_common(doc, stdout)
    fd = doc["fd"]
    assert all(v > 0 for v in fd.values())
    # an untrained small generator is nowhere near the procedural sounds: far above the real-vs-real floor
    assert fd["model"] > 3 * fd["floor_real_vs_real"]
    # generated clips are measured as heard; real clips through the same PGHI round trip are a reported row
    assert doc["data"]["generated_measured_on"] == "audio" and "real B rendered (PGHI" in stdout
    assert doc["ratios"]["model_over_floor"] == pytest.approx(fd["model"] / fd["floor_real_vs_real"])
    assert doc["data"]["seeds"][0] != doc["data"]["seeds"][1] and 0 not in doc["data"]["seeds"]   # trained on 0
    for name in ("real", "model", "untrained"):
        cov = doc["coverage"][name]
        assert sum(cov["onset_histogram"]) == pytest.approx(1.0)
        assert all(len(cov[k]) == 3 and cov[k] == sorted(cov[k]) for k in ("onsets", "centroid_hz",
                                                                          "event_length_s", "event_fraction"))
    for shares in doc["classes"]["shares"].values():
        assert sum(shares.values()) == pytest.approx(1.0)
    for pr in doc["precision_recall"].values():
        assert 0 <= pr["precision"] <= 1 and 0 <= pr["recall"] <= 1
    png = Path(doc["png"])
    assert png == tmp_path / "quality.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_smoke(tmp_path):
    # One thread: on a loaded 2-core machine two OpenMP threads made this test 7x slower (the extra one-thread row
    # that --threads 2 adds was checked by hand).
    doc, stdout = run_bench("train", tmp_path, "--smoke", "--threads", "1", "--batch", "4", "--baseline-batch", "2")
    check_common(doc, stdout)
    rows = doc["rows"]
    assert rows["shipped"]["family"] == "cpu" and rows["baseline"]["family"] == "paper"
    assert rows["shipped"]["threads"] == 1 and "shipped_1_thread" not in rows
    assert rows["baseline"]["ratio_vs_baseline"] == pytest.approx(1.0)
    for r in rows.values():
        assert r["losses_finite"] and r["clips_per_s"] > 0
        assert r["amortised_step_ms"] == pytest.approx((15 * r["plain_step_ms"] + r["r1_step_ms"]) / 16)
    if "shipped_bf16" in rows:
        assert rows["shipped_bf16"]["bf16"] and not rows["shipped"]["bf16"]
    else:
        assert doc["bf16"]["note"].startswith("failed")


def test_controls_smoke_on_the_shipped_model(tmp_path):
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "hits"
    doc, stdout = run_bench("controls", tmp_path, "--model", str(shipped), "--quick", "--seeds", "2")
    check_common(doc, stdout)
    assert doc["measured_on"] == "audio" and doc["seeds"] == 2 and doc["steps"] == [-5.0, -2.5, 0.0, 2.5, 5.0]
    semantic = [r for r in doc["rows"] if r["kind"] == "semantic"]
    assert {r["slider"] for r in semantic} == {"brightness", "rate", "impact"}
    assert {r["scale"] for r in semantic} == {"spread", "unit"}
    for r in semantic:
        assert r["rho"] is None or -1 <= r["rho"] <= 1
        assert all(v >= 0 for v in r["moved_all"].values())
    assert sum(r["kind"] == "random" for r in doc["rows"]) == 3 and sum(r["kind"] == "sefa" for r in doc["rows"]) == 4
    assert len(doc["goals"]) == 6     # two per slider


@pytest.mark.parametrize("script", ["generate", "quality"])
def test_missing_model_is_one_line(script, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--model", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: --model") and "nope" in proc.stderr
