"""Dataset preparation: verl training parquet, evaluation parquet, confused-region mining, validation.

One concept per module: ``schema`` (ground-truth JSON codec, row schemas), ``inputs`` / ``outputs`` /
``io`` (checked reading; locks, fingerprints, staged replacement; resumable chunked parquet writing),
``images`` (the one image decoder, resizing between frames), ``training`` (the training-row builder every
source shares), ``refcoco`` (refer layout) and ``refer_training`` (its training rows), ``reasonseg`` (LISA
layout), ``segzero_layout`` (Seg-Zero's published layouts), ``lookalike`` (look-alike scenes -> rows),
``evaluation_sets`` (evaluation rows), ``mining`` (the parquet pass of confused-region mining),
``validation`` (row checks), ``cli`` (``prepare-train``, ``prepare-eval``, ``validate-data``) and
``miniature`` (tiny datasets in the real layouts, for tests).
Import the modules themselves; this package re-exports nothing.
"""
