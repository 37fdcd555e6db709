"""``segzero-plus report RUN_DIRS... [--gallery] [--curves LOG...]``: the results tables of evaluation
runs (:mod:`.tables`), an HTML gallery per run (:mod:`.gallery`) and training curves (:mod:`.curves`).

No output is replaced without ``--overwrite``; a missing run directory or log is one ``error:`` line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from segzero_plus.arguments import positive_int
from segzero_plus.data.io import atomic_write_bytes
from segzero_plus.errors import UserError
from segzero_plus.reporting.tables import find_runs, render_report


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="markdown results table across evaluation runs (+ gallery, curves)"
    )
    p.add_argument(
        "runs", nargs="*", help="run directories of `segzero-plus evaluate` (or folders holding them)"
    )
    p.add_argument("--out", default=None, help="write the markdown here (default: print it)")
    p.add_argument("--title", default="Seg-Zero++ results")
    p.add_argument("--gallery", action="store_true", help="also write <run>/gallery/index.html for each run")
    p.add_argument("--gallery-k", type=positive_int, default=8, help="samples per gallery section")
    p.add_argument(
        "--curves", nargs="*", default=None, help="training logs (verl file logger JSONL or console)"
    )
    p.add_argument("--curves-out", default="training_curves.png", help="PNG for --curves")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out / --curves-out")
    p.add_argument(
        "--curves-pattern", default=None, help="regex of the logged keys to plot (default: reward terms)"
    )
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    if not args.runs and not args.curves:
        raise UserError("give run directories and/or --curves LOG")
    for log in args.curves or []:
        if not Path(log).is_file():
            raise UserError(f"training log not found: {log}")
    outputs = [Path(p) for p in (args.out, args.curves and args.curves_out) if p]
    existing = [p for p in outputs if p.exists()]
    if existing and not args.overwrite:
        raise UserError(f"{existing[0]} exists; pass --overwrite to replace it")
    if args.runs:
        text = render_report(args.runs, args.title)
        if args.out:
            atomic_write_bytes(args.out, text.encode())
            print(f"wrote {args.out}")
        else:
            print(text)
        if args.gallery:
            from segzero_plus.reporting.gallery import write_gallery

            for run in find_runs(args.runs):
                print(f"wrote {write_gallery(run, k=args.gallery_k)}")
    if args.curves:
        from segzero_plus.reporting.curves import plot_curves

        kwargs = {"pattern": args.curves_pattern} if args.curves_pattern else {}
        try:
            path = plot_curves(args.curves, args.curves_out, **kwargs)
        except ValueError as exc:  # no numeric series matched
            raise UserError(str(exc)) from None
        print(f"wrote {path}")
    return 0
