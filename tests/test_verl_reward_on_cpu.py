"""The verl reward manager on CPU: verl's own loader and RewardLoopManager with real Ray reward workers over
tiny-model rollouts of our training parquet, the shared SAM actor, the frame mapping, and the error paths."""

from __future__ import annotations

import asyncio
import contextlib
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from segzero_plus.data.lookalike import scenes_to_training_rows
from segzero_plus.data.schema import TRAINING_SCHEMA, dumps_ground_truth, make_ground_truth, to_ground_truth
from segzero_plus.data.training import TrainingOptions
from segzero_plus.geometry import inscribed_circle_centres
from segzero_plus.parsing import parse_answer
from segzero_plus.rewards import reward_keys, total_reward
from segzero_plus.testing.answers import answer_text, crafted_answers
from segzero_plus.testing.configs import tiny_training_config
from segzero_plus.train.frames import answer_frame_hw, find_image_item, image_rgb
from segzero_plus.train.options import ManagerOptions
from segzero_plus.train.rollouts import load_rlhf_dataset, rollout_dataproto

N_ROWS = 4


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def rows(scenes):
    """Training rows of 4 look-alike scenes (336x336 and 280x420: both already multiples of 28)."""
    return scenes_to_training_rows(
        scenes[:N_ROWS], TrainingOptions(template="negative_point", resize=None, data_source="lookalike")
    )


@pytest.fixture(scope="module")
def parquet(rows, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train_negative_point.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=TRAINING_SCHEMA), path)
    return path


def make_cfg(tiny_qwen_dir, parquet, *overrides):
    return tiny_training_config(tiny_qwen_dir, parquet, "data.max_prompt_length=4096", *overrides)


@pytest.fixture(scope="module")
def cfg(tiny_qwen_dir, parquet):
    return make_cfg(tiny_qwen_dir, parquet)


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen_dir):
    from verl.utils import hf_tokenizer

    return hf_tokenizer(str(tiny_qwen_dir))


@pytest.fixture(scope="module")
def manager(cfg, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    return load_reward_manager(cfg, tokenizer)


def _rollout_batch(cfg, tokenizer, tiny_qwen_dir, parquet):
    """A DataProto of 4 rows x (1 tiny-model rollout + 3 crafted responses), built through verl's RLHFDataset
    and collate_fn, prompts tokenised by the tiny Qwen2.5-VL processor (left-padded), responses right-padded."""
    dataset = load_rlhf_dataset(cfg.data, tiny_qwen_dir, parquet, tokenizer)
    assert len(dataset) == N_ROWS
    return rollout_dataproto(dataset, tiny_qwen_dir, crafted_answers, max_new_tokens=24)


def _decoded(tokenizer, data, i):
    item = data[i]
    length = item.batch["responses"].shape[-1]
    valid = int(item.batch["attention_mask"][-length:].sum())
    return tokenizer.decode(item.batch["responses"][:valid], skip_special_tokens=True)


# ------------------------------------------------------------------------------------------ in-process
def test_verl_loader_resolves_our_manager_with_config_options(tiny_qwen_dir, parquet, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager, resolve_reward_manager_cls

    from segzero_plus.train.reward_manager import SegZeroPlusRewardManager

    cfg = make_cfg(tiny_qwen_dir, parquet, "experiment=neg_weight_2.0")
    assert resolve_reward_manager_cls(cfg) is SegZeroPlusRewardManager
    manager = load_reward_manager(cfg, tokenizer)
    assert isinstance(manager, SegZeroPlusRewardManager)
    assert manager.options.negative_reward == "additive"
    assert manager.options.reward.weights["negative_point"] == 2.0
    assert manager.options.reward.template == "negative_point"


def test_configs_naming_the_former_module_resolve_the_same_manager(tiny_qwen_dir, parquet):
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    from segzero_plus.train.reward_manager import SegZeroPlusRewardManager

    cfg = make_cfg(tiny_qwen_dir, parquet, "reward.reward_manager.module.path=pkg://segzero_plus.verl_reward")
    assert resolve_reward_manager_cls(cfg) is SegZeroPlusRewardManager


def test_answer_frame_matches_verls_vision_pipeline():
    """The frame we map from is the size verl's rollout really feeds the model (non-square, not a multiple of
    28, and with a pixel budget in the item)."""
    from verl.utils.dataset.rl_dataset import RLHFDataset

    image = Image.fromarray(np.zeros((301, 457, 3), np.uint8))
    for item in ({"type": "image", "image": image}, {"type": "image", "image": image, "max_pixels": 50_000}):
        messages = [{"role": "user", "content": [dict(item), {"type": "text", "text": "x"}]}]
        images, _ = asyncio.run(RLHFDataset.process_vision_info(messages, 14, None))
        w, h = images[0].size
        assert answer_frame_hw(item) == (h, w)
    assert answer_frame_hw({"type": "image", "image": image}) == (308, 448)


def test_frame_mapping_lands_on_the_right_pixels_of_a_non_square_image(
    cfg, tokenizer, tiny_qwen_dir, parquet
):
    """GT frame 560x840; the item's pixel budget makes the model see 280x420. An answer given in the seen
    frame must earn the full box/point reward, and SAM must get prompts that land on the target's pixels of
    the 560x840 image; the same answer read as GT-frame pixels would miss."""
    from segzero_plus.data.scenes import generate_scene
    from segzero_plus.data.training import target_geometry
    from segzero_plus.sam.scorer import MaskResult
    from segzero_plus.train.reward_manager import SegZeroPlusRewardManager

    scene = generate_scene(3, size=(560, 840), n_distractors=1, scene_id="frame")
    geom = target_geometry(scene.target_mask, scene.distractor_masks, (560, 840))
    gt_json = dumps_ground_truth(
        make_ground_truth(
            bbox=geom.bbox,
            points=geom.points,
            mask=geom.mask_rle,
            distractor_masks=geom.distractor_rles,
            height=560,
            width=840,
            orig_height=560,
            orig_width=840,
        )
    )
    item = {"type": "image", "image": Image.fromarray(scene.image), "max_pixels": 280 * 420}
    raw_prompt = [{"role": "user", "content": [item, {"type": "text", "text": "find it"}]}]
    assert answer_frame_hw(item) == (280, 420)

    half = [v / 2 for v in geom.bbox]
    deep = inscribed_circle_centres(scene.target_mask, 1)[0]  # GT points may sit on the edge; use the deepest
    pos = [(deep[0] / 2, deep[1] / 2)] * 2
    neg = [(x / 2, y / 2) for x, y in inscribed_circle_centres(scene.distractor_masks[0], 1)]
    response = answer_text(half, pos, neg)

    manager = SegZeroPlusRewardManager(cfg, tokenizer)
    info = manager.score_text(response, gt_json, raw_prompt)
    assert info["frame_scaled"] == 1.0
    assert info["bbox_iou"] == 1.0 and info["bbox_l1"] == 1.0 and info["point"] == 1.0
    assert info["seg_format"] == 1.0  # the in-frame check uses the frame the model saw

    # the same answer when the model saw the GT frame: read as 560x840 pixels it misses the target
    unscaled = [{"role": "user", "content": [{"type": "image", "image": Image.fromarray(scene.image)}]}]
    miss = manager.score_text(response, gt_json, unscaled)
    assert miss["frame_scaled"] == 0.0 and miss["bbox_iou"] == 0.0

    # SAM: prompts go out in the seen frame with prompt_hw; masks are asked for in the GT frame
    calls = []

    class RecordingScorer:
        def score(self, image_key, image, prompts, out_hw=None, prompt_hw=None, **_):
            calls.append((image.shape, prompts, out_hw, prompt_hw))
            full = MaskResult(masks=scene.target_mask[None].copy(), iou_preds=np.ones(1, np.float32))
            leak = scene.target_mask | scene.distractor_masks[0]
            base = MaskResult(masks=leak[None], iou_preds=np.ones(1, np.float32))
            return [full, base][: len(prompts)]

    sam_cfg = make_cfg(tiny_qwen_dir, parquet, "experiment=segzero_plus_sam_cf")
    sam_manager = SegZeroPlusRewardManager(sam_cfg, tokenizer, sam_scorer=RecordingScorer())
    info = sam_manager.score_text(response, gt_json, raw_prompt)
    ((image_shape, prompts, out_hw, prompt_hw),) = calls
    assert image_shape == (560, 840, 3) and out_hw == (560, 840) and prompt_hw == (280, 420)
    sy, sx = out_hw[0] / prompt_hw[0], out_hw[1] / prompt_hw[1]
    for x, y in prompts[0].points_pos:  # positives land on the target's pixels of the original image
        assert scene.target_mask[int(y * sy), int(x * sx)]
    nx, ny = prompts[0].points_neg[0]  # the negative lands on the look-alike
    assert scene.distractor_masks[0][int(ny * sy), int(nx * sx)]
    assert info["sam/iou_full"] == 1.0 and info["sam/neg_gain"] > 0
    assert info["sam_counterfactual"] == info["sam/neg_reward"] > 0


def test_run_single_errors_score_zero_with_the_same_keys(manager, tokenizer, cfg, tiny_qwen_dir, parquet):
    data, kinds = _rollout_batch(cfg, tokenizer, tiny_qwen_dir, parquet)
    keys = manager.extra_info_keys(manager.options)
    out = asyncio.run(manager.run_single(data[kinds.index("malformed") : kinds.index("malformed") + 1]))
    assert list(out["reward_extra_info"]) == list(keys)
    info = out["reward_extra_info"]
    assert out["reward_score"] == 0.0 and info["parse_error"] == 1.0 and info["reward_error"] == 0.0, info

    broken = data[0:1]
    no_image = np.empty(1, dtype=object)
    no_image[0] = [{"role": "user", "content": "no image here"}]
    broken.non_tensor_batch["raw_prompt"] = no_image
    bad_gt = data[1:2]
    bad_gt.non_tensor_batch["reward_model"] = np.array(
        [{"style": "rule", "ground_truth": "{not json"}], dtype=object
    )
    errors_before = manager.stats.errors
    for sample in (broken, bad_gt):
        out = asyncio.run(manager.run_single(sample))
        assert out["reward_score"] == 0.0 and out["reward_extra_info"]["reward_error"] == 1.0, out
        assert list(out["reward_extra_info"]) == list(keys)
    assert manager.stats.errors == errors_before + 2


# ------------------------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_reward_loop_manager_with_ray_workers_and_one_shared_sam_actor(
    ray_session, tiny_qwen_dir, tiny_sam_checkpoint, parquet, rows, tokenizer
):
    """verl's real RewardLoopManager (2 Ray RewardLoopWorkers) scores tiny-model rollouts + crafted answers with
    the SAM counterfactual reward; both workers share ONE SAM actor; every score equals the core functions
    called directly; malformed answers score 0 with the parse-error flag; every sample has the same keys."""
    ray = ray_session
    from verl.experimental.reward_loop import RewardLoopManager

    from segzero_plus.sam.build import build_sam2_model
    from segzero_plus.sam.counterfactual import counterfactual_reward
    from segzero_plus.sam.scorer import SamScorer
    from segzero_plus.train.reward_manager import SegZeroPlusRewardManager
    from segzero_plus.train.scoring import image_key

    sam_name, sam_ckpt = tiny_sam_checkpoint
    actor_name = f"sam_test_{os.getpid()}"
    cfg = make_cfg(
        tiny_qwen_dir,
        parquet,
        "experiment=segzero_plus_sam_cf",
        "reward.num_workers=2",
        f"segzero_plus.sam.config_name={sam_name}",
        f"segzero_plus.sam.checkpoint={sam_ckpt}",
        "segzero_plus.sam.placement=cpu",
        "segzero_plus.sam.torch_threads=1",
        f"segzero_plus.sam.actor_name={actor_name}",
    )
    data, kinds = _rollout_batch(cfg, tokenizer, tiny_qwen_dir, parquet)
    manager = RewardLoopManager(cfg)
    try:
        out = manager.compute_rm_score(data)
        sam_actor = ray.get_actor(actor_name, namespace="segzero_plus")
        stats = ray.get(sam_actor.stats.remote())
    finally:
        for worker in manager.reward_loop_workers:
            ray.kill(worker)
    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(actor_name, namespace="segzero_plus"))

    options = ManagerOptions.from_config(cfg)
    keys = list(SegZeroPlusRewardManager.extra_info_keys(options))
    assert out.meta_info["reward_extra_keys"] == keys
    scores = out.batch["rm_scores"].sum(dim=1).numpy()
    info = {k: out.non_tensor_batch[k] for k in keys}
    assert not info["reward_error"].any() and not info["sam_failed"].any()

    # one SAM actor, used by both workers: every sample with a box or point asked it once (4 images encoded)
    asked = sum(
        1
        for i in range(len(data))
        if parse_answer(_decoded(tokenizer, data, i)).bbox is not None
        or parse_answer(_decoded(tokenizer, data, i)).points_pos
    )
    assert stats["requests"] == asked >= 2 * N_ROWS
    assert stats["images_encoded"] == N_ROWS

    local = SamScorer(build_sam2_model(sam_name, sam_ckpt, device="cpu"))
    cf = options.sam.counterfactual_config()
    for i, kind in enumerate(kinds):
        response = _decoded(tokenizer, data, i)
        item = find_image_item(data[i].non_tensor_batch["raw_prompt"])
        gt = to_ground_truth(data[i].non_tensor_batch["reward_model"]["ground_truth"])
        answer = parse_answer(response)
        rgb = image_rgb(item)
        sam = counterfactual_reward(
            local,
            image_key(item.get("bytes"), rgb),
            rgb,
            answer.bbox,
            answer.points_pos,
            answer.points_neg,
            gt.mask,
            cf,
            prompt_hw=answer_frame_hw(item),
        )
        # the core functions called directly, fed the SAM terms the manager reported: identical score
        reported = {
            "sam_counterfactual": info["sam/neg_reward"][i],
            "sam_mask_iou": info["sam/mask_iou_reward"][i],
        }
        expected = total_reward(response, gt, options.reward, extra_terms=reported)
        for key in reward_keys(options.reward):
            assert info[key][i] == expected[key], (kind, key)
        assert scores[i] == pytest.approx(expected["score"], abs=1e-6), kind
        # the reported SAM terms are SAM's answer for this image and these prompts: the local scorer agrees
        # up to pixels that flip under batching round-off (random-weight SAM logits sit near 0)
        assert (
            info["sam/neg_count"][i] == sam["neg_count"]
            and info["sam/neg_inside_gt"][i] == sam["neg_inside_gt"]
        )
        for key in ("iou_full", "iou_base"):
            assert info[f"sam/{key}"][i] == pytest.approx(sam[key], abs=0.02), (kind, key)
        if kind == "malformed":
            assert scores[i] == 0.0 and info["parse_error"][i] == 1.0
        if kind == "exact":
            assert info["bbox_iou"][i] == 1.0 and info["point"][i] == 1.0 and info["seg_format"][i] == 1.0
        if kind != "rollout":  # the crafted answers survive tokenisation unchanged
            assert response == crafted_answers(rows[i // 4])[kind]


# ------------------------------------------------------------------------------------------ streaming shapes
def _one_sample_batch(row, response_ids, n: int = 1):
    """A DataProto of one trajectory built as verl 0.9.1's AgentLoopWorker._compute_score builds it
    (verl/experimental/agent_loop/agent_loop.py): unpadded tensors, ``np.array([v] * n)`` per field."""
    import torch
    from verl import DataProto

    prompt_ids = torch.tensor([1, 2, 3])  # the manager reads only the response
    responses = torch.tensor(response_ids)
    input_ids = torch.cat([prompt_ids, responses])
    batch = {
        "prompts": prompt_ids[None],
        "responses": responses[None],
        "attention_mask": torch.ones_like(input_ids)[None],
        "input_ids": input_ids[None],
        "position_ids": torch.arange(len(input_ids))[None],
    }
    fields = {k: v for k, v in row.items() if not isinstance(v, torch.Tensor)}
    non_tensor = {k: np.array([v] * n) for k, v in fields.items()}
    return DataProto.from_dict(tensors=batch, non_tensors=non_tensor)


def test_run_single_scores_the_streaming_paths_one_sample_batches(
    manager, cfg, tokenizer, tiny_qwen_dir, parquet, rows
):
    """verl's streaming path hands ``raw_prompt`` over as a (1, 2) object array (a 2-message prompt through
    ``np.array([v] * n)``): the exact answer must score what the core gives it, with no reward error."""
    dataset = load_rlhf_dataset(cfg.data, tiny_qwen_dir, parquet, tokenizer)
    row = dataset[0]
    answer = crafted_answers(rows[0])["exact"]
    ids = [*tokenizer(answer, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    data = _one_sample_batch(row, ids)
    assert data.non_tensor_batch["raw_prompt"].shape == (1, 2)
    out = asyncio.run(manager.run_single(data))
    info = out["reward_extra_info"]
    expected = total_reward(
        answer, to_ground_truth(rows[0]["reward_model"]["ground_truth"]), manager.options.reward
    )
    assert info["reward_error"] == 0.0, info
    assert out["reward_score"] == pytest.approx(expected["score"], abs=1e-9) and expected["score"] >= 5.0
    assert info["bbox_iou"] == 1.0 and info["point"] == 1.0


def test_a_sam_failure_falls_back_to_the_sam_free_terms(cfg, tokenizer, tiny_qwen_dir, parquet, rows):
    """SAM unreachable is an infrastructure fault, not a bad answer: the sample keeps every SAM-free term
    (flagged and counted), instead of a 0 that GRPO would turn into a negative advantage."""
    from segzero_plus.sam.actor import SamUnavailableError
    from segzero_plus.train.reward_manager import SegZeroPlusRewardManager

    class DownScorer:
        def score(self, *args, **kwargs):
            raise SamUnavailableError("SAM scorer failed twice: actor died")

    sam_cfg = make_cfg(tiny_qwen_dir, parquet, "experiment=segzero_plus_sam_cf")
    manager = SegZeroPlusRewardManager(sam_cfg, tokenizer, sam_scorer=DownScorer())
    answer = crafted_answers(rows[0])["exact"]
    gt = rows[0]["reward_model"]["ground_truth"]
    raw_prompt = load_rlhf_dataset(sam_cfg.data, tiny_qwen_dir, parquet, tokenizer)[0]["raw_prompt"]
    info = manager.score_text(answer, gt, np.array([raw_prompt] * 1)[0])
    sam_free = total_reward(answer, to_ground_truth(gt), manager.options.reward)
    assert info["sam_failed"] == 1.0 and info["sam_counterfactual"] == 0.0
    assert info["score"] == pytest.approx(sam_free["score"], abs=1e-9) and info["score"] >= 5.0
