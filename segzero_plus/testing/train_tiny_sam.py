"""Train the toy SAM2 fixture on look-alike scenes, on CPU, deterministically.

The model is the ``sam2`` package's own ``SAM2Base`` built from ``fixtures/toy_sam2_hiera_192.yaml``
(~2.2M parameters). Training follows SAM's interactive recipe (Kirillov et al., 2023, "Segment Anything",
section 3 and appendix A; Ravi et al., 2024, "SAM 2"): every object of a scene (target, anchor,
look-alikes) is a segmentation target, prompted by simulated interactions:

- ``box``: the object's box, exact or jittered (per-coordinate noise 8% of the side, at most 20%);
- ``box_pos``: a box plus 1-2 positive clicks (inscribed-circle centres or random deep interior pixels);
- ``points``: 1-2 positive clicks, no box;
- ``span_neg``: a box spanning the object AND a same-kind neighbour, positives on the object and a
  negative click on the neighbour (the prompts that teach negatives; without them a negative is ignored);
- ``box_neg``: the object's box plus positives plus a negative on a same-kind neighbour;
- ``correction``: a ``box_pos`` prompt decoded once without gradients, then one click added at the
  deepest pixel of the larger error region (negative on a false positive, positive on a false negative).

Loss per prompt: BCE + dice on the single-mask token, half of the best (lowest) BCE + dice of the three
multimask tokens, MSE of every token's predicted IoU against its actual IoU, and a small penalty on the
size of the image features (without it, and with a higher learning rate, training collapsed to a
prompt-ignoring mask). Curriculum: ``plain_steps`` of scenes without look-alikes and box prompts only,
then easy scenes with a share of hard scenes rising linearly to ``hard_share``. Expect a plateau: for
the first ~600 steps the masks cover every object whatever the prompt (mIoU ~0.28); prompt-following
emerges after that (mIoU ~0.6 at 1,000 steps in a probe). Many prompts per image (16) and few images
(2) per step keep the decoder's share of the work high and the step cheap. Learning rate: linear warm-up,
then cosine decay. Every random draw of step ``s`` comes from the seed ``[seed, s]``, so a run resumed
from its checkpoint continues exactly.

Usage (the command that made the committed fixture is in ``fixtures/README.md``)::

    python -m segzero_plus.testing.train_tiny_sam --work runs/toy_sam --out toy_sam2.pt
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from segzero_plus.cli import ArgumentParser, run_reporting_errors
from segzero_plus.data.scenes import DEFAULT_SIZES, Scene, generate_scene, generate_scenes
from segzero_plus.errors import UserError
from segzero_plus.geometry import inscribed_circle_centres, mask_bbox
from segzero_plus.testing.toy_sam import TOY_SAM_CONFIG

TRAIN_SEED_BASE = 2**40
"""Training scenes use seeds from here on; held-out scenes (``generate_scenes``) stay far below."""
EVAL_SEED = 4242
"""``generate_scenes(n, seed=EVAL_SEED, difficulty=...)``: the held-out scenes of the training curve."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one run (all counts are optimisation steps unless said otherwise)."""

    steps: int = 6000
    images_per_step: int = 2
    prompts_per_image: int = 16
    lr: float = 3e-4
    min_lr: float = 2e-5
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    feature_penalty: float = 1e-3
    plain_steps: int = 200
    hard_share: float = 0.6
    hard_ramp_end: float = 0.4
    """The hard-scene share reaches ``hard_share`` at this fraction of ``steps``."""
    big_image_share: float = 0.05
    """Share of 840x840 training scenes (the rest cycle the small default sizes)."""
    seed: int = 0
    checkpoint_every: int = 250
    eval_every: int = 500
    eval_scenes: int = 32
    kind_weights: dict[str, float] = field(
        default_factory=lambda: {
            "box": 0.15,
            "box_pos": 0.25,
            "points": 0.1,
            "span_neg": 0.2,
            "box_neg": 0.1,
            "correction": 0.2,
        }
    )


@dataclass
class Prompt:
    """One simulated interaction on a scene, in the scene's pixels: box XYXY, points (x, y)."""

    target: np.ndarray
    box: tuple[float, float, float, float] | None = None
    pos: list[tuple[float, float]] = field(default_factory=list)
    neg: list[tuple[float, float]] = field(default_factory=list)
    needs_correction: bool = False

    @property
    def shape_key(self) -> tuple[bool, int]:
        return self.box is not None, len(self.pos) + len(self.neg)


# ------------------------------------------------------------------ interaction simulation
def deep_points(mask: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """``n`` clicks inside ``mask``: its inscribed-circle centres (half the time) or random pixels at least
    30% of the maximum depth from the border. Integer pixel coordinates (x, y) of the scene, like answers."""
    if rng.random() < 0.5:
        return [(float(x), float(y)) for x, y in inscribed_circle_centres(mask, n=n)][:n]
    x1, y1, x2, y2 = mask_bbox(mask)
    depth = ndimage.distance_transform_edt(np.pad(mask[y1 : y2 + 1, x1 : x2 + 1], 1))[1:-1, 1:-1]
    ys, xs = np.nonzero(depth >= 0.3 * depth.max())
    pick = rng.choice(len(xs), size=n, replace=len(xs) < n)
    return [(float(xs[i] + x1), float(ys[i] + y1)) for i in pick]


def jitter_box(box: tuple[float, ...], rng: np.random.Generator, hw: tuple[int, int]) -> tuple[float, ...]:
    """Box with per-coordinate noise (std 8% of its side, clipped at 20%); exact 30% of the time."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if rng.random() < 0.3:
        return x1, y1, x2, y2
    sw, sh = x2 - x1 + 1, y2 - y1 + 1
    noise = np.clip(rng.normal(0, 0.08, 4), -0.2, 0.2) * np.array([sw, sh, sw, sh])
    h, w = hw
    nx1, ny1, nx2, ny2 = np.array([x1, y1, x2, y2]) + noise
    nx1, nx2 = sorted((min(max(nx1, 0), w - 1), min(max(nx2, 0), w - 1)))
    ny1, ny2 = sorted((min(max(ny1, 0), h - 1), min(max(ny2, 0), h - 1)))
    return float(nx1), float(ny1), float(nx2), float(ny2)


def nearest_same_kind(centres: np.ndarray, k: int) -> int | None:
    """Index of the same-kind object nearest to object ``k`` by centre distance, among objects ordered as
    :func:`objects` with ``centres`` (N, 2) their (x, y) centres; None for the anchor (it has no
    look-alike) or a scene without look-alikes."""
    if k == 0 or len(centres) < 3:
        return None
    others = [j for j in range(1, len(centres)) if j != k]
    return min(others, key=lambda j: float(np.hypot(*(centres[j] - centres[k]))))


def object_centres(masks: list[np.ndarray]) -> np.ndarray:
    """(N, 2) float (x, y) centres of the masks' pixels."""
    return np.array([[xs.mean(), ys.mean()] for ys, xs in (np.nonzero(m) for m in masks)])


def objects(scene: Scene) -> list[np.ndarray]:
    """Visible masks of every object: anchor, target, distractors."""
    return [scene.anchor_mask, scene.target_mask, *scene.distractor_masks]


class InteractionSimulator:
    """Samples SAM-style prompts (see the module docstring) for the objects of a scene."""

    def __init__(self, kind_weights: dict[str, float]) -> None:
        self.kinds = list(kind_weights)
        total = sum(kind_weights.values())
        self.probs = np.array([kind_weights[k] / total for k in self.kinds])

    def sample(self, scene: Scene, n: int, rng: np.random.Generator, plain: bool) -> list[Prompt]:
        masks = objects(scene)
        centres = object_centres(masks)
        hw = (scene.height, scene.width)
        prompts = []
        for _ in range(n):
            # hard scenes: mostly the target (the object with a touching look-alike)
            k = 1 if scene.difficulty == "hard" and rng.random() < 0.6 else int(rng.integers(0, len(masks)))
            kind = (
                ("box", "box_pos")[int(rng.integers(0, 2))]
                if plain
                else str(rng.choice(self.kinds, p=self.probs))
            )
            prompts.append(self._one(kind, masks, k, nearest_same_kind(centres, k), rng, hw))
        return prompts

    @staticmethod
    def _one(kind: str, masks: list[np.ndarray], k: int, other: int | None, rng, hw) -> Prompt:
        target = masks[k]
        n_pos = int(rng.integers(1, 3))
        box = jitter_box(mask_bbox(target), rng, hw)
        if kind in ("span_neg", "box_neg") and other is not None:
            if kind == "span_neg":
                a, b = mask_bbox(target), mask_bbox(masks[other])
                box = jitter_box(
                    (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])), rng, hw
                )
            return Prompt(target, box, deep_points(target, n_pos, rng), deep_points(masks[other], 1, rng))
        if kind == "box":
            return Prompt(target, box)
        if kind == "points":
            return Prompt(target, None, deep_points(target, n_pos, rng))
        return Prompt(target, box, deep_points(target, n_pos, rng), needs_correction=kind == "correction")


def correction_click(prompt: Prompt, pred: np.ndarray, gt: np.ndarray, hw: tuple[int, int]) -> Prompt:
    """``prompt`` plus one click at the deepest pixel of its larger error region (``pred``/``gt`` (L, L)
    bool, SAM's square input frame at any resolution L): negative on a false positive, positive on a
    false negative. Unchanged when both error regions are under 4 pixels."""
    fp, fn = pred & ~gt, gt & ~pred
    region, negative = (fp, True) if fp.sum() >= fn.sum() else (fn, False)
    if region.sum() < 4:
        return dataclasses.replace(prompt, needs_correction=False)
    labels, _ = ndimage.label(region)
    biggest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    depth = ndimage.distance_transform_edt(np.pad(labels == biggest, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    s = pred.shape[0]
    click = (float(np.floor((x + 0.5) * hw[1] / s)), float(np.floor((y + 0.5) * hw[0] / s)))
    if negative:
        return dataclasses.replace(prompt, neg=[*prompt.neg, click], needs_correction=False)
    return dataclasses.replace(prompt, pos=[*prompt.pos, click], needs_correction=False)


# ------------------------------------------------------------------ training
def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` at ``step``: linear warm-up, then cosine decay to ``cfg.min_lr``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    floor = cfg.min_lr / cfg.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def hard_share(step: int, cfg: TrainConfig) -> float:
    """Share of hard scenes at ``step``: 0 during the plain phase, then rising linearly to ``hard_share``."""
    if step < cfg.plain_steps:
        return 0.0
    ramp = max(1.0, cfg.hard_ramp_end * cfg.steps - cfg.plain_steps)
    return cfg.hard_share * min(1.0, (step - cfg.plain_steps) / ramp)


def training_scenes(step: int, cfg: TrainConfig, rng: np.random.Generator) -> list[Scene]:
    """The scenes of ``step`` (seeds ``TRAIN_SEED_BASE + step * images_per_step + i``, disjoint from any
    ``generate_scenes`` list); the plain phase has no look-alikes."""
    plain = step < cfg.plain_steps
    scenes = []
    for i in range(cfg.images_per_step):
        size = (840, 840) if rng.random() < cfg.big_image_share else DEFAULT_SIZES[int(rng.integers(0, 3))]
        difficulty = "hard" if rng.random() < hard_share(step, cfg) else "easy"
        seed = TRAIN_SEED_BASE + step * cfg.images_per_step + i
        scenes.append(generate_scene(seed, size, 0 if plain else None, difficulty=difficulty))
    return scenes


def mask_losses(low_res: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-prompt loss (B,): BCE + dice of token 0, half the best multimask token's, MSE of predicted IoUs.

    ``low_res`` (B, 4, s, s) logits of all four mask tokens, ``iou_pred`` (B, 4), ``target`` (B, 1, L, L)
    soft ground truth in SAM's (square) input frame at the loss resolution L; logits are upsampled to L."""
    logits = F.interpolate(low_res, size=target.shape[-2:], mode="bilinear", align_corners=False)
    t = target.expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none").mean((2, 3))
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * t).sum((2, 3)) + 1) / (p.sum((2, 3)) + t.sum((2, 3)) + 1)
    per_token = bce + dice
    with torch.no_grad():
        pred, truth = logits > 0, t > 0.5
        actual_iou = (pred & truth).sum((2, 3)) / (pred | truth).sum((2, 3)).clamp(min=1)
    iou_loss = ((iou_pred - actual_iou) ** 2).mean(1)
    return per_token[:, 0] + 0.5 * per_token[:, 1:].min(1).values + iou_loss


class ToySamTrainer:
    """One resumable training run in ``work_dir`` (``state.pt`` checkpoint, ``curve.jsonl`` log)."""

    def __init__(self, cfg: TrainConfig, work_dir: str | Path) -> None:
        from segzero_plus.sam.build import build_sam2_model

        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.model = build_sam2_model(str(TOY_SAM_CONFIG), seed=cfg.seed).train()
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.size = int(self.model.image_size)
        self.loss_size = self.size // 2  # twice the decoder's low-res masks (size / 4)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, cfg))
        self.simulator = InteractionSimulator(cfg.kind_weights)
        self.step = 0
        self._resume()

    # ---------------------------------------------------------------- state
    @property
    def state_path(self) -> Path:
        return self.work_dir / "state.pt"

    def _resume(self) -> None:
        if not self.state_path.exists():
            return
        state = torch.load(self.state_path, map_location="cpu", weights_only=True)
        if state["config"] != json.dumps(dataclasses.asdict(self.cfg), sort_keys=True):
            raise UserError(
                f"{self.state_path} was written with another training configuration; "
                "pass a new --work folder (or delete this one to start over)"
            )
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.step = int(state["step"])

    def save_state(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "step": self.step,
            "config": json.dumps(dataclasses.asdict(self.cfg), sort_keys=True),
        }
        tmp = self.state_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.state_path)

    def log(self, record: dict) -> None:
        with open(self.work_dir / "curve.jsonl", "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    # ---------------------------------------------------------------- forward
    def _prompt_tensors(self, prompts: list[Prompt], hws: list[tuple[int, int]]):
        coords, labels = [], []
        for pr, (h, w) in zip(prompts, hws, strict=True):
            pts = (
                ([(pr.box[0], pr.box[1]), (pr.box[2], pr.box[3])] if pr.box is not None else [])
                + pr.pos
                + pr.neg
            )
            lab = ([2, 3] if pr.box is not None else []) + [1] * len(pr.pos) + [0] * len(pr.neg)
            coords.append(np.asarray(pts, dtype=np.float32) / np.array([w, h], dtype=np.float32) * self.size)
            labels.append(lab)
        return torch.from_numpy(np.stack(coords)), torch.tensor(labels, dtype=torch.int32)

    def decode(self, feats, image_idx: list[int], prompts: list[Prompt], hws):
        """All four mask tokens' low-res logits (B, 4, s, s) and predicted IoUs (B, 4) for prompts of one
        shape; ``image_idx[i]`` is prompt ``i``'s image in the batch features ``feats``."""
        embed, high_res = feats
        idx = torch.tensor(image_idx)
        coords, labels = self._prompt_tensors(prompts, hws)
        sparse, dense = self.model.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        low_res, iou, _, _ = self.model.sam_mask_decoder.predict_masks(
            image_embeddings=embed[idx],
            image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=[t[idx] for t in high_res],
        )
        return low_res, iou

    def features(self, scenes: list[Scene]):
        from segzero_plus.sam.scorer import preprocess_image

        x = torch.cat([preprocess_image(s.image, self.size) for s in scenes])
        fpn = self.model.forward_image(x)["backbone_fpn"]
        embed = fpn[2] + self.model.no_mem_embed.reshape(1, -1, 1, 1)
        return embed, fpn[:2]

    def _grouped(self, items: list[tuple[int, Prompt]]):
        groups: dict[tuple[bool, int], list[int]] = {}
        for i, (_, pr) in enumerate(items):
            groups.setdefault(pr.shape_key, []).append(i)
        return groups.values()

    def _targets(self, masks: list[np.ndarray]) -> torch.Tensor:
        return torch.cat(
            [
                F.interpolate(
                    torch.from_numpy(m.astype(np.float32))[None, None],
                    size=(self.loss_size, self.loss_size),
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )
                for m in masks
            ]
        )

    def _apply_corrections(self, feats, items, hws) -> list[tuple[int, Prompt]]:
        """Replace each uncorrected prompt by its one-click correction (decoded without gradients)."""
        todo = [i for i, (_, pr) in enumerate(items) if pr.needs_correction]
        if not todo:
            return items
        items = list(items)
        with torch.no_grad():
            for group in self._grouped([items[i] for i in todo]):
                sel = [todo[g] for g in group]
                low_res, _ = self.decode(
                    feats,
                    [items[i][0] for i in sel],
                    [items[i][1] for i in sel],
                    [hws[items[i][0]] for i in sel],
                )
                pred = F.interpolate(low_res[:, :1], size=(self.loss_size,) * 2, mode="bilinear") > 0
                truth = self._targets([items[i][1].target for i in sel]) > 0.5
                for j, i in enumerate(sel):
                    img, pr = items[i]
                    items[i] = (img, correction_click(pr, pred[j, 0].numpy(), truth[j, 0].numpy(), hws[img]))
        return items

    def train_step(self) -> float:
        """One optimisation step; returns its loss."""
        cfg, step = self.cfg, self.step
        rng = np.random.default_rng([cfg.seed, step])
        scenes = training_scenes(step, cfg, rng)
        hws = [(s.height, s.width) for s in scenes]
        items = [
            (i, pr)
            for i, s in enumerate(scenes)
            for pr in self.simulator.sample(s, cfg.prompts_per_image, rng, plain=step < cfg.plain_steps)
        ]
        feats = self.features(scenes)
        items = self._apply_corrections(feats, items, hws)
        losses = []
        for group in self._grouped(items):
            sel = [items[i] for i in group]
            low_res, iou = self.decode(
                feats, [g[0] for g in sel], [g[1] for g in sel], [hws[g[0]] for g in sel]
            )
            losses.append(mask_losses(low_res, iou, self._targets([g[1].target for g in sel])))
        loss = torch.cat(losses).mean() + cfg.feature_penalty * feats[0].pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.step += 1
        return float(loss.detach())

    # ---------------------------------------------------------------- evaluation and export
    def evaluate(self) -> dict[str, float]:
        """Held-out quality (:mod:`segzero_plus.testing.toy_sam_eval`) on easy and hard scenes."""
        from segzero_plus.sam.scorer import SamScorer
        from segzero_plus.testing.toy_sam_eval import evaluate_scorer

        n = self.cfg.eval_scenes
        scenes = generate_scenes(n, seed=EVAL_SEED) + generate_scenes(n, seed=EVAL_SEED, difficulty="hard")
        self.model.eval()
        try:
            return evaluate_scorer(SamScorer(self.model, cache_size=1), scenes)
        finally:
            self.model.train()

    def export(self, path: str | Path) -> Path:
        """Write the model as ``{"model": state_dict}`` in fp16 (atomic; byte-identical for equal weights)."""
        path = Path(path)
        state = {
            k: (v.half() if v.is_floating_point() else v).contiguous()
            for k, v in self.model.state_dict().items()
        }
        buffer = io.BytesIO()
        torch.save({"model": state}, buffer)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(path)
        return path

    def run(self, out: str | Path | None = None, progress: bool = True) -> dict[str, float]:
        """Train to ``cfg.steps`` (resuming), logging losses every 50 steps and held-out quality every
        ``eval_every``; export to ``out`` at the end. Returns the final evaluation."""
        from tqdm import tqdm

        cfg = self.cfg
        bar = tqdm(total=cfg.steps, initial=self.step, desc="toy SAM2", mininterval=30, disable=not progress)
        window, started = [], time.perf_counter()
        while self.step < cfg.steps:
            window.append(self.train_step())
            bar.update(1)
            if self.step % 50 == 0:
                elapsed = time.perf_counter() - started
                self.log(
                    {
                        "step": self.step,
                        "loss": float(np.mean(window)),
                        "lr": self.sched.get_last_lr()[0],
                        "hard_share": hard_share(self.step, cfg),
                        "s_per_step": elapsed / len(window),
                    }
                )
                window, started = [], time.perf_counter()
            if self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                self.log({"step": self.step, **self.evaluate()})
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                self.save_state()
        bar.close()
        final = self.evaluate()
        self.log({"step": self.step, "final": True, **final})
        if out is not None:
            self.export(out)
        return final


def main(argv: list[str] | None = None) -> int:
    """``python -m segzero_plus.testing.train_tiny_sam``; bad input follows the CLI's error convention."""
    return run_reporting_errors(lambda: _train(argv))


def _train(argv: list[str] | None) -> int:
    ap = ArgumentParser(
        prog="train_tiny_sam", description="train the toy SAM2 fixture (CPU, deterministic, resumable)"
    )
    ap.add_argument("--work", required=True, help="run folder: state.pt checkpoint and curve.jsonl")
    ap.add_argument("--out", default=None, help="fp16 {'model': state_dict} file written at the end")
    ap.add_argument("--steps", type=int, default=TrainConfig.steps)
    ap.add_argument("--seed", type=int, default=TrainConfig.seed)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    trainer = ToySamTrainer(TrainConfig(steps=args.steps, seed=args.seed), args.work)
    final = trainer.run(args.out, progress=not args.no_progress)
    print(json.dumps(final, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
