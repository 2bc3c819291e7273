"""The course's exercises: which notebook each is in, its default points, what its stub asks for, and
which reference implementations an answer may not re-export, subclass or call.

``nbtools`` writes the id and the points into the exercise's cells (cell metadata ``course``), the
student copies name the exercise in their stubs (``assignments``), the checkers refuse copied answers
(``checks.originality``), and the grader reads the points back from the released notebook (``grade``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    id: str
    notebook: str  # the notebook's file stem, e.g. "01_adamw"
    points: int  # default weight; the instructor can change it in the check cell's metadata
    todo: dict  # {"en": ..., "ko": ...}: what to write, shown in the stub's NotImplementedError
    #: What an answer may not re-export, subclass or call: a module ("torch.optim.adamw": every function
    #: and class in it) or one function/class in it ("course_lib.optim:newton_schulz").
    references: tuple[str, ...] = ()


_OPTIMIZER_LIBRARIES = ("lion_pytorch", "schedulefree", "pytorch_optimizer", "transformers.optimization")

EXERCISES: dict[str, Exercise] = {e.id: e for e in [
    Exercise("adamw", "01_adamw", 4, {
        "en": "write the body of AdamWFromScratch.step() for one parameter: its state, the moments, the "
              "bias-corrected step and the decoupled weight decay",
        "ko": "AdamWFromScratch.step()의 본문을 매개변수 하나 단위로 작성하세요: 상태 만들기, 두 모멘트, "
              "편향 보정된 스텝, 분리된 가중치 감쇠",
    }, ("torch.optim.adam", "torch.optim.adamw", "torch.optim._functional", "course_lib.optim",
        *_OPTIMIZER_LIBRARIES)),
    Exercise("newton_schulz", "02_muon", 2, {
        "en": "write newton_schulz(G, steps): normalise G by its Frobenius norm, work on the smaller Gram "
              "matrix, and run `steps` quintic iterations X ← a·X + (b·A + c·A²)·X",
        "ko": "newton_schulz(G, steps)를 작성하세요: G를 프로베니우스 노름으로 나누고, 작은 쪽 그람 행렬로 "
              "계산하고, 5차 반복 X ← a·X + (b·A + c·A²)·X를 steps번 돌립니다",
    }, ("torch.optim._muon", "course_lib.optim:newton_schulz", "course_lib.optim:muon_update",
        "course_lib.optim:Muon", "course_lib.optim:MuonWithAdamW")),
    Exercise("muon", "02_muon", 3, {
        "en": "write Muon's update for one 2-D parameter: the momentum buffer, Nesterov or plain, "
              "Newton–Schulz, the decoupled decay and the scaled step",
        "ko": "2차원 매개변수 하나에 대한 Muon 업데이트를 작성하세요: 모멘텀 버퍼, 네스테로프 또는 일반 "
              "모멘텀, Newton–Schulz, 분리된 가중치 감쇠, 스케일을 곱한 스텝",
    }, ("torch.optim._muon", "course_lib.optim:newton_schulz", "course_lib.optim:muon_update",
        "course_lib.optim:Muon", "course_lib.optim:MuonWithAdamW", *_OPTIMIZER_LIBRARIES)),
    Exercise("lion", "03_lion_and_zoo", 3, {
        "en": "write Lion's update for one parameter: decoupled decay, the sign of the interpolation with "
              "the old momentum, then the momentum update",
        "ko": "매개변수 하나에 대한 Lion 업데이트를 작성하세요: 분리된 가중치 감쇠, 이전 모멘텀과 보간한 "
              "값의 부호로 스텝, 그다음 모멘텀 업데이트",
    }, ("course_lib.optim:lion_update", "course_lib.optim:Lion", *_OPTIMIZER_LIBRARIES)),
    Exercise("loss_scaler", "04_mixed_precision", 2, {
        "en": "write LossScaler.step(optimizer): unscale every gradient, skip the step on inf/NaN and back "
              "off, otherwise step and grow after growth_interval good steps; return whether it stepped",
        "ko": "LossScaler.step(optimizer)를 작성하세요: 모든 기울기를 스케일로 나누고, inf나 NaN이 있으면 "
              "스텝을 건너뛰고 스케일을 줄이며, 아니면 스텝한 뒤 growth_interval번 연속 성공하면 스케일을 "
              "키웁니다. 스텝했는지를 돌려줍니다",
    }, ("torch.amp.grad_scaler", "torch.cuda.amp.grad_scaler", "course_lib.precision:DynamicLossScaler")),
    Exercise("blockwise_quant", "05_fp8", 2, {
        "en": "write quantize_blockwise (one scale per block, q = x / scale clamped and cast) and "
              "dequantize_blockwise (q times its block's scale)",
        "ko": "quantize_blockwise(블록마다 스케일 하나, q = x / 스케일을 잘라 내고 캐스팅)와 "
              "dequantize_blockwise(q × 자기 블록의 스케일)를 작성하세요",
    }, ("course_lib.fp8:quantize_blockwise", "course_lib.fp8:dequantize_blockwise",
        "course_lib.fp8:expand_block_scales")),
    Exercise("mup", "06_mup", 2, {
        "en": "write mup_settings(role, fan_in, width_mult) -> (init std, LR multiplier, output multiplier) "
              "and mup_attention(head_dim, base_head_dim)",
        "ko": "mup_settings(role, fan_in, width_mult) -> (초기화 표준편차, 학습률 배수, 출력 배수)와 "
              "mup_attention(head_dim, base_head_dim)을 작성하세요",
    }, ("course_lib.mup:mup_param_settings", "course_lib.mup:mup_attention_scale", "mup")),
    Exercise("wsd_schedule", "07_lr_schedules", 2, {
        "en": "write wsd_lr(step, ...): the LR multiplier of warmup → stable → decay, min_ratio after the end",
        "ko": "wsd_lr(step, ...)를 작성하세요: 워밍업 → 유지 → 감쇠 구간의 학습률 배수, 끝난 뒤에는 min_ratio",
    }, ("course_lib.schedules", "transformers.optimization", "torch.optim.lr_scheduler")),
    Exercise("grad_accumulation", "08_stability", 2, {
        "en": "write accumulate_step(model, optimizer, micro_batches, clip_norm): zero the gradients once, "
              "weight each micro-batch by its share of target tokens, clip once, step once, return the mean loss",
        "ko": "accumulate_step(model, optimizer, micro_batches, clip_norm)을 작성하세요: 기울기를 한 번 "
              "비우고, 마이크로 배치마다 타깃 토큰 비율로 가중하고, 클리핑과 스텝은 한 번씩, 평균 손실을 돌려줍니다",
    }, ("course_lib.stability:accumulation_step", "course_lib.train:accumulate_gradients",
        "course_lib.train:train_step")),
]}


def get_exercise(exercise_id: str) -> Exercise:
    if exercise_id not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise_id!r}; the course has {', '.join(EXERCISES)}")
    return EXERCISES[exercise_id]
