"""The capstone's command line: ``python -m course_lib.capstone`` (see the package docstring)."""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import replace
from pathlib import Path

from ..checkpoint import load_checkpoint
from ..data import FULL_VOCAB_SIZE
from ..distributed import DistContext, barrier, close_distributed, init_distributed
from ..i18n import tr
from ..precision import PRECISIONS
from ..runtime import validate_device, pick_device, quick_mode
from .experiment import CONDITION_NAMES, CapstoneConfig, parameter_count, prepare_data
from .figures import plot_capstone, plot_runs
from .report import report_markdown
from .results_io import validate_output_folder
from .runner import record_run, run_capstone, run_one, run_pair


def _int_at_least(low: int):
    """An argparse type: an integer ≥ ``low``; anything else is a usage error that quotes the value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number ≥ {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be ≥ {low}, got {text!r}")
        return value

    parse.__name__ = f"integer ≥ {low}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib.capstone",
                                     description="AdamW vs Muon on 128k FineWeb tokens (the course capstone).",
                                     epilog="Runs unchanged under torchrun --standalone --nproc_per_node=N "
                                            "(DistributedDataParallel, gloo on CPU, NCCL on GPU).")
    parser.add_argument("--vocab", choices=("compact", "full"), default="compact")
    parser.add_argument("--steps", type=_int_at_least(1), default=None, help="optimizer steps per run (default 200)")
    parser.add_argument("--quick", action="store_true", help="a few steps only (also set by COURSE_QUICK=1)")
    parser.add_argument("--replica-only", action="store_true",
                        help="only the replica of the original notebook (2 runs), not the held-out study")
    parser.add_argument("--conditions", nargs="+", choices=CONDITION_NAMES, default=None,
                        help="study conditions to run (default: one_pass_constant; quick mode: all)")
    parser.add_argument("--seeds", type=_int_at_least(2), default=None,
                        help="study seeds per optimizer (default 5; quick mode 2)")
    parser.add_argument("--out", type=Path, default=Path("outputs/capstone"),
                        help="folder for the PNG and JSON; the JSON is written after every finished run, and "
                             "running the same command again continues from it")
    parser.add_argument("--restart", action="store_true",
                        help="train every run again, overwriting the results in --out")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    parser.add_argument("--no-progress", action="store_true")
    scale = parser.add_argument_group("scaling up (notebook 10): one run per optimizer, resumable")
    scale.add_argument("--optimizers", nargs="+", choices=("torch_adamw", "adamw", "muon", "muon_all"),
                       help="run only these optimizers, once each, on the held-out split")
    scale.add_argument("--preset", choices=("gpt2-small",), help="GPT-2 small scale (GPU): 12 layers, width 768, "
                       "context 1024, batch 480, warmup + cosine; AdamW vs hybrid Muon")
    scale.add_argument("--smoke", action="store_true", help="with --preset: 2 tiny steps, allowed on a CPU")
    scale.add_argument("--tie-embeddings", action="store_true",
                       help="one matrix for the embedding and the LM head, as GPT-2 ties them (default: two "
                            "untied matrices, as Llama 3 8B and larger have)")
    scale.add_argument("--tokens", type=Path, default=None, help="another token dataset saved like the course's")
    scale.add_argument("--batch-size", type=_int_at_least(1), default=None,
                       help="global batch (sequences per optimizer step)")
    scale.add_argument("--micro-batch", type=_int_at_least(1), default=None,
                       help="largest micro-batch per process; the rest is gradient accumulation")
    scale.add_argument("--precision", choices=PRECISIONS, default=None,
                       help="auto: bf16 autocast on GPUs with bf16 tensor cores (A100, L4, H100), fp16 with a "
                            "GradScaler on compute capability 7.x (T4, V100), fp32 elsewhere (CPU, MPS)")
    scale.add_argument("--compile", action="store_true", help="torch.compile the model (off by default)")
    scale.add_argument("--checkpoint-every", type=_int_at_least(0), default=0,
                       help="save a resumable checkpoint every K steps (0: only at the end)")
    scale.add_argument("--resume", type=Path, default=None, help="continue the run saved in this checkpoint")
    scale.add_argument("--crash-after-step", type=_int_at_least(1), default=None,
                       help="for tests and demos: kill the process (SIGKILL) right after this step")
    return parser


def config_from_args(args) -> CapstoneConfig:
    quick = args.quick or quick_mode()
    if args.preset:
        make = CapstoneConfig.gpt2_small_smoke if args.smoke else CapstoneConfig.gpt2_small
        config = make(vocab=args.vocab)
    else:
        config = CapstoneConfig.quick(vocab=args.vocab) if quick else CapstoneConfig(vocab=args.vocab)
    changes = {k: v for k, v in dict(steps=args.steps, batch_size=args.batch_size, max_micro_batch=args.micro_batch,
                                     precision=args.precision, seeds=getattr(args, "seeds", None),
                                     conditions=getattr(args, "conditions", None)).items()
               if v is not None}
    if args.tokens is not None:
        changes["tokens_path"] = str(args.tokens)
    if args.compile:
        changes["compile"] = True
    if args.tie_embeddings:
        changes["tie_embeddings"] = True
    if "steps" in changes and config.warmup_steps > changes["steps"]:
        changes["warmup_steps"] = max(0, changes["steps"] // 20)
    return replace(config, **changes)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke and not args.preset:
        parser.error("--smoke goes with --preset gpt2-small")
    if (args.checkpoint_every or args.crash_after_step) and not (args.optimizers or args.preset or args.resume):
        parser.error("--checkpoint-every and --crash-after-step work with --optimizers, --preset or --resume")
    if args.resume is not None and not args.resume.is_file():
        parser.error(f"--resume {args.resume}: no such checkpoint file")
    if args.tokens is not None and not args.tokens.is_dir():
        parser.error(f"--tokens {args.tokens}: no such folder (a dataset saved with datasets' save_to_disk)")
    # Everything that can be checked is checked before the first step: a bad value must not cost a run.
    try:
        device = validate_device(args.device, source="--device") if args.device else pick_device()
        config = None if args.resume is not None else config_from_args(args)
        ckpt = load_checkpoint(args.resume) if args.resume is not None else None  # CheckpointError if damaged
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    if args.preset and device.type != "cuda" and not args.smoke:
        shape = config or CapstoneConfig.gpt2_small()
        # The most it can have: a large token file uses nearly all of the full vocabulary (built on the meta device).
        n = parameter_count(replace(shape, vocab="full"), FULL_VOCAB_SIZE) / 1e6
        tied = tr("tied", "묶음") if shape.tie_embeddings else tr("untied", "묶지 않음")
        parser.error(tr(f"--preset {args.preset} trains a model of up to {n:.0f}M parameters ({FULL_VOCAB_SIZE:,}-id "
                        f"vocabulary, embedding and LM head {tied}) on {shape.seq_len:,}-token sequences: it needs a "
                        f"GPU (this process sees {device.type}). Run `--preset {args.preset} --smoke` to check that "
                        "it starts on this machine.",
                        f"--preset {args.preset}는 매개변수가 최대 {n:.0f}M개(어휘 id "
                        f"{FULL_VOCAB_SIZE:,}개, 임베딩과 LM 헤드 {tied})인 모델을 {shape.seq_len:,}토큰 "
                        f"시퀀스로 학습하므로 GPU가 필요합니다(이 프로세스에는 {device.type}만 보입니다). "
                        f"이 컴퓨터에서 시작되는지만 확인하려면 `--preset {args.preset} --smoke`로 실행하세요."))
    ctx, device = init_distributed(device)
    try:
        if ctx.is_main:
            try:
                validate_output_folder(args.out)
            except ValueError as err:
                parser.error(str(err))
        if args.resume is not None:
            return _main_resume(args, ckpt, ctx, device)
        return _main_run(args, config, ctx, device)
    except KeyboardInterrupt:
        if ctx.is_main:
            print(f"\ninterrupted: every finished run is saved in {args.out}; run the same command again to "
                  "continue from them (--restart starts over)", file=sys.stderr)
        return 130
    finally:
        close_distributed()


def _main_run(args, config: CapstoneConfig, ctx: DistContext, device) -> int:
    if args.optimizers or args.preset:
        opts = tuple(args.optimizers or ("torch_adamw", "muon"))
        stem = f"scaled_{config.preset or 'capstone'}_{config.vocab}"
        results = run_pair(config, opts, device=device, progress=not args.no_progress, dist_context=ctx,
                           out=args.out, checkpoint_every=args.checkpoint_every,
                           crash_after_step=args.crash_after_step, results_path=args.out / f"{stem}.json",
                           restart=args.restart)
    else:
        stem = f"capstone_{config.vocab}"
        results = run_capstone(config, device=device, progress=not args.no_progress, study=not args.replica_only,
                               dist_context=ctx, results_path=args.out / f"{stem}.json", restart=args.restart,
                               tensorboard_dir=args.out / "tensorboard")
    if ctx.is_main:  # only rank 0 writes; the JSON is already complete
        if "runs" in results:
            plot_runs(results, args.out / f"{stem}.png")
        else:
            plot_capstone(results, args.out / f"{stem}.png")
            (args.out / f"{stem}.md").write_text(report_markdown(results), encoding="utf-8")
            print(f"TensorBoard logs: tensorboard --logdir {args.out / 'tensorboard'}")
        json_path, png_path, seconds = args.out / f"{stem}.json", args.out / f"{stem}.png", results["wall_seconds"]
        print(tr(f"wrote {json_path} and {png_path} in {seconds:.0f} s",
                 f"{json_path}와 {png_path}를 {seconds:.0f}초 만에 썼습니다"))
    barrier(ctx)
    return 0


def _main_resume(args, ckpt: dict, ctx: DistContext, device) -> int:
    extra = ckpt["extra"]
    known = CapstoneConfig.__dataclass_fields__
    config = CapstoneConfig(**{k: v for k, v in extra["config"].items() if k in known})
    if args.steps is not None:
        config = replace(config, steps=args.steps)
    if extra["world_size"] != ctx.world_size and ctx.is_main:
        warnings.warn(f"the checkpoint was written by {extra['world_size']} process(es), this run has "
                      f"{ctx.world_size}: same global batch, but sums happen in another order", stacklevel=2)
    log = print if ctx.is_main else (lambda *a, **k: None)
    step, pos, epoch = ckpt["step"], ckpt["data"]["position"], ckpt["data"]["epoch"]
    log(tr(f"resuming {extra['name']} from {args.resume} at step {step} of {config.steps} "
           f"(data position {pos}, epoch {epoch})",
           f"{args.resume}에서 {extra['name']} 재개: {config.steps}스텝 중 {step}스텝부터(데이터 위치 {pos}, 에폭 "
           f"{epoch})"))
    data = prepare_data(config)
    every = args.checkpoint_every or extra["checkpoint_every"]
    r = run_one(config, data.train, extra["optimizer_name"], lr=extra["lr"], val_set=data.val, device=device,
                progress=not args.no_progress and ctx.is_main, name=extra["name"], dist_context=ctx,
                checkpoint_path=args.resume, checkpoint_every=every, resume=ckpt,
                crash_after_step=args.crash_after_step)
    record_run(config, data.vocab_size, r, device, ctx, args.out, extra["optimizer_name"], log)
    barrier(ctx)
    return 0
