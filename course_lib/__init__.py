"""course_lib: the small shared package every notebook of the course imports, one idea per module.

    module        what it holds                                                    notebooks
    data          token resource, tokenizer, compact vocabulary, sequences, batches  00-08, capstone
    baselines     unigram and bigram count tables: the held-out loss to beat         09
    models        a Llama-style decoder (RMSNorm, RoPE, GQA attention, SwiGLU)     00-05, 07, 08, 10
    losses        the fused linear + cross-entropy loss the model trains with      (models)
    optim         AdamW, Muon, the Muon + AdamW hybrid, Lion; build_optimizer      00-04, 09
    landscapes    SGD, momentum and Adam on 2-D test functions                     01
    schedules     warmup + cosine, WSD, inverse sqrt, SGDR as LambdaLR functions   02, 07
    precision     float formats, lost updates, dynamic loss scaling, autocast      04, 05, 10
    fp8           FP8 quantization, scaled matmuls, an FP8 linear layer            05
    mup           μP: per-role multipliers, a width-scalable model, coord check    06
    train         train_step, train, evaluate, gradient accumulation               03, 05, 07, capstone
    stability     clipping, z-loss, spike guard, monitoring, activation checkpoints  08
    compute       FLOPs per token, MFU, GPU peaks, memory of weights and states    01, 03, 04, 08, 10
    checkpoint    save and resume a run (weights, optimizer, data position, RNG)   10, capstone
    distributed   DDP: processes, shards, micro-batches, identical replicas        10, capstone
    published     training configurations of published models, with sources       10
    plots         moving averages, loss curves, the course's figure fonts          01-09
    runtime       device, seeds, quick mode                                        every notebook
    paths         where the resources are, and their checksums                     00, data
    i18n          the reader's language: tr(english, korean), the Korean font      every notebook
    validate      argument checks shared by the modules above                      -
    capstone/     the AdamW-vs-Muon experiment: settings, runs, report, figures    09, 02, 10

The course machinery (exercise checkers, notebook builder, grader, renderer) is the separate package
``classroom``, which imports this one and is never imported by it. Importing ``course_lib`` changes no
global setting: notebooks call ``course_lib.plots.use_course_fonts()`` before drawing.
"""

__version__ = "0.1.0"

# The course's public repository: the one place its address is written. The Colab setup cell of
# every notebook must use exactly this URL (a test checks it).
REPO_URL = "https://github.com/llm-optim-course/llm-optimization-course"
