"""Reports of finished work: results tables across evaluation runs (``tables``), HTML galleries of one
run (``gallery``), training curves from logs (``curves``) and the ``report`` command (``cli``). Import
the modules themselves; this package re-exports nothing."""
