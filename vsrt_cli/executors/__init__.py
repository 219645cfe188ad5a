"""Where the clips of a batch run. Every executor has one job: ``run(model, clips, template,
record)`` yields :mod:`vsrt_cli.batch` events (``ClipStarted``, ``ClipProgress``, ``Notice``,
``ClipFinished``) for the clips it is given, in whatever order they finish. The driver
(:func:`vsrt_cli.batch.batch`) alone decides which clips to skip, writes the report and hands
the events to the CLI to draw.

- the local loop (one clip after another in this process) lives in :mod:`vsrt_cli.batch`;
- :mod:`vsrt_cli.executors.ray`: Ray workers, one per GPU or CPU worker, on this machine or a
  cluster (the optional extra ``vsrt[ray]``, imported only when asked for).
"""
