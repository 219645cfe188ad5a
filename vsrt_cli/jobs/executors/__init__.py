"""Where the work of a batch runs. Every executor has one job: ``run(model, units, template,
record)`` runs the units it is given (whole clips, and chunks of long clips: see
:mod:`vsrt_cli.jobs.executors.units`) and yields their events (``ClipStarted``, ``ClipProgress``,
``Notice``, ``ClipFinished``; ``ChunkProgress``, ``ChunkFinished``) in whatever order they
finish. The driver (:func:`vsrt_cli.jobs.batch.batch`) alone decides which clips to skip and which
chunks are missing, stitches chunked clips, writes the report and hands the events to the CLI.

- :mod:`vsrt_cli.jobs.executors.local`: the units one after another in this process (and the two
  functions every executor runs a unit with);
- :mod:`vsrt_cli.jobs.executors.ray`: Ray workers, one per GPU or CPU worker, on this machine or a
  cluster (the optional extra ``vsrt[ray]``, imported only when asked for).
"""
