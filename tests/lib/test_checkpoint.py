"""Resumable checkpoints: a killed run continues exactly (bitwise on CPU) as if it had never stopped."""

import json
import os
import random
import pickle
import subprocess
import sys
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import capstone
from course_lib.capstone import CapstoneConfig, prepare_data, run_one
from course_lib.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from course_lib.data import SeekableBatchStream, TokenChunkDataset, batch_stream
from course_lib.train import TrainResult

ROOT = Path(__file__).resolve().parents[2]

# A tiny model; attention dropout makes every step draw random numbers, so a wrong RNG state shows up,
# and warmup + cosine makes a wrong scheduler position show up.
TINY = dict(seq_len=32, batch_size=4, steps=6, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, attention_dropout=0.1, lr_schedule="warmup_cosine",
            warmup_steps=2, eval_every=3, max_eval_sequences=8)


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def data():
    return prepare_data(CapstoneConfig(**TINY))


def test_seekable_stream_equals_batch_stream_from_any_position():
    ds = TokenChunkDataset(torch.arange(23 * 8) % 50, seq_len=8, vocab_size=50)  # 23 sequences, 5 batches/epoch
    reference = batch_stream(ds, 4, seed=7)
    expected = [next(reference) for _ in range(17)]  # more than three epochs
    stream = SeekableBatchStream(ds, 4, seed=7)
    assert all(torch.equal(next(stream), e) for e in expected)
    for start in (0, 4, 5, 11):
        resumed = SeekableBatchStream(ds, 4, seed=7, position=start)
        assert all(torch.equal(next(resumed), e) for e in expected[start:])
    assert stream.state_dict()["position"] == 17 and stream.epoch == 3


def test_rng_state_round_trip():
    state = rng_state()
    first = (random.random(), float(np.random.rand()), torch.rand(3))
    torch.manual_seed(99), random.seed(99), np.random.seed(99)
    set_rng_state(state)
    again = (random.random(), float(np.random.rand()), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def _final(path):
    ckpt = load_checkpoint(path)
    return ckpt["model"], ckpt["optimizer"]["state"], ckpt["result"]


def _run(config, data, opt, path, monkeypatch=None, crash_at=None, resume=None):
    if crash_at is not None:  # run_one kills its process with os.kill; here it raises instead
        monkeypatch.setattr(capstone.runner.os, "kill", lambda *a: (_ for _ in ()).throw(Crash()))
    try:
        return run_one(config, data.train, opt, val_set=data.val, device="cpu", progress=False, checkpoint_path=path,
                       checkpoint_every=2, crash_after_step=crash_at, resume=resume)
    finally:
        if crash_at is not None:
            monkeypatch.undo()


@pytest.mark.parametrize("opt,precision", [("torch_adamw", "fp32"), ("muon", "fp32"), ("torch_adamw", "fp16")])
def test_resumed_run_equals_uninterrupted_run_bitwise(opt, precision, data, tmp_path, monkeypatch):
    """fp16 (what "auto" picks on a T4) also checkpoints its GradScaler and resumes it: a scaler that grows
    every step ends at the same scale after a crash and resume as without one (a scaler restarted from its
    initial scale would not)."""
    if precision == "fp16":
        monkeypatch.setattr(capstone.runner, "grad_scaler_for",
                            lambda device, dtype: torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=1))
    config = CapstoneConfig(**TINY, precision=precision)
    whole = _run(config, data, opt, tmp_path / "whole.pt")
    with pytest.raises(Crash):
        _run(config, data, opt, tmp_path / "crashed.pt", monkeypatch, crash_at=5)
    ckpt = load_checkpoint(tmp_path / "crashed.pt")
    assert ckpt["step"] == 4 and ckpt["data"]["position"] == 4 and ckpt["scheduler"]["last_epoch"] == 4
    assert (ckpt["extra"]["grad_scaler"] is not None) == (precision == "fp16")
    assert ckpt["extra"]["autocast_dtype"] == ("torch.float16" if precision == "fp16" else "None")
    torch.manual_seed(12345), random.seed(12345), np.random.seed(12345)  # the new process starts elsewhere
    resumed = _run(config, data, opt, tmp_path / "crashed.pt", resume=ckpt)
    for key in ("train_loss", "grad_norm", "lr", "val_steps", "val_loss", "tokens"):
        assert getattr(resumed, key) == getattr(whole, key), key
    (w_model, w_opt, _), (r_model, r_opt, _) = _final(tmp_path / "whole.pt"), _final(tmp_path / "crashed.pt")
    if precision == "fp16":
        w_scaler, r_scaler = (load_checkpoint(tmp_path / f)["extra"]["grad_scaler"] for f in ("whole.pt", "crashed.pt"))
        assert w_scaler == r_scaler and w_scaler["scale"] != 2.0**8  # it grew, and the resumed run kept growing it
    assert all(torch.equal(w_model[k], r_model[k]) for k in w_model)
    for i in w_opt:
        for k, v in w_opt[i].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(r_opt[i][k])), (i, k)


def test_a_resume_in_another_precision_says_so(data, tmp_path):
    """A run resumed where --precision picks another autocast dtype (a bf16 run moved to a T4, say) warns,
    naming both, instead of changing the arithmetic silently."""
    config = CapstoneConfig(**TINY)
    _run(config, data, "torch_adamw", tmp_path / "fp32.pt")
    ckpt = load_checkpoint(tmp_path / "fp32.pt")
    with pytest.warns(UserWarning, match="checkpoint trained with autocast None, this machine picks torch.float16"):
        _run(CapstoneConfig(**TINY, precision="fp16"), data, "torch_adamw", tmp_path / "fp32.pt", resume=ckpt)


@pytest.mark.parametrize("break_it", ["data position", "rng", "scheduler"])
def test_resume_check_has_teeth(break_it, data, tmp_path, monkeypatch):
    """Restoring all but one piece of the state gives different numbers, so the test above can fail."""
    config = CapstoneConfig(**TINY)
    whole = _run(config, data, "muon", tmp_path / "whole.pt")
    with pytest.raises(Crash):
        _run(config, data, "muon", tmp_path / "crashed.pt", monkeypatch, crash_at=5)
    ckpt = load_checkpoint(tmp_path / "crashed.pt")
    if break_it == "data position":
        ckpt["data"]["position"] -= 1
    elif break_it == "rng":
        torch.manual_seed(777)
        ckpt["rng"] = rng_state()
    else:
        ckpt["scheduler"]["last_epoch"] -= 1
    resumed = _run(config, data, "muon", tmp_path / "crashed.pt", resume=ckpt)
    assert resumed.train_loss[:4] == whole.train_loss[:4]
    assert resumed.train_loss[4:] != whole.train_loss[4:] or resumed.lr != whole.lr


def test_killed_command_resumes_exactly(tmp_path):
    """A real SIGKILL of `python -m course_lib.capstone`, then `--resume`: same history as one clean run."""
    args = ["--quick", "--optimizers", "muon", "--steps", "4", "--checkpoint-every", "2", "--no-progress"]
    assert capstone.main(args + ["--out", str(tmp_path / "clean")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same summation order as this process
    crashed = subprocess.run([sys.executable, "-m", "course_lib.capstone", *args, "--crash-after-step", "3",
                              "--out", str(tmp_path / "crashed")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert crashed.returncode in (-9, 137), crashed.stderr[-2000:]
    ckpt_path = tmp_path / "crashed" / "checkpoints" / "muon.pt"
    assert load_checkpoint(ckpt_path)["step"] == 2 and not (tmp_path / "crashed" / "run_muon.json").exists()
    assert capstone.main(["--resume", str(ckpt_path), "--no-progress", "--out", str(tmp_path / "crashed")]) == 0
    clean = json.loads((tmp_path / "clean" / "run_muon.json").read_text())
    resumed = json.loads((tmp_path / "crashed" / "run_muon.json").read_text())
    for key in ("train_loss", "grad_norm", "lr", "val_steps", "val_loss", "tokens"):
        assert resumed[key] == clean[key], key
    a, b = load_checkpoint(tmp_path / "clean" / "checkpoints" / "muon.pt"), load_checkpoint(ckpt_path)
    assert a["step"] == b["step"] == 4 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"version": 0}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="version 0"):
        load_checkpoint(tmp_path / "old.pt")


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path, data):
    config = replace(CapstoneConfig(**TINY), steps=2)
    _run(config, data, "torch_adamw", tmp_path / "c.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


# ---- damaged and foreign files: one clear CheckpointError, never torch's advice to use weights_only=False ----

def _small_checkpoint(path, dtype=torch.float32):
    """A real checkpoint of a tiny model after one AdamW step (its weights and moments are non-trivial)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 4)).to(dtype)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(3, 16, dtype=dtype)).square().sum().backward()
    optimizer.step()
    stream = SeekableBatchStream(TokenChunkDataset(torch.arange(23 * 8) % 50, seq_len=8, vocab_size=50), 4, seed=7)
    next(stream)
    result = TrainResult("tiny", train_loss=[2.5], grad_norm=[1.0], lr=[1e-2], tokens=32)
    save_checkpoint(path, model=model, optimizer=optimizer, step=1, stream=stream, result=result)
    return model, optimizer


def _refused(path, *words):
    """load_checkpoint(path) raises CheckpointError naming the file, with these words and what to do."""
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    shown = "".join(traceback.format_exception(info.value))  # what a user sees, chained exceptions included
    assert str(path) in message and "without --resume" in message, message
    assert all(w in message for w in words), message
    assert "weights_only" not in shown and "eights only" not in shown, shown
    return message


def test_checkpoint_round_trip_with_checksum(tmp_path):
    model, optimizer = _small_checkpoint(tmp_path / "c.pt", dtype=torch.bfloat16)  # bf16 tensors are hashed too
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt["version"] == 2 and "sha256" not in ckpt and ckpt["step"] == 1 and ckpt["data"]["position"] == 1
    assert all(torch.equal(v, ckpt["model"][k]) for k, v in model.state_dict().items())
    assert torch.equal(optimizer.state_dict()["state"][0]["exp_avg"], ckpt["optimizer"]["state"][0]["exp_avg"])


@pytest.mark.parametrize("where", ["model weight", "AdamW second moment"])
def test_flipped_bytes_give_checksum_mismatch(where, tmp_path):
    path = tmp_path / "c.pt"
    model, optimizer = _small_checkpoint(path)
    tensor = model[0].weight if where == "model weight" else optimizer.state[model[0].weight]["exp_avg_sq"]
    raw = tensor.detach().numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = data.find(raw)
    assert at > 0 and data.find(raw, at + 1) == -1  # the tensor's bytes are stored once, uncompressed
    data[at + len(raw) // 2] ^= 0x01  # one low mantissa bit: a tiny, silent change
    path.write_bytes(bytes(data))
    loaded = torch.load(path, weights_only=True)  # torch itself reads the changed numbers without a word
    changed = loaded["model"]["0.weight"] if where == "model weight" else loaded["optimizer"]["state"][0]["exp_avg_sq"]
    assert (changed != tensor).sum() == 1
    _refused(path, "checksum mismatch", "changed after it was written")


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "c.pt"
    _small_checkpoint(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _refused(path, "not a readable checkpoint", "truncated or damaged")


def test_empty_file_is_refused(tmp_path):
    (tmp_path / "c.pt").write_bytes(b"")
    _refused(tmp_path / "c.pt", "empty")


def test_text_file_is_refused(tmp_path):
    (tmp_path / "c.pt").write_text("step 200, loss 3.1\n")
    _refused(tmp_path / "c.pt", "not a readable checkpoint")


def test_pickle_with_objects_is_refused_without_running_it(tmp_path):
    """A plain pickle holding a class: torch's error would advise weights_only=False; ours does not."""
    with open(tmp_path / "c.pt", "wb") as f:
        pickle.dump({"model": TrainResult("x")}, f, protocol=2)
    _refused(tmp_path / "c.pt", "not a readable checkpoint", "could run code from the file")


@pytest.mark.parametrize("content", ["dict", "state_dict", "list"])
def test_foreign_torch_file_is_not_a_course_checkpoint(content, tmp_path):
    obj = {"dict": {"a": 1}, "state_dict": torch.nn.Linear(2, 2).state_dict(), "list": [torch.ones(2)]}[content]
    torch.save(obj, tmp_path / "c.pt")
    _refused(tmp_path / "c.pt", "not a course checkpoint")


def test_version_1_checkpoint_asks_to_start_again(tmp_path):
    path = tmp_path / "c.pt"
    _small_checkpoint(path)
    old = torch.load(path, weights_only=True)  # the keys a version-1 file had: the same, without the checksum
    old.pop("sha256", None)
    old["version"] = 1
    torch.save(old, path)
    _refused(path, "older version", "version 1", "Start the run again")
