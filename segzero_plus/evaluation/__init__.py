"""Evaluation, inference and pictures: generation backends, the resumable runner, Ray sharding,
reports, galleries, training curves and the ``segment`` CLI (one module per concept)."""
