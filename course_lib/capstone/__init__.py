"""The capstone: AdamW vs Muon on 128k FineWeb tokens (the original notebook's experiment, then a
held-out study that can tell the optimizers apart).

    python -m course_lib.capstone                      # replica + study, compact vocabulary (make compare)
    python -m course_lib.capstone --replica-only       # only the original experiment (2 runs)
    python -m course_lib.capstone --vocab full         # the full 128,256-id vocabulary (slower)
    python -m course_lib.capstone --quick              # every code path in seconds, for tests
    tensorboard --logdir outputs/capstone/tensorboard  # every run's curves

1. **Replica of the original notebook**, unchanged: all 128,000 tokens for training, torch.optim.AdamW (lr 2e-3, betas
   (0.9, 0.95), wd 0.01) vs Muon on every parameter (lr 2e-2, momentum 0.95, wd 0.01), 200 steps of
   16 x 128 tokens, clip 1.0, initial weights seed 1234, batch order seed 2024.
2. **Held-out study** (``STUDY_CELLS``): the last 10 % of the stream held out; AdamW, the hybrid
   (Muon on hidden matrices, AdamW on embeddings, head and norms) and Muon on every parameter with
   both shape rules, in one pass over the data and in the original 200 steps, with a constant LR and
   with warmup + cosine; each optimizer at the learning rate its own search found, over several study
   seeds (seed s changes both the initial weights and the batch order).

Files: ``experiment`` (settings, data, model, optimizers, cells), ``runner`` (training, LR search,
seeds, notebook 10's per-optimizer runs), ``report`` (statistics, table, the generated conclusion),
``figures`` and ``cli``. Beyond one CPU (notebook 10):

    python -m course_lib.capstone --optimizers torch_adamw muon --steps 200 --checkpoint-every 50
    torchrun --standalone --nproc_per_node=2 -m course_lib.capstone --optimizers torch_adamw muon
    python -m course_lib.capstone --resume outputs/capstone/checkpoints/muon.pt   # after a crash
    torchrun --standalone --nproc_per_node=8 -m course_lib.capstone --preset gpt2-small --tokens PATH
    python -m course_lib.capstone --preset gpt2-small --smoke        # GPT-2 small's shape, 2 steps, CPU ok
"""

from .cli import build_parser, config_from_args, main
from .experiment import (LABELS, LR_CENTRES, STUDY_CELLS, STUDY_OPTIMIZERS, CapstoneConfig, CapstoneData, Cell,
                         build_model, cell_run_config, load_tokens, make_optimizer, make_scheduler, parameter_count,
                         prepare_data, steps_per_pass)
from .figures import plot_capstone, plot_runs
from .report import (RERUN_DRIFT, conclusion, first_reach, label, mean_ci, readme_section, replace_readme_section,
                     report_markdown, results_table, seed_table, study_summary, summarize_cell, verdict)
from .runner import (fit_batch_to_data, memory_report, record_run, run_capstone, run_one, run_pair, search_lr,
                     summarize_run, throughput, write_tensorboard)
