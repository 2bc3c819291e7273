"""How the capstone trains: one run, a learning-rate search that brackets its optimum, the seeds of
the study, and the one-run-per-optimizer comparison of notebook 10.

Every finished run goes into the results file at once (``results_io.ResultsFile``), so an interrupted
``make compare`` continues where it stopped.
"""

from __future__ import annotations

import math
import os
import signal
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..baselines import baseline_losses
from ..checkpoint import save_checkpoint, set_rng_state
from ..compute import device_peak_flops, memory_report, mfu, transformer_flops_per_token
from ..data import SeekableBatchStream
from ..distributed import DistContext, barrier, plan_batches, replicas_identical, wrap_model
from ..i18n import tr
from ..precision import autocast_dtype_for, grad_scaler_for
from ..runtime import describe_device, pick_device
from ..train import StepPlan, TrainResult, validate_finite_weights, train
from ..validate import require_number
from .experiment import (HYBRIDS, LABELS, CapstoneConfig, build_model, condition_run_config,
                         evaluated_seeds, make_optimizer, make_scheduler, model_config, parameter_count,
                         parameter_groups, prepare_data, study_conditions)
from .results_io import ResultsFile


def run_one(config: CapstoneConfig, train_set, optimizer_name: str, lr: float | None = None, val_set=None,
            device=None, progress: bool = True, name: str | None = None, *, dist_context: DistContext | None = None,
            checkpoint_path=None, checkpoint_every: int = 0, resume: dict | None = None,
            crash_after_step: int | None = None, info: dict | None = None) -> TrainResult:
    """Train one model with one optimizer; same weights and same batch order for every call.

    With ``dist_context`` (several processes) the model is wrapped in DistributedDataParallel and
    each process trains on its shard of every global batch. ``checkpoint_path`` + ``checkpoint_every``
    save a resumable checkpoint every that many steps and at the end (rank 0 writes); ``resume`` (a
    loaded checkpoint) continues that run exactly. ``crash_after_step`` kills the process (SIGKILL)
    right after that step, as a power cut would, for tests and demonstrations. ``info``, if given,
    receives the run's memory figures (``memory_report``).
    """
    ctx = dist_context or DistContext()
    require_number("checkpoint_every", checkpoint_every, at_least=0, integer=True, hint="0 saves only at the end")
    if crash_after_step is not None:
        require_number("crash_after_step", crash_after_step, at_least=1, integer=True)
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    raw = build_model(config, train_set.vocab_size, device)
    optimizer, lr = make_optimizer(config, raw, optimizer_name, lr, device)
    scheduler = make_scheduler(config, optimizer)
    name = name or f"{LABELS.get(optimizer_name, optimizer_name)} lr={lr:g}"
    _, accum_steps = plan_batches(config.batch_size, ctx.world_size,
                                  max_micro_batch=config.max_micro_batch or config.batch_size)
    stream = SeekableBatchStream(train_set, config.batch_size, config.data_seed)
    result = None
    if resume is not None:
        raw.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(resume["scheduler"])
        stream = SeekableBatchStream(train_set, config.batch_size, config.data_seed, resume["data"]["position"])
        result = TrainResult.from_dict(resume["result"])
        set_rng_state(resume["rng"])  # last: building the model above drew from the generators
    model = torch.compile(raw) if config.compile else raw
    model = wrap_model(model, ctx, device)
    extra = {"config": asdict(config), "optimizer_name": optimizer_name, "lr": lr, "name": name,
             "world_size": ctx.world_size, "checkpoint_every": checkpoint_every}

    autocast_dtype = autocast_dtype_for(device, config.precision)
    scaler = grad_scaler_for(device, autocast_dtype)  # fp16 only
    if resume is not None:
        then = resume["extra"].get("autocast_dtype")
        if then is not None and then != str(autocast_dtype) and ctx.is_main:
            warnings.warn(tr(f"{name}: the checkpoint trained with autocast {then}, this machine picks "
                             f"{autocast_dtype} (--precision {config.precision}): the arithmetic changes from here on",
                             f"{name}: 체크포인트는 autocast {then}로 학습했고 이 머신은 {autocast_dtype}를 고릅니다"
                             f"(--precision {config.precision}). 여기서부터 연산이 달라집니다"), stacklevel=2)
        if scaler is not None and resume["extra"].get("grad_scaler"):
            scaler.load_state_dict(resume["extra"]["grad_scaler"])  # the scale it had reached, not the initial one

    def save(step, res):
        validate_finite_weights(raw, step, name)  # never replace a good checkpoint by one holding NaN
        if ctx.is_main:
            state = {**extra, "autocast_dtype": str(autocast_dtype),
                     "grad_scaler": scaler.state_dict() if scaler is not None else None}
            save_checkpoint(checkpoint_path, model=raw, optimizer=optimizer, scheduler=scheduler, step=step,
                            stream=stream, result=res, extra=state)

    def on_step(step, res):
        if checkpoint_path is not None and checkpoint_every and step % checkpoint_every == 0:
            save(step, res)
        if crash_after_step is not None and step == crash_after_step:
            barrier(ctx)  # every rank has finished the step; then all die together
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))

    plan = StepPlan(accum_steps=accum_steps, dist_context=ctx if ctx.enabled else None,
                    autocast_dtype=autocast_dtype, grad_scaler=scaler)
    result = train(model, optimizer, stream, config.steps, clip_norm=config.clip_norm, scheduler=scheduler,
                   val_dataset=val_set, eval_every=config.eval_every if val_set is not None else 0, device=device,
                   progress=progress, name=name, result=result, on_step=on_step, plan=plan)
    if checkpoint_path is not None and (not checkpoint_every or config.steps % checkpoint_every):
        save(config.steps, result)
    if not replicas_identical(raw, ctx):
        raise RuntimeError(f"{name}: the {ctx.world_size} replicas hold different weights after training")
    if info is not None:
        info.update(memory_report(raw, optimizer, device))
    return result


def summarize_run(result: TrainResult, window: int) -> dict:
    """The numbers every table and conclusion reads: losses with their perplexities, and time."""
    tail = result.train_loss[-window:]
    lowest_i = min(range(len(result.val_loss)), key=result.val_loss.__getitem__) if result.val_loss else None
    final_train = sum(tail) / len(tail)
    summary = {
        "name": result.name,
        "first_loss": result.train_loss[0],
        "final_train_ma": final_train,
        "final_train_ppl": math.exp(final_train),
        "final_val_loss": result.final_val_loss,
        "best_val_loss": result.val_loss[lowest_i] if lowest_i is not None else None,
        "best_val_step": result.val_steps[lowest_i] if lowest_i is not None else None,
        "seconds": result.seconds,
        "tokens_per_s": result.tokens_per_s,
        "step_seconds": result.seconds / len(result.train_loss),
    }
    for key in ("final_val", "best_val"):
        loss = summary[f"{key}_loss"]
        summary[f"{key}_ppl"] = math.exp(loss) if loss is not None and math.isfinite(loss) else None
    return summary


def lr_key(lr: float) -> str:
    """The JSON key of a learning rate (``f"{lr:.4g}"``: 0.002, 0.0005, 0.016)."""
    return f"{lr:.4g}"


def search_lr(objective, centre: float, factor: float = 2.0, max_points: int = 6, start_points: int = 3,
              log=print) -> dict:
    """Find the learning rate that minimises ``objective(lr)`` on a grid ``centre * factor**k``.

    Starts with the centre and one point either side (``start_points=2``: the centre and the point
    above); while the best point is the smallest or
    the largest tried, adds the next point beyond it, so the result is *bracketed*: the best point
    has a worse neighbour on both sides. Stops after ``max_points`` and says so (``bracketed`` is
    then False). ``objective`` returns a loss, or ``math.inf`` for a run that diverged.
    Returns ``{"tried": {lr: loss}, "best": lr, "bracketed": bool}`` (learning rates as floats)."""
    require_number("centre", centre, above=0.0)
    require_number("factor", factor, above=1.0)
    require_number("start_points", start_points, at_least=2, at_most=3, integer=True)
    require_number("max_points", max_points, at_least=start_points, integer=True)
    tried: dict[float, float] = {}

    def point(k: int) -> float:
        return float(f"{centre * factor ** k:.6g}")

    for k in ([-1, 0, 1] if start_points == 3 else [0, 1]):
        tried[point(k)] = objective(point(k))
    while True:
        lrs = sorted(tried)
        best = min(lrs, key=lambda lr: (tried[lr], lr))
        if best not in (lrs[0], lrs[-1]):
            return {"tried": tried, "best": best, "bracketed": True}
        if len(tried) >= max_points:
            log(f"NOTE: the best learning rate {best:g} is still at the edge after {len(tried)} points "
                f"(limit search_max_points={max_points}); its optimum may lie beyond it")
            return {"tried": tried, "best": best, "bracketed": False}
        k = round(math.log(best / centre, factor)) + (-1 if best == lrs[0] else 1)
        tried[point(k)] = objective(point(k))


def write_tensorboard(record: dict, log_dir: Path) -> None:
    """One TensorBoard run from a finished run's record: train loss and its perplexity, gradient
    norm and learning rate per step; held-out loss and perplexity at each evaluation."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for step, (loss, norm, lr) in enumerate(zip(record["train_loss"], record["grad_norm"], record["lr"]), 1):
            writer.add_scalar("train/loss", loss, step)
            writer.add_scalar("train/perplexity", math.exp(min(loss, 50.0)), step)
            writer.add_scalar("train/grad_norm", norm, step)
            writer.add_scalar("train/lr", lr, step)
        for step, loss in zip(record["val_steps"], record["val_loss"]):
            writer.add_scalar("heldout/loss", loss, step)
            writer.add_scalar("heldout/perplexity", math.exp(min(loss, 50.0)), step)


def run_capstone(config: CapstoneConfig, device=None, progress: bool = True, study: bool = True,
                 log=print, dist_context: DistContext | None = None, results_path: Path | None = None,
                 restart: bool = False, tensorboard_dir: Path | None = None) -> dict:
    """The replica of the original notebook, then the held-out study (``config.conditions``); returns the
    JSON-ready results, with the count-based baselines (``baselines.baseline_losses``) of the same split.

    Per condition, each optimizer's learning rate is searched on the tuning seed (``search_lr``,
    objective: the run's lowest held-out loss), which no table reports; then it runs at that learning
    rate on every evaluated seed (``evaluated_seeds``). The hybrid and the ablations that keep an AdamW
    part run it at the AdamW learning rate found in the same condition (searched first);
    ``muon_adamw_searched`` keeps Muon at the hybrid's and searches the AdamW part. With
    ``results_path`` the JSON is written after every run and an interrupted file of the same settings
    is continued. ``tensorboard_dir``: one TensorBoard log per trained run."""
    device = device or pick_device()
    ctx = dist_context or DistContext()
    log = log if ctx.is_main else (lambda *a, **k: None)
    progress = progress and ctx.is_main
    data = prepare_data(config)
    baselines = baseline_losses(data.train, data.val, data.vocab_size)
    docs = "" if data.held_out_documents is None else f" ({data.held_out_documents} documents)"
    log(f"device: {describe_device(device)} | vocabulary: {config.vocab} ({data.vocab_size:,} ids) | "
        f"train sequences: {len(data.train_all)} (replica) / {len(data.train)} + {len(data.val)} held out{docs}")
    log(f"baselines (count tables fit on the training split), held-out loss: unigram {baselines['unigram']:.3f}, "
        f"bigram {baselines['bigram']:.3f} ± {baselines['bigram_ci95']:.3f}")
    header = {"config": asdict(config), "device": describe_device(device), "vocab_size": data.vocab_size,
              "parameters": parameter_count(config, data.vocab_size), "parameter_groups": parameter_groups(config,
                                                                                                 data.vocab_size),
              "sequences": {"replica": len(data.train_all), "train": len(data.train), "held_out": len(data.val),
                            "held_out_documents": data.held_out_documents},
              "baselines": baselines, "evaluated_seeds": list(evaluated_seeds(config)),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "replica": {}, "cells": {}}
    results = ResultsFile(results_path if ctx.is_main else None, header, restart=restart, log=log)

    def finished(keys, run_config, train_set, opt, lr=None, val_set=None, name=None, tb=None) -> dict:
        """The run at ``keys``: taken from the results file if it is there, else trained and stored."""
        record = results.get(*keys)
        if record is not None:
            return record
        info = {}
        if lr is None:
            lr = run_config.adamw_lr if opt in ("adamw", "torch_adamw") else run_config.muon_lr
        try:
            r = run_one(run_config, train_set, opt, lr=lr, val_set=val_set, device=device, progress=progress,
                        name=name, dist_context=ctx, info=info)
        except FloatingPointError as err:  # a diverged run is a data point of a search, not a crash
            record = {"diverged": str(err), "peak_lr": lr, "summary": None}
            log(f"  diverged: {err}")
        else:
            record = {**r.to_dict(), "summary": summarize_run(r, run_config.window), "peak_lr": lr,
                      "memory": info, "model_seed": run_config.model_seed, "data_seed": run_config.data_seed,
                      "hybrid_adamw_lr": run_config.hybrid_adamw_lr if opt in HYBRIDS else None,
                      "muon_lr": run_config.muon_lr if opt == "muon_adamw_searched" else None}
            if tb is not None and tensorboard_dir is not None and ctx.is_main:
                write_tensorboard(record, Path(tensorboard_dir) / tb)
        results.put(keys, record)
        return record

    # 1. The replica of the original notebook: all tokens, train loss only, its learning rates.
    for opt in ("torch_adamw", "muon_all"):
        r = finished(("replica", opt), config, data.train_all, opt, name=f"replica {LABELS[opt]}", tb=f"replica/{opt}")
        log(f"[replica] {LABELS[opt]:<34s} loss {r['train_loss'][0]:.3f} -> {r['summary']['final_train_ma']:.3f}"
            f" (last-{config.window} mean) | {r['summary']['step_seconds']:.3f} s/step")
    if not study:
        return results.finish()

    # 2. The held-out study.
    for cond in study_conditions(config):
        tuned: dict[str, float] = {}
        for opt in cond.optimizers:
            hybrid_adamw_lr = tuned.get("torch_adamw") if opt in HYBRIDS else None
            muon_lr = tuned.get("muon") if opt == "muon_adamw_searched" else None

            def run_config(seed, opt=opt, hybrid_adamw_lr=hybrid_adamw_lr, muon_lr=muon_lr):
                return condition_run_config(config, cond, seed, len(data.train), hybrid_adamw_lr, muon_lr)

            def objective(lr, opt=opt, base=run_config(config.tuning_seed)):
                rec = finished(("cells", cond.name, opt, "lr_search", lr_key(lr)), base, data.train, opt, lr=lr,
                               val_set=data.val, name=f"{cond.name} {LABELS[opt]} lr={lr:g}",
                               tb=f"{cond.name}/{opt}/search_lr_{lr_key(lr)}")
                loss = math.inf if rec["summary"] is None else rec["summary"]["best_val_loss"]
                log(f"[{cond.name}] search {LABELS[opt]:<34s} lr={lr:<8g} lowest held-out {loss:.4f}")
                return loss

            search = search_lr(objective, config.lr_centres[cond.name][opt], config.search_factor,
                               config.search_max_points, config.search_start_points, log=log)
            tuned[opt] = lr = search["best"]
            base = run_config(config.tuning_seed)
            results.put(("cells", cond.name, opt, "tuned"),
                        {"lr": lr, "bracketed": search["bracketed"], "hybrid_adamw_lr": hybrid_adamw_lr,
                         "muon_lr": muon_lr, "objective": f"lowest held-out loss, tuning seed {config.tuning_seed}",
                         "tuning_seed": config.tuning_seed, "steps": base.steps, "eval_every": base.eval_every,
                         "warmup_steps": base.warmup_steps},
                        new_run=False)
            for seed in evaluated_seeds(config):
                rec = finished(("cells", cond.name, opt, "seeds", f"seed_{seed}"), run_config(seed), data.train, opt,
                               lr=lr, val_set=data.val, name=f"{cond.name} {LABELS[opt]} seed {seed}",
                               tb=f"{cond.name}/{opt}/seed_{seed}")
                if rec["summary"] is None:
                    raise FloatingPointError(f"{cond.name}: {LABELS[opt]} at its tuned lr {lr:g} diverged on study "
                                             f"seed {seed}: {rec['diverged']}")
            lows = [results.get("cells", cond.name, opt, "seeds", f"seed_{s}")["summary"]["best_val_loss"]
                    for s in evaluated_seeds(config)]
            log(f"[{cond.name}] {LABELS[opt]:<34s} lr {lr:g}: lowest held-out per seed "
                + ", ".join(f"{v:.3f}" for v in lows))
    return results.finish()


def fit_batch_to_data(config: CapstoneConfig, train_sequences: int, world_size: int = 1, log=print) -> CapstoneConfig:
    """Warn about epochs; shrink the global batch if the data cannot fill one (the 128k tokens hold
    only 125 sequences of 1,024, fewer than the GPT-2-small preset's batch of 480)."""
    if config.batch_size > train_sequences:
        batch = (train_sequences // world_size) * world_size
        if batch < world_size:
            raise ValueError(f"{train_sequences} training sequences cannot feed {world_size} processes")
        log(tr(f"WARNING: the data holds {train_sequences} training sequences of {config.seq_len} tokens, fewer "
               f"than the global batch of {config.batch_size}; using a batch of {batch}. The preset is meant for a "
               "larger token file: pass --tokens PATH.",
               f"경고: 데이터에 {config.seq_len}토큰짜리 학습 시퀀스가 {train_sequences}개뿐이라 전역 배치 "
               f"{config.batch_size}보다 적습니다. 배치 {batch}로 줄여서 씁니다. 이 프리셋은 더 큰 토큰 파일을 위한 "
               "것이니 --tokens PATH로 넘겨 주세요."))
        config = replace(config, batch_size=batch, max_micro_batch=min(config.max_micro_batch or batch, batch))
    epochs = config.steps * config.batch_size / train_sequences
    if epochs > 1:
        log(tr(f"WARNING: {config.steps} steps x {config.batch_size} sequences = {epochs:,.1f} passes over the "
               f"{train_sequences} training sequences: the model will memorise them; "
               "compare held-out losses, and use a larger token file (--tokens) for a GPT-2-scale experiment.",
               f"경고: {config.steps}스텝 x {config.batch_size}시퀀스 = 학습 시퀀스 {train_sequences}개를 "
               f"{epochs:,.1f}번 도는 셈이라 모델이 데이터를 외워 버립니다. 검증 손실로 비교하고, GPT-2 규모 실험에는 "
               "더 큰 토큰 파일(--tokens)을 쓰세요."))
    return config


def throughput(config: CapstoneConfig, vocab_size: int, result: TrainResult, device, world_size: int = 1) -> dict:
    """tokens/s (all processes together) and MFU against the device's bf16 peak (None if unknown).
    FLOPs per token: ``compute.transformer_flops_per_token`` (6 x the matmul weights + 12 x layers x
    context x width for attention)."""
    flops = transformer_flops_per_token(model_config(config, vocab_size), config.seq_len)
    peak, peak_label = device_peak_flops(torch.device(device))
    achieved = result.tokens_per_s * flops["total"]
    return {"tokens_per_s": result.tokens_per_s, "flops_per_token": flops["total"], "achieved_flops": achieved,
            "peak_flops_per_device": peak, "peak": peak_label, "world_size": world_size,
            "mfu": mfu(result.tokens_per_s, flops["total"], peak * world_size) if peak else None}


def record_run(config, vocab_size, result: TrainResult, device, ctx: DistContext, out, opt, log=print,
               memory: dict | None = None) -> dict:
    """The run's JSON record (history, summary, throughput); rank 0 writes ``out/run_<opt>.json``."""
    import json

    speed = throughput(config, vocab_size, result, device, ctx.world_size)
    record = {**result.to_dict(), "summary": summarize_run(result, config.window), "throughput": speed,
              "memory": memory or {}, "world_size": ctx.world_size, "written_by_rank": ctx.rank,
              "replicas_identical": True}
    mfu_text = f"MFU {100 * speed['mfu']:.1f}% of {speed['peak']}" if speed["mfu"] is not None else speed["peak"]
    first, last = result.train_loss[0], record["summary"]["final_train_ma"]
    log(tr(f"[{result.name}] loss {first:.3f} -> {last:.3f} (last {config.window}) | held-out "
           f"{result.final_val_loss:.3f} | {speed['tokens_per_s']:,.0f} tokens/s | {mfu_text}",
           f"[{result.name}] 손실 {first:.3f} -> {last:.3f}(마지막 {config.window}스텝) | 검증 손실 "
           f"{result.final_val_loss:.3f} | 초당 {speed['tokens_per_s']:,.0f}토큰 | {mfu_text}"))
    if ctx.is_main and out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"run_{opt}.json").write_text(json.dumps(record, indent=1))
    return record


def run_pair(config: CapstoneConfig, optimizers=("torch_adamw", "muon"), device=None, progress: bool = True,
             log=print, dist_context: DistContext | None = None, out: Path | None = None,
             checkpoint_every: int = 0, crash_after_step: int | None = None, results_path: Path | None = None,
             restart: bool = False) -> dict:
    """One run per optimizer on the held-out split (the scaled-up comparison of notebook 10).
    Rank 0 writes ``run_<optimizer>.json`` after each run and keeps checkpoints under ``out/checkpoints``;
    with ``results_path`` the combined JSON is also written after each run and continued as in
    ``run_capstone``."""
    ctx = dist_context or DistContext()
    device = device or pick_device()
    log = log if ctx.is_main else (lambda *a, **k: None)
    data = prepare_data(config)
    config = fit_batch_to_data(config, len(data.train), ctx.world_size, log)
    micro, accum = plan_batches(config.batch_size, ctx.world_size,
                                max_micro_batch=config.max_micro_batch or config.batch_size)
    dtype = autocast_dtype_for(device, config.precision) or torch.float32
    dtype = f"{dtype} + GradScaler" if dtype == torch.float16 else dtype
    n_params = parameter_count(config, data.vocab_size)
    log(tr(f"device: {describe_device(device)} x {ctx.world_size} process(es) | precision: {dtype} | "
           f"parameters: {n_params:,} | vocabulary: {config.vocab} ({data.vocab_size:,} ids)",
           f"장치: {describe_device(device)} x 프로세스 {ctx.world_size}개 | 정밀도: {dtype} | "
           f"매개변수: {n_params:,}개 | 어휘: {config.vocab}(id {data.vocab_size:,}개)"))
    tokens = config.batch_size * config.seq_len
    log(tr(f"global batch {config.batch_size} sequences = {micro} (micro-batch) x {accum} (accumulation) x "
           f"{ctx.world_size} (processes) = {tokens:,} tokens per step",
           f"전역 배치 {config.batch_size}시퀀스 = {micro}(마이크로 배치) x {accum}(누적) x "
           f"{ctx.world_size}(프로세스) = 스텝당 {tokens:,}토큰"))
    header = {"config": asdict(config), "device": describe_device(device), "world_size": ctx.world_size,
              "micro_batch": micro, "accum_steps": accum, "vocab_size": data.vocab_size, "runs": {}}
    results = ResultsFile(results_path if ctx.is_main else None, header, restart=restart, log=log)
    for opt in optimizers:
        if results.get("runs", opt) is not None:
            log(tr(f"[{LABELS.get(opt, opt)}] already in {results_path}: not trained again",
                   f"[{LABELS.get(opt, opt)}] {results_path}에 이미 있어 다시 학습하지 않습니다"))
            continue
        ckpt = out / "checkpoints" / f"{opt}.pt" if out is not None and checkpoint_every else None
        info = {}
        r = run_one(config, data.train, opt, val_set=data.val, device=device, progress=progress and ctx.is_main,
                    name=LABELS.get(opt, opt), dist_context=ctx, checkpoint_path=ckpt,
                    checkpoint_every=checkpoint_every, crash_after_step=crash_after_step, info=info)
        results.put(("runs", opt), record_run(config, data.vocab_size, r, device, ctx, out, opt, log, memory=info))
    return results.finish()
