"""Training of the project's own weights (never imported by the upscale path).

One command per stage, resumable (rerun it to continue from the last checkpoint)::

    python -m vsrt_cli.train --stage spynet   --out runs/spynet   --minutes 12
    python -m vsrt_cli.train --stage main     --out runs/main     --minutes 45
    python -m vsrt_cli.train --stage ablation --out runs/ablation --minutes 45

Modules: degrade (MATLAB bicubic, BI), data (clips, split, cache, sampling), flow (SPyNet
pretraining), config, checkpoint, loop.
"""
