"""Data parallelism with torchrun + DistributedDataParallel and the GPT-2-small preset.

The main test starts a real 2-process gloo run with torchrun (``python -m torch.distributed.run``)
and compares its loss curves with the single-process run on the same global batch.
"""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from course_lib import capstone
from course_lib.capstone import CapstoneConfig, fit_batch_to_data, prepare_data, run_one
from course_lib.capstone.runner import record_run
from course_lib.distributed import (DistContext, global_mean, init_distributed, launched_by_torchrun, plan_batches,
                                    shard_rows, split_micro_batches)
from course_lib.models import TransformerConfig, TransformerForCausalLM
from course_lib.train import TrainResult

ROOT = Path(__file__).resolve().parents[2]

# fp32, 4 steps of a tiny model: the 2-process losses differ from the 1-process ones only by the order
# of floating-point sums in the gradient all-reduce (measured: ≤ 1e-6 on losses of about 9.7).
LOSS_ATOL = 1e-5


def test_shards_cover_the_global_batch_in_order():
    batch = torch.arange(12).view(6, 2)
    shards = [shard_rows(batch, r, 3) for r in range(3)]
    assert torch.equal(torch.cat(shards), batch)
    assert [m.tolist() for m in split_micro_batches(shards[0], 2)] == [[[0, 1]], [[2, 3]]]
    with pytest.raises(ValueError, match="multiple of 4"):
        shard_rows(batch, 0, 4)
    with pytest.raises(ValueError, match="3 equal"):
        split_micro_batches(shards[0], 3)


def test_plan_batches_keeps_the_gpt2_small_global_batch():
    assert plan_batches(480, 1, max_micro_batch=32) == (32, 15)  # the original run: 32 x 15
    for world in (1, 2, 3, 4, 5, 6, 8):
        micro, accum = plan_batches(480, world, max_micro_batch=32)
        assert micro * accum * world == 480 and micro <= 32
    assert plan_batches(16, 2) == (8, 1) and plan_batches(16, 1, micro_batch=4) == (4, 4)
    with pytest.raises(ValueError, match="not a multiple"):
        plan_batches(480, 7)
    with pytest.raises(ValueError, match="does not divide"):
        plan_batches(480, 2, micro_batch=7)


def test_single_process_context_without_torchrun(monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    ctx, device = init_distributed("cpu")
    assert ctx == DistContext() and not ctx.enabled and ctx.is_main and device.type == "cpu"
    assert not torch.distributed.is_initialized()
    assert launched_by_torchrun({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    assert global_mean(torch.tensor(30.0), 10, ctx) == 3.0
    with pytest.raises(ValueError):
        DistContext(rank=2, world_size=2)


def test_gpt2_small_preset_has_gpt2_small_shape():
    config = CapstoneConfig.gpt2_small()
    shape = (config.num_hidden_layers, config.num_attention_heads, config.hidden_size, config.seq_len)
    assert shape == (12, 12, 768, 1024)
    assert config.batch_size == 480 and config.adamw_lr == 6e-4 and config.weight_decay == 0.1
    assert config.muon_lr == 0.02 and config.momentum == 0.95 and config.lr_schedule == "warmup_cosine"
    with torch.device("meta"):
        model = TransformerForCausalLM(TransformerConfig(vocab_size=1, hidden_size=768, intermediate_size=2048,
                                                         num_hidden_layers=12, num_attention_heads=12,
                                                         num_key_value_heads=12, max_position_embeddings=1024))
    per_layer = sum(p.numel() for n, p in model.named_parameters() if ".layers.0." in n and p.ndim == 2)
    assert per_layer == 12 * 768 * 768  # GPT-2 small: 4·768² attention + 2·768·3072 MLP per layer


def test_preset_refuses_a_cpu_unless_smoke(capsys):
    with pytest.raises(SystemExit):
        capstone.main(["--preset", "gpt2-small", "--device", "cpu"])
    assert "needs a GPU" in capsys.readouterr().err


def test_small_data_shrinks_the_batch_and_warns_about_epochs():
    lines = []
    config = fit_batch_to_data(CapstoneConfig.gpt2_small(), train_sequences=112, world_size=2, log=lines.append)
    assert config.batch_size == 112 and "--tokens" in lines[0] and "passes over" in lines[1]


def test_only_rank_0_writes(tmp_path):
    config = CapstoneConfig.quick()
    result = TrainResult(name="x", train_loss=[2.0, 1.0], val_steps=[2], val_loss=[1.5], seconds=1.0, tokens=10)
    record_run(config, 100, result, "cpu", DistContext(rank=1, world_size=2), tmp_path, "muon", log=lambda *a: None)
    assert list(tmp_path.iterdir()) == []
    record_run(config, 100, result, "cpu", DistContext(rank=0, world_size=2), tmp_path, "muon", log=lambda *a: None)
    assert json.loads((tmp_path / "run_muon.json").read_text())["written_by_rank"] == 0


def test_accumulation_and_cpu_bf16_autocast_paths():
    """One process, micro-batches of 4 x 4 accumulation steps ≈ one batch of 16 (fp32 rounding);
    the bf16 autocast path (used on GPUs) runs and stays close on a CPU."""
    config = replace(CapstoneConfig.quick(steps=3), hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    data = prepare_data(config)
    whole = run_one(config, data.train, "muon", device="cpu", progress=False)
    accum = run_one(replace(config, max_micro_batch=4), data.train, "muon", device="cpu", progress=False)
    assert max(abs(a - b) for a, b in zip(whole.train_loss, accum.train_loss)) < LOSS_ATOL
    bf16 = run_one(replace(config, precision="bf16"), data.train, "muon", device="cpu", progress=False)
    assert max(abs(a - b) for a, b in zip(whole.train_loss, bf16.train_loss)) < 0.05  # bf16 has 8 mantissa bits


def test_two_process_gloo_run_matches_one_process(tmp_path):
    """torchrun, 2 processes, gloo: same loss curves as 1 process on the same global batch, for AdamW and
    hybrid Muon; only rank 0 writes; the replicas end bit-identical (run_one raises otherwise)."""
    args = ["--quick", "--optimizers", "torch_adamw", "muon", "--steps", "4", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "course_lib.capstone", *args, "--out", str(tmp_path / "ddp")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("[AdamW]") == 1  # rank 0 alone logs
    assert capstone.main(args + ["--out", str(tmp_path / "single")]) == 0
    assert (sorted(p.name for p in (tmp_path / "ddp").iterdir())
            == sorted(p.name for p in (tmp_path / "single").iterdir()))
    for opt in ("torch_adamw", "muon"):
        ddp = json.loads((tmp_path / "ddp" / f"run_{opt}.json").read_text())
        one = json.loads((tmp_path / "single" / f"run_{opt}.json").read_text())
        assert ddp["world_size"] == 2 and ddp["written_by_rank"] == 0 and one["world_size"] == 1
        assert ddp["tokens"] == one["tokens"]  # same global batches
        diffs = [abs(a - b) for a, b in zip(ddp["train_loss"], one["train_loss"])]
        assert len(diffs) == 4 and max(diffs) < LOSS_ATOL, (opt, diffs)
        assert abs(ddp["val_loss"][-1] - one["val_loss"][-1]) < LOSS_ATOL
    summary = json.loads((tmp_path / "ddp" / "scaled_capstone_compact.json").read_text())
    assert summary["world_size"] == 2 and summary["micro_batch"] == CapstoneConfig.quick().batch_size // 2
