"""Re-analysis (image -> PGHI phase -> waveform -> image) in torch: the same numbers as the numpy audio path, a
gradient to the generated magnitude, and a clear refusal where it cannot apply."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stylesynth import features, reanalysis, spectrogram, train, waveform
from stylesynth.model import tiny_config
from stylesynth.pghi import fast_istft
from stylesynth.procedural import gaver
from stylesynth.spectrogram import ENV, HITS


def noisy_bursts(rep, n=2, seed=0):
    rng = np.random.default_rng(seed)
    envelope = np.zeros(rep.n_samples)
    for start in rng.integers(0, rep.n_samples - 4000, 4):
        envelope[start:start + 3000] = np.exp(-np.arange(3000) / 400.0)
    return rng.standard_normal((n, rep.n_samples)) * envelope


@pytest.mark.parametrize("rep", [HITS, ENV], ids=["hits", "env"])
def test_analyse_matches_encode(rep):
    x = noisy_bursts(rep)
    ours = reanalysis.analyse(torch.from_numpy(x), rep).numpy()
    ref = np.stack([spectrogram.encode(clip, rep) for clip in x])
    assert np.abs(ours - ref).max() < 1e-4


@pytest.mark.parametrize("rep", [HITS, ENV], ids=["hits", "env"])
def test_synthesise_matches_fast_istft(rep):
    x = noisy_bursts(rep, n=1)[0]
    magnitude = np.abs(spectrogram.stft(x, rep))
    phase = np.random.default_rng(1).uniform(-np.pi, np.pi, magnitude.shape)
    ours = reanalysis.synthesise(torch.from_numpy(magnitude)[None], torch.from_numpy(phase)[None], rep)[0].numpy()
    ref = fast_istft((magnitude * np.exp(1j * phase)).astype(np.complex64), rep)
    assert np.abs(ours - ref).max() < 1e-5 * np.abs(ref).max()


def test_reanalyse_is_the_spectrogram_of_the_rendered_audio():
    specs = np.stack([spectrogram.encode(clip, HITS) for clip in noisy_bursts(HITS, n=3, seed=4)])
    ours = reanalysis.reanalyse(torch.from_numpy(specs), HITS, seed=5).numpy()
    audio = waveform.spectrogram_to_audio_batch(specs, HITS, lufs=None, seed=5)
    ref = np.stack([spectrogram.encode(clip, HITS) for clip in audio])
    assert np.abs(ours - ref).max() < 2e-3          # float32 synthesis and analysis, dB near the floor
    assert np.abs(ours - specs).mean() > 1e-3       # and it is not the identity: PGHI's phase is not the true one


def test_a_consistent_onset_survives_and_gradient_reaches_the_image():
    rng = np.random.default_rng(2)
    x = gaver.render(gaver.sample_params(rng, "hit", n_events=3, duration=HITS.seconds), rng, HITS.n_samples)
    spec = torch.from_numpy(spectrogram.encode(x, HITS))[None].requires_grad_(True)
    heard = reanalysis.reanalyse(spec, HITS)
    before = features.batch_features(spec.detach(), HITS)[0, features.FEATURE_NAMES.index("onsets_per_s")]
    after = features.batch_features(heard.detach(), HITS)[0, features.FEATURE_NAMES.index("onsets_per_s")]
    assert before > 0 and after > 0
    heard.square().sum().backward()
    assert torch.isfinite(spec.grad).all() and spec.grad.abs().sum() > 0


def test_reanalysis_refuses_cropped_images(tmp_path):
    tc = train.TrainConfig(model="hits", batch=2, kimg=1, data_dir=str(tmp_path / "none"), reanalysis=True)
    with pytest.raises(ValueError, match="--reanalysis needs full 256x256 images"):
        train.run(tmp_path / "run", tc, tiny_config(), max_steps=1, progress=False)


def test_a_full_size_step_with_reanalysis_and_consistency(tmp_path):
    """The shipped architecture takes steps with D judging sounds and the consistency term on: losses finite,
    G's weights move, and the evaluation reports fd_audio beside fd."""
    from stylesynth import dataset

    data = tmp_path / "data"
    dataset.make("hits", 8, data, seed=3, workers=1, progress=False)
    tc = train.TrainConfig(model="hits", batch=2, kimg=1, data_dir=str(data), eval_samples=8, eval_minutes=1e9,
                           snapshot_minutes=1e9, log_every=2, r1_interval=2, reanalysis=True, consistency=5.0)
    arch = train.default_architecture("hits")
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in train.Generator(arch).state_dict().items()}
    result = train.run(tmp_path / "run", tc, arch, max_steps=2, progress=False)
    after = result.G.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [entry for entry in logs if "loss_g" in entry]
    assert steps and all(np.isfinite(entry["loss_g"]) and np.isfinite(entry["loss_d"]) for entry in steps)
    evals = [entry["eval"] for entry in logs if "eval" in entry]
    assert evals and np.isfinite(evals[0]["fd_audio"]) and evals[0]["fd_audio"] != evals[0]["fd"]
