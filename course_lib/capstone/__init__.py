"""The capstone: AdamW vs Muon on 128k FineWeb tokens (the original notebook's experiment, then a
held-out study that can tell the optimizers apart).

    python -m course_lib.capstone                      # replica + study, compact vocabulary (make compare)
    python -m course_lib.capstone --replica-only       # only the original experiment (2 runs)
    python -m course_lib.capstone --vocab full         # the full 128,256-id vocabulary (slower)
    python -m course_lib.capstone --quick              # every code path in seconds, for tests
    python -m course_lib.capstone --conditions one_pass_constant two_pass_constant   # with two passes too
    tensorboard --logdir outputs/capstone/tensorboard  # every run's curves

1. **Replica of the original notebook**, unchanged: all 128,000 tokens for training, torch.optim.AdamW (lr 2e-3, betas
   (0.9, 0.95), wd 0.01) vs Muon on every parameter (lr 2e-2, momentum 0.95, wd 0.01), 200 steps of
   16 x 128 tokens, clip 1.0, initial weights seed 1234, batch order seed 2024.
2. **Held-out study** (``STUDY_CONDITIONS``): the documents after the 90 % point held out; unigram and
   bigram count tables (``course_lib.baselines``) as the bar to clear; AdamW, the hybrid (Muon on hidden
   matrices, AdamW on embeddings, head and norms) and Muon on every parameter in one pass over the data,
   plus three ablations of the hybrid that locate Muon everywhere's gain (two passes early-stopped on
   held-out loss on request, ``--conditions``); each optimizer at the learning rate its own search found
   on a tuning seed that no table reports, over several study seeds (seed s changes both the initial
   weights and the batch order).

Files: ``experiment`` (settings, data, model, optimizers, conditions), ``runner`` (training, LR search,
seeds, notebook 10's per-optimizer runs), ``results_io`` (results saved after every run, the committed
``results/``), ``report`` (statistics, table, the generated conclusion),
``figures`` and ``cli``. Beyond one CPU (notebook 10):

    python -m course_lib.capstone --optimizers torch_adamw muon --steps 200 --checkpoint-every 50
    torchrun --standalone --nproc_per_node=2 -m course_lib.capstone --optimizers torch_adamw muon
    python -m course_lib.capstone --resume outputs/capstone/checkpoints/muon.pt   # after a crash
    torchrun --standalone --nproc_per_node=8 -m course_lib.capstone --preset gpt2-small --tokens PATH
    python -m course_lib.capstone --preset gpt2-small --smoke        # GPT-2 small's shape, 2 steps, CPU ok
"""

# What the notebooks use (09, and 02 and 10); everything else is imported from its module.
from .cli import main
from .experiment import (STUDY_CONDITIONS, CapstoneConfig, build_model, condition_run_config, make_optimizer,
                         prepare_data)
from .figures import plot_capstone
from .report import RERUN_DRIFT, conclusion, label, results_table, seed_table, study_summary
from .results_io import results_file
from .runner import fit_batch_to_data, run_capstone, run_one

__all__ = ["RERUN_DRIFT", "STUDY_CONDITIONS", "CapstoneConfig", "build_model", "condition_run_config", "conclusion",
           "fit_batch_to_data", "label", "main", "make_optimizer", "plot_capstone", "prepare_data", "results_file",
           "results_table", "run_capstone", "run_one", "seed_table", "study_summary"]
