"""Evaluation and inference: generation ``backends``, the per-sample ``pipeline`` (answer -> SAM ->
metrics), the run's ``config``, ``run_dir`` and ``store`` (resumable records), the ``pools`` that
evaluate chunks (local or Ray shards), the ``runner`` loop, its ``summary`` metrics, the ``evaluate``
command (``cli``) and the one-image ``segment`` command (scripted policies live in ``testing.synthetic``).
Import the modules themselves; this package re-exports nothing."""
