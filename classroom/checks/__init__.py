"""Exercise checkers, one module per exercise id (``classroom.exercises``), each with its checker, cases,
measured tolerances and hints. Each checker runs a student's code against a reference implementation,
prints a short exact / close / max-diff report, and raises ``AssertionError`` with a hint when something
is wrong.

- ``adamw``: ``check_adamw``, AdamW's ``step()`` (notebook 01);
- ``newton_schulz``: ``check_newton_schulz``, the quintic Newton–Schulz iteration (02);
- ``muon``: ``check_muon``, Muon's ``step()`` (02);
- ``lion``: ``check_lion``, Lion's ``step()`` (03);
- ``loss_scaler``: ``check_loss_scaler``, dynamic loss scaling (04);
- ``blockwise_quant``: ``check_blockwise_quant``, block-wise FP8 quantization (05);
- ``mup``: ``check_mup``, μP init, LR and output multipliers (06);
- ``wsd_schedule``: ``check_wsd_schedule``, the warmup-stable-decay schedule (07);
- ``grad_accumulation``: ``check_grad_accumulation``, gradient accumulation (08);
- ``_common``: helpers shared by several checkers (relative differences, the long optimizer runs);
- ``originality``: ``refuse_reference`` and ``call_student``, refusing copied answers;
- ``report``: ``CheckReport`` and ``compare``, the printed report;
- ``i18n``: the notebook's language for the messages.
"""

from .adamw import check_adamw
from .blockwise_quant import check_blockwise_quant
from .grad_accumulation import check_grad_accumulation
from .lion import check_lion
from .loss_scaler import check_loss_scaler
from .muon import check_muon
from .mup import check_mup
from .newton_schulz import check_newton_schulz
from .report import CheckReport, compare
from .wsd_schedule import check_wsd_schedule

__all__ = ["CheckReport", "check_adamw", "check_blockwise_quant", "check_grad_accumulation", "check_lion",
           "check_loss_scaler", "check_muon", "check_mup", "check_newton_schulz", "check_wsd_schedule", "compare"]
