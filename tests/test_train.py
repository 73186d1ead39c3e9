"""Training: a tiny config learns (losses and weights move), resumes exactly, warm-starts, and runs data parallel."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

from stylesynth import checkpoint, dataset, train
from stylesynth.model import tiny_config


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "hits"
    dataset.make("hits", 24, folder, seed=3, workers=1, progress=False)
    return folder


def tiny_train_config(data, **kw):
    return train.TrainConfig(model="hits", batch=4, kimg=1, data_dir=str(data), eval_samples=8,
                             eval_minutes=1e9, snapshot_minutes=1e9, log_every=2, r1_interval=2, **kw)


def weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_tiny_run_moves_losses_and_weights(tiny_data, tmp_path):
    run = tmp_path / "run"
    train.run(run, tiny_train_config(tiny_data), tiny_config(), max_steps=6, progress=False)
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == 6 and state["nimg"] == 24
    logs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [entry["loss_d"] for entry in logs if "loss_d" in entry]
    assert len(losses) == 3 and len(set(losses)) == 3            # logged every 2 steps, and changing
    evals = [entry["eval"] for entry in logs if "eval" in entry]
    assert evals and evals[0]["fd"] > 0                           # the baseline figure of a fresh run
    torch.manual_seed(0)
    untrained = train.Generator(tiny_config())
    trained = checkpoint.read_tensors(run / "state.safetensors")
    moved = [k for k, v in untrained.state_dict().items() if not torch.equal(v, trained["G." + k])]
    assert len(moved) > 10                                        # most weights took steps
    assert any((run / "samples").glob("*.png"))
    best, _ = checkpoint.load_generator(run / "best")
    assert best.cfg.to_json() == tiny_config().to_json()


def test_resume_continues_exactly(tiny_data, tmp_path):
    torch.manual_seed(0)
    straight = tmp_path / "straight"
    train.run(straight, tiny_train_config(tiny_data), tiny_config(), max_steps=6, progress=False)
    torch.manual_seed(0)
    split = tmp_path / "split"
    train.run(split, tiny_train_config(tiny_data), tiny_config(), max_steps=3, progress=False)
    train.run(split, tiny_train_config(tiny_data), tiny_config(), max_steps=3, progress=False)
    a = checkpoint.read_tensors(straight / "state.safetensors")
    b = checkpoint.read_tensors(split / "state.safetensors")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []
    assert json.loads((split / "state.json").read_text())["step"] == 6


def test_warm_start_from_exported_checkpoint(tiny_data, tmp_path):
    first = tmp_path / "first"
    train.run(first, tiny_train_config(tiny_data), tiny_config(), max_steps=2, progress=False)
    second = tmp_path / "second"
    state = train.run(second, tiny_train_config(tiny_data), tiny_config(), warm_start=str(first / "best"),
                      max_steps=1, progress=False).progress
    assert state["warm_start"] == str(first / "best")
    assert state["nimg"] > 4                                      # kimg carried over from the checkpoint


def test_the_end_of_a_run_is_evaluated(tiny_data, tmp_path):
    tc = dataclasses.replace(tiny_train_config(tiny_data), kimg=0.02)          # 5 steps of 4
    train.run(tmp_path / "run", tc, tiny_config(), progress=False)
    evals = [json.loads(line)["eval"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
             if '"eval"' in line]
    assert [e["kimg"] for e in evals] == [0.0, 0.02]          # the fresh run's baseline, then the end
    again = train.run(tmp_path / "run", tc, tiny_config(), progress=False).progress   # finished: only evaluates
    assert again["nimg"] == 20
    log = (tmp_path / "run" / "log.jsonl").read_text()
    assert log.count('"eval"') == 3 and log.count('"step"') == len(log.splitlines()) - 3   # no new steps
    assert (tmp_path / "run" / "best" / "generator.safetensors").is_file()


def test_transfer_from_another_models_checkpoint_counts_kimg_afresh(tiny_data, tmp_path):
    from stylesynth.model import Generator
    from stylesynth.spectrogram import ENV

    other = tmp_path / "env-like"
    torch.manual_seed(3)
    g = Generator(tiny_config())
    checkpoint.save_generator(g, other, ENV, {"name": "env-like", "training": {"kimg": 50.0, "nimg": 50000}})
    result = train.run(tmp_path / "run", tiny_train_config(tiny_data), tiny_config(), warm_start=str(other),
                       max_steps=1, progress=False)
    state = result.progress
    assert state["warm_start"] == str(other)
    assert state["nimg"] == 4                        # one step of batch 4: this run's images, not the 50 kimg
    assert state["transferred_from"] == {"model": "env-like", "kimg": 50.0, "seconds_per_clip": ENV.seconds}


def test_data_parallel_two_ranks_agree(tiny_data, tmp_path):
    """Two gloo ranks on the CPU under torchrun: different batches, averaged gradients, identical weights."""
    script = tmp_path / "ddp.py"
    script.write_text(f"""
import torch, torch.distributed as dist
from stylesynth import train
from stylesynth.model import tiny_config
tc = train.TrainConfig(model="hits", batch=2, kimg=1, data_dir={str(tiny_data)!r}, eval_samples=4,
                       eval_minutes=1e9, snapshot_minutes=1e9, log_every=1, r1_interval=2)
torch.set_num_threads(1)
result = train.run({str(tmp_path / "run")!r}, tc, tiny_config(), max_steps=3, progress=False)
from safetensors.torch import save_file
flat = torch.cat([t.detach().flatten() for m in (result.G, result.D, result.G_ema) for t in m.state_dict().values()])
save_file({{"flat": flat}}, {str(tmp_path)!r} + f"/rank{{dist.get_rank()}}.safetensors")
""")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node", "2", str(script)], capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    a = checkpoint.read_tensors(tmp_path / "rank0.safetensors")["flat"]
    b = checkpoint.read_tensors(tmp_path / "rank1.safetensors")["flat"]
    assert torch.equal(a, b)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [entry for entry in log if "loss_d" in entry]
    assert steps[-1]["kimg"] == pytest.approx(3 * 2 * 2 / 1000)  # 3 steps x batch 2 x 2 ranks


def test_bf16_autocast_trains_and_keeps_float32_weights(tiny_data, tmp_path):
    result = train.run(tmp_path / "bf16", tiny_train_config(tiny_data, amp="bf16"), tiny_config(), max_steps=4,
                       progress=False)
    logs = [json.loads(line) for line in (tmp_path / "bf16" / "log.jsonl").read_text().splitlines()]
    steps = [entry for entry in logs if "loss_d" in entry]
    assert steps and all(torch.isfinite(torch.tensor([e["loss_g"], e["loss_d"], e["r1"]])).all() for e in steps)
    assert any(e["r1"] > 0 for e in steps)                         # R1 ran (in float32) within the 4 steps
    assert all(p.dtype == torch.float32 for p in result.G.parameters())
    assert result.G.w_avg.dtype == torch.float32 and torch.isfinite(result.G.w_avg).all()


def test_export_last_writes_the_latest_ema_not_the_best(tiny_data, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="holds no trained state"):
        train.run(run, tiny_train_config(tiny_data), tiny_config(), export_last=str(tmp_path / "x"), progress=False)
    result = train.run(run, tiny_train_config(tiny_data), tiny_config(), max_steps=3, progress=False)
    out = tmp_path / "last"
    again = train.run(run, tiny_train_config(tiny_data), tiny_config(), export_last=str(out), progress=False)
    assert again.progress["step"] == 3                                   # no training step was taken
    generator, meta = checkpoint.load_generator(out)
    assert meta["training"]["nimg"] == 12 and meta["figures"]["kimg"] == 0.01
    for k, v in result.G_ema.state_dict().items():                       # the latest EMA, stored as fp16
        assert torch.equal(generator.state_dict()[k], v.half().float()), k
