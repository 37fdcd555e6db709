"""SAM2 services: build, batched scorer, shared Ray actor, counterfactual negative reward, mining.

Frozen SAM 2.1 (Hiera-L in production) is the scorer in training, the segmenter in evaluation and the
miner of confused regions. Placement, memory and costs: docs/sam.md. Submodules are imported lazily
(this package imports nothing heavy).

Public surface
--------------
``segzero_plus.sam.build``
    SAM_CONFIGS: dict[str, (yaml, overrides)]  # sam2.1_hiera_{t,s,b+,l}, tiny_test
    DEFAULT_SAM_CONFIG = "sam2.1_hiera_l"
    build_sam2_model(config_name="sam2.1_hiera_l", checkpoint=None, device="cpu", seed=None) -> nn.Module
    write_random_checkpoint(path, config_name, seed=0) -> Path
    SamCheckpointError(RuntimeError)

``segzero_plus.sam.protocol``  (numpy only)
    SAM_PROTOCOLS = ("single_mask", "multimask_best"); PUBLISHED_PROTOCOL = "multimask_best" (Seg-Zero's
    evaluation: the best-scored of SAM's 3 masks); check_protocol(name); best_mask_index(iou_preds)

``segzero_plus.sam.scorer``  (frames: prompts in ``prompt_hw`` pixels, masks in ``out_hw``; default the
image's own frame)
    PromptSet(box=None, points_pos=(), points_neg=()); PromptSet.make(box, points_pos, points_neg)
    MaskResult(masks (C,H,W) bool, iou_preds (C,), logits=None, decoded=True); .mask, .iou_pred
    SamScorer(model, cache_size=64, max_batch=None, autocast="auto")
        .score(image_key, image, prompts, out_hw=None, prompt_hw=None, multimask=False,
               return_logits=False, protocol="single_mask") -> list[MaskResult]
        .score_many(requests: list[ScoreRequest]) -> list[list[MaskResult]]
        .encode(image_key, image) -> (H, W); .has_image(key); .stats (images_encoded,
        prompt_sets_decoded, decoder_calls, cache_hits, cache_evictions, requests); .reset_stats()
    ScoreRequest(image_key, image, prompts, out_hw=None, prompt_hw=None, multimask=False,
                 return_logits=False, protocol="single_mask")
    stable_image_key(image) -> str; ImageNotCachedError(KeyError)

``segzero_plus.sam.actor``  (one named actor per node and spec, shared by all reward workers)
    ScorerSpec(config_name, checkpoint, device="auto", seed=0, num_gpus=0.0, num_cpus=0.0,
               cache_size=64, max_batch=None, autocast="auto", torch_threads=None, max_restarts=4,
               require_gpu=False)                      .digest() -> 12 hex digits (in the actor name)
    get_scorer_actor(spec, name=None, namespace="segzero_plus") -> ActorHandle
    SamScorerClient(spec, name=None, namespace="segzero_plus", call_timeout_s=300.0,
                    retry_delay_s=0.5, restart_timeout_s=120.0)
        .score(...) / await .score_async(...)  (same arguments as SamScorer.score) -> list[MaskResult]
        .stats() -> dict; .ping() -> pid      raise SamUnavailableError after one retry
    SamUnavailableError(RuntimeError)

``segzero_plus.sam.counterfactual``
    CounterfactualConfig(gain_scale=5.0, gain_clip=1.0, inside_penalty=0.5, leave_one_out=False,
                         mask_iou="off", iou_tiers=..., sam_protocol="multimask_best"); .from_dict(d)
    TERM_KEYS  # neg_count, neg_inside_gt, iou_full, iou_base, neg_gain, neg_loo_min, neg_reward,
               # mask_iou_reward, sam_failed  (same keys for every sample)
    counterfactual_prompts(box, points_pos, points_neg, leave_one_out=False) -> list[PromptSet]
    counterfactual_terms(results, gt_mask, points_neg, config=..., prompt_hw=None) -> dict[str, float]
    counterfactual_reward(scorer, image_key, image, box, points_pos, points_neg, gt_mask,
                          config=..., prompt_hw=None) -> dict[str, float]
    await counterfactual_reward_async(...same arguments...) -> dict[str, float]  (use in async code)
    failed_terms() -> dict[str, float]; mask_iou(pred, gt) -> float; tiered(iou, tiers) -> float

``segzero_plus.sam.mining``  (CLI: ``segzero-plus mine-confused``, prepare_dataset/generate_confused_regions.py)
    MiningConfig(n_samples=5, margin=80.0, max_tries=5, score_threshold=0.5,
                 sources=("oracle_fp", "sampled", "distractors"))
    mine_confused_regions(scorer, image_key, image, gt_mask, gt_box=None, gt_points=None,
                          distractor_masks=(), config=MiningConfig(), seed=0) -> ConfusedRegions
    ConfusedRegions(union, oracle_fp, sampled, distractors, stats); .to_json() -> str
    mine_parquet(input_path, output_path, *, config_name="sam2.1_hiera_l", checkpoint=None,
                 device="auto", model_seed=0, config=MiningConfig(), seed=0, shard_rows=256,
                 num_workers=0, remine=False, overwrite=False, cache_size=8, torch_threads=None,
                 progress=True) -> dict  (summary, also written to <output>.summary.json)

Typical use in a verl reward manager (async ``run_single``)::

    client = SamScorerClient(ScorerSpec(checkpoint="pretrained_models/sam2.1_hiera_large.pt"))
    prompts = counterfactual_prompts(box, pos, neg, cfg.leave_one_out)
    try:
        results = await client.score_async(image_key, image, prompts, out_hw=gt_mask.shape)
        terms = counterfactual_terms(results, gt_mask, neg, cfg)
    except SamUnavailableError:
        terms = failed_terms()  # the sample scores 0; the client has logged why
"""
