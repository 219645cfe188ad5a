"""Training of the project's own weights (never imported by the upscale path).

One command per stage, resumable (rerun it to continue from the last checkpoint)::

    python -m vsrt_cli.train --stage spynet   --out runs/spynet   --minutes 15
    python -m vsrt_cli.train --stage main     --out runs/main     --minutes 30 --threads 1
    python -m vsrt_cli.train --stage ablation --out runs/ablation --minutes 30 --threads 1

``--motion 0.5`` makes half the samples camera-motion windows (see ``motion``), and
``python -m vsrt_cli.train.bundle --name NAME --unbundle-to runs/X`` turns a shipped model back
into a run folder that ``--init-from runs/X`` can start from.

``--minutes`` is compute time (CPU time / threads), so a busy machine only slows a run down.
main and ablation run side by side with one thread each (same compute, comparable curves).
Each run folder holds ``last.pt`` (checkpoint), ``log.csv`` (validation over compute and wall
time) and, once the budget is spent, ``spynet.pt`` or ``weights_fp16.pt``.

Runs that span machines resume from their state file alone: ``python -m vsrt_cli.train --resume
DIR`` (see weights/training/README.md); ``python -m vsrt_cli.train.report`` prints how much each
source moves; ``pack`` and ``gpu`` continue runs on a CUDA machine without PyAV; ``grow`` turns a
run into one of a bigger network computing the same; ``rebase`` puts a compression-aware run on
a newer clean body.

Modules: sources (which clips train, which are held out), degrade (MATLAB bicubic, BI), realdeg
(``--degradation real``), data (decoding, cache, sampling), flowcache (whole-frame flows),
motion (camera-motion windows), flow (SPyNet pretraining), config, steps (network, groups,
loss, schedule), validate, ema, checkpoint, loop, report, pack, gpu, grow, rebase, bundle.
"""
