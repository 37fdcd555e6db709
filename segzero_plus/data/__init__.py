"""Dataset preparation: verl training parquet, evaluation parquet, confused-region mining, validation.

One concept per module: ``schema`` (ground-truth JSON codec, row schemas), ``inputs`` / ``outputs`` /
``io`` (checked reading; locks, fingerprints, staged replacement; resumable chunked parquet writing),
``images`` (the one image decoder, resizing between frames), ``training`` (the training-row builder every
source shares), ``refcoco`` (refer layout) and ``refer_training`` (its training rows), ``reasonseg`` (LISA
layout), ``segzero_layout`` (Seg-Zero's published layouts), ``scenes`` (the look-alike scene generator
and ``make-scenes``) with ``lookalike`` (its scenes -> rows), ``evaluation_sets`` (evaluation rows),
``mining`` (the parquet pass of confused-region mining), ``validation`` (row checks) and ``cli``
(``prepare-train``, ``prepare-eval``, ``validate-data``, ``mine-confused``).
Import the modules themselves; this package re-exports nothing.
"""
