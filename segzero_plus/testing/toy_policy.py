"""The toy policy: the tiny Qwen2.5-VL cold-started by SFT on look-alike scenes, committed as a fixture so
the demo, tests and GRPO smoke runs have a policy whose answers parse and point at objects on CPU.

It is made by :mod:`segzero_plus.testing.train_toy_policy` (the exact command is in
``fixtures/README.md``) and never retrained by tests, the demo or CI. It answers in a 168x168 MODEL
frame (:data:`TOY_POLICY_SIZE`: evaluate it with ``resize="168x168"``) with the negative-point template.
"""

from __future__ import annotations

from pathlib import Path

from segzero_plus.errors import UserError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOY_POLICY_DIR = FIXTURES / "toy_policy"
TOY_POLICY_SIZE: tuple[int, int] = (168, 168)
"""(height, width) of the MODEL frame the toy policy was trained in (a squash of the scene image)."""
TOY_POLICY_TEMPLATE = "negative_point"

_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json")


def toy_policy_dir() -> Path:
    """The folder of the trained toy policy (``AutoProcessor`` / ``Qwen2_5_VLForConditionalGeneration``
    ``.from_pretrained`` it, or pass it as any ``--model``)."""
    missing = [name for name in _REQUIRED if not (TOY_POLICY_DIR / name).is_file()]
    if missing:
        raise UserError(
            f"the toy policy fixture {TOY_POLICY_DIR} is missing {missing}; it is committed with the "
            "repository (recreate it with the command in segzero_plus/testing/fixtures/README.md)"
        )
    return TOY_POLICY_DIR


def toy_policy_resize() -> str:
    """The evaluation ``resize`` option matching :data:`TOY_POLICY_SIZE` (``"168x168"``)."""
    return f"{TOY_POLICY_SIZE[0]}x{TOY_POLICY_SIZE[1]}"


def toy_eval_parquet(out: str | Path, n_per_difficulty: int, seed: int) -> Path:
    """Write held-out look-alike scenes (``n_per_difficulty`` easy + as many hard, ``generate_scenes(n,
    seed)``) as an evaluation parquet (ORIGINAL frame) at ``out``; returns its path."""
    from segzero_plus.data.lookalike import write_scenes_eval
    from segzero_plus.scenes import generate_scenes

    scenes = generate_scenes(n_per_difficulty, seed=seed) + generate_scenes(
        n_per_difficulty, seed=seed, difficulty="hard"
    )
    return write_scenes_eval(scenes, out, split="val", overwrite=True).path


def evaluate_toy_policy(
    eval_parquet: str | Path,
    out: str | Path,
    model: str | Path | None = None,
    name: str = "toy policy (SFT)",
    max_new_tokens: int = 160,
    progress: bool = False,
) -> dict:
    """Evaluate ``model`` (default: the toy policy) with the trained toy SAM2 on ``eval_parquet`` in the
    toy policy's MODEL frame; returns the run's metrics (``overall`` has gIoU, ``without_negatives``,
    ``gt_prompt``, failures by reason, ``strict_format_rate``)."""
    from segzero_plus.evaluation.config import EvalConfig
    from segzero_plus.evaluation.runner import run_evaluation
    from segzero_plus.testing.toy_sam import toy_sam_checkpoint

    config_name, checkpoint = toy_sam_checkpoint()
    cfg = EvalConfig(
        data=[str(eval_parquet)],
        out=str(out),
        model=str(model or toy_policy_dir()),
        name=name,
        template=TOY_POLICY_TEMPLATE,
        sam_config=config_name,
        sam_checkpoint=str(checkpoint),
        resize=toy_policy_resize(),
        max_new_tokens=max_new_tokens,
        batch_size=8,
        device="cpu",
    )
    return run_evaluation(cfg, overwrite=True, progress=progress)
