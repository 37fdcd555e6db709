"""A rough estimate of per-GPU and host memory of one verl GRPO run (FSDP actor + vLLM rollout + SAM).

It models what verl 0.9.1's FSDP engine does (read from its source), so that a config that cannot fit is
caught before any GPU work; it is an estimate (+-20%), not a measurement. Units: GiB. ``P`` = model
parameters; ``N`` = GPUs of the FSDP group (``n_gpus_per_node * nnodes``).

Training phase (actor update), per GPU:
- ``param_offload`` / ``optimizer_offload`` move state to the CPU only BETWEEN phases: for the update the
  engine loads params (``model_dtype`` bytes x P / N), grads (same) and AdamW moments (8 B x trainable P / N)
  back to the GPU. Only FSDP2's ``offload_policy`` keeps them on the CPU throughout (the optimizer step
  then runs on the CPU), leaving the gathered bf16 layers on the GPU.
- activations of one micro-batch: with gradient checkpointing one bf16 hidden state per layer per token
  plus one layer's full activations, plus the logits (bf16 logits, fp32 log-softmax and its gradient:
  ~10 B per token per vocabulary entry); without checkpointing every layer's activations.
- the reference model (KL loss) is always CPU-offloaded by verl (FSDP1 CPUOffload / FSDP2 offload policy):
  host memory only. With LoRA the reference is the actor without adapters (no copy).
Rollout phase, per GPU: vLLM takes ``gpu_memory_utilization`` x the GPU's memory (weights / TP + KV cache +
activations), and refuses to start if that much is not free; the actor's state that is not offloaded
stays resident. SAM (placement ``shared_gpu``) sits on GPU 0 in both phases.
Host: offloaded actor state, the reference model (pinned), vLLM's CPU copy of the weights under LoRA
(sleep level 1), per-process overheads (each process that imports torch + CUDA costs ~2-3 GiB: trainer
workers, vLLM's server and TP worker processes, the driver and TaskRunner, SAM), the agent-loop workers
(tokenizer + processor each) and reward workers, and the rank-0 init transient: rank 0 loads the whole
HF model on the CPU in ``model_dtype`` before FSDP shards it (before gradients and AdamW moments exist,
so it raises the peak only by what it exceeds them by). vLLM sizes its KV cache and checks one
sequence of ``rollout.max_model_len`` tokens against it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIB = 1024**3

CUDA_CONTEXT_GIB = 1.5
"""Per GPU: CUDA contexts of the training worker and the vLLM process plus NCCL buffers."""
VLLM_ACTIVATION_GIB = 2.0
"""vLLM's own activation/sampler workspace inside its share (besides weights and KV cache)."""
VISION_ACTIVATION_GIB = 1.0
"""Vision tower activations of one image (Qwen2.5-VL, 840x840 -> 3600 patches) in the update."""
PROCESS_HOST_GIB = 3.0
"""Host memory of one process importing torch/transformers/CUDA (trainer workers, vLLM, SAM, driver)."""
REWARD_WORKER_HOST_GIB = 1.5
"""Host memory of one RewardLoopWorker (tokenizer, numpy rewards, the Ray client)."""
AGENT_LOOP_WORKER_HOST_GIB = 2.0
"""Host memory of one AgentLoopWorker (tokenizer, processor, decoded images in flight)."""
RAY_SERVICE_HOST_GIB = 4.0
"""Ray's own processes plus TransferQueue's controller and storage units holding one step's rollouts."""
LOGIT_BYTES_PER_TOKEN_VOCAB = 10.0
"""bf16 logits + fp32 log-softmax + fp32 gradient of the logits, per token per vocabulary entry."""
FIT_MARGIN = 0.95
"""Use at most this share of a GPU's / the host's memory (fragmentation, allocator slack)."""


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of the policy model. ``params`` counts every parameter (vision included)."""

    params: float
    hidden: int
    layers: int
    ffn: int
    vocab: int
    kv_heads: int
    head_dim: int
    source: str = "defaults"

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V of every layer, bf16."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2.0

    @property
    def layer_activation_bytes_per_token(self) -> float:
        """One decoder layer's saved activations (q/k/v/o, norms, residuals ~8 h; MLP ~4 ffn), bf16."""
        return (8 * self.hidden + 4 * self.ffn) * 2.0

    @property
    def largest_unit_params(self) -> float:
        """Largest FSDP wrap unit: the embedding / LM head, or one decoder layer."""
        layer = 4 * self.hidden * self.hidden + 3 * self.hidden * self.ffn
        return float(max(self.vocab * self.hidden, layer))


QWEN25_VL_7B = ModelShape(
    params=8.29e9,
    hidden=3584,
    layers=28,
    ffn=18944,
    vocab=152064,
    kv_heads=4,
    head_dim=128,
    source="Qwen2.5-VL-7B",
)
"""Qwen2.5-VL-7B-Instruct / Seg-Zero-7B (the numbers of its config.json; 8.29 B parameters)."""


def _text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    text = cfg.get("text_config")
    return {**cfg, **text} if isinstance(text, dict) else cfg


def _safetensors_params(folder: Path) -> float | None:
    """Parameter count from the safetensors headers (no tensor data is read)."""
    index = folder / "model.safetensors.index.json"
    files = []
    if index.exists():
        files = sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
    elif (folder / "model.safetensors").exists():
        files = [folder / "model.safetensors"]
    if not files:
        return None
    total = 0
    for path in files:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        for name, meta in header.items():
            if name != "__metadata__":
                total += math.prod(meta["shape"])
    return float(total)


def model_shape(
    model_path: str | None, fallback: ModelShape = QWEN25_VL_7B, params_b: float | None = None
) -> ModelShape:
    """Read the shape from a local model folder (config.json + safetensors headers); else ``fallback``
    (with ``params_b`` billions of parameters if given)."""
    folder = Path(model_path).expanduser() if model_path else None
    if folder is None or not (folder / "config.json").exists():
        if params_b:
            return ModelShape(
                **{**fallback.__dict__, "params": float(params_b) * 1e9, "source": "segzero_plus.preflight"}
            )
        return fallback
    cfg = _text_config(json.loads((folder / "config.json").read_text()))
    hidden = int(cfg.get("hidden_size", fallback.hidden))
    heads = int(cfg.get("num_attention_heads", max(1, hidden // fallback.head_dim)))
    shape = ModelShape(
        params=0.0,
        hidden=hidden,
        layers=int(cfg.get("num_hidden_layers", fallback.layers)),
        ffn=int(cfg.get("intermediate_size", fallback.ffn)),
        vocab=int(cfg.get("vocab_size", fallback.vocab)),
        kv_heads=int(cfg.get("num_key_value_heads", heads)),
        head_dim=int(cfg.get("head_dim", hidden // heads)),
        source=str(folder),
    )
    params = _safetensors_params(folder)
    if params is None:  # text decoder only; good enough without weights
        layer = 4 * shape.hidden * shape.hidden + 3 * shape.hidden * shape.ffn
        params = float(shape.layers * layer + 2 * shape.vocab * shape.hidden)
    return ModelShape(**{**shape.__dict__, "params": params})


def _bytes_per_param(dtype: str | None) -> float:
    return 2.0 if str(dtype).lower() in ("bf16", "bfloat16", "fp16", "float16", "half") else 4.0


@dataclass(frozen=True)
class TrainShape:
    """The parts of a verl config the estimate reads (see :meth:`from_config`)."""

    n_gpus: int
    tp: int
    gpu_memory_utilization: float
    train_batch_size: int
    rollout_n: int
    micro_batch: int
    log_prob_micro_batch: int
    seq_len: int
    max_model_len: int
    use_dynamic_bsz: bool
    max_token_len_per_gpu: int
    param_offload: bool
    optimizer_offload: bool
    offload_policy: bool
    strategy: str
    model_dtype: str
    ref_model_dtype: str
    use_ref: bool
    gradient_checkpointing: bool
    lora_rank: int
    reward_workers: int
    sam_gpu_gib: float
    sam_placement: str | None
    dataloader_workers: int = 8
    agent_loop_workers: int = 8
    optimizer_bytes_per_param: float = 8.0
    """Optimiser state per trainable parameter: AdamW's two fp32 moments (8 B); ~0 for Adafactor."""
    logit_tokens_per_micro_batch: int | None = None
    """Tokens the LM head runs on per micro-batch: None = every token (verl); TRL passes
    ``logits_to_keep`` = the completion length, so only those get logits."""
    sharded: bool = True
    """FSDP gathers layers (verl); False for one process holding the whole model (TRL on one GPU)."""

    @classmethod
    def from_config(cls, cfg: Any, sam_gpu_gib: float, sam_placement: str | None) -> TrainShape:
        """Read from a composed verl config (OmegaConf). ``sam_placement`` None = SAM not used."""
        arr = cfg.actor_rollout_ref
        actor, rollout, ref, model = arr.actor, arr.rollout, arr.ref, arr.model
        lora = int(model.get("lora_rank", 0) or 0) or int((model.get("lora") or {}).get("rank", 0) or 0)
        return cls(
            n_gpus=int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes),
            tp=int(rollout.tensor_model_parallel_size),
            gpu_memory_utilization=float(rollout.gpu_memory_utilization),
            train_batch_size=int(cfg.data.train_batch_size),
            rollout_n=int(rollout.n),
            micro_batch=int(actor.ppo_micro_batch_size_per_gpu or 1),
            log_prob_micro_batch=int(rollout.log_prob_micro_batch_size_per_gpu or 1),
            seq_len=int(cfg.data.max_prompt_length) + int(cfg.data.max_response_length),
            max_model_len=int(
                rollout.get("max_model_len")
                or int(cfg.data.max_prompt_length) + int(cfg.data.max_response_length)
            ),
            use_dynamic_bsz=bool(actor.use_dynamic_bsz),
            max_token_len_per_gpu=int(actor.ppo_max_token_len_per_gpu),
            param_offload=bool(actor.fsdp_config.param_offload),
            optimizer_offload=bool(actor.fsdp_config.optimizer_offload),
            offload_policy=bool(actor.fsdp_config.get("offload_policy", False)),
            strategy=str(actor.strategy),
            model_dtype=str(actor.fsdp_config.model_dtype),
            ref_model_dtype=str(ref.fsdp_config.get("model_dtype", "fp32")),
            use_ref=bool(actor.use_kl_loss or cfg.algorithm.get("use_kl_in_reward", False)),
            gradient_checkpointing=bool(model.enable_gradient_checkpointing),
            lora_rank=lora,
            reward_workers=int(cfg.reward.num_workers),
            sam_gpu_gib=float(sam_gpu_gib),
            sam_placement=sam_placement,
            dataloader_workers=int(cfg.data.get("dataloader_num_workers", 8)),
            agent_loop_workers=int((rollout.get("agent") or {}).get("num_workers", 8) or 8),
        )


@dataclass
class MemoryEstimate:
    """Per-GPU peaks (GiB) of the two phases on the busiest GPU, the host total, and the parts."""

    gpu_train_gib: float
    gpu_rollout_gib: float
    host_gib: float
    kv_cache_gib: float
    kv_needed_gib: float
    parts: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def problems(self, gpu_gib: float, host_gib: float | None) -> list[str]:
        """Why the run would not fit on GPUs of ``gpu_gib`` and a host with ``host_gib`` free (None: skip)."""
        out: list[str] = []
        budget = FIT_MARGIN * gpu_gib
        if self.gpu_train_gib > budget:
            out.append(
                f"actor update needs ~{self.gpu_train_gib:.1f} GiB per GPU, more than {budget:.1f} of {gpu_gib:.0f} GiB "
                f"(parts: {self._fmt('train')}); use FSDP2 offload_policy, more GPUs, LoRA, or a smaller micro-batch"
            )
        if self.gpu_rollout_gib > budget:
            out.append(
                f"rollout needs ~{self.gpu_rollout_gib:.1f} GiB per GPU, more than {budget:.1f} of {gpu_gib:.0f} GiB "
                f"(parts: {self._fmt('rollout')}); lower actor_rollout_ref.rollout.gpu_memory_utilization or offload"
            )
        if self.kv_cache_gib <= 0:
            out.append(
                "vLLM's share leaves no KV cache after the weights: raise gpu_memory_utilization or the rollout "
                "tensor_model_parallel_size"
            )
        elif self.kv_cache_gib < self.parts.get("kv_one_sequence", 0.0):
            out.append(f"vLLM's KV cache (~{self.kv_cache_gib:.1f} GiB) cannot hold one full-length sequence")
        if host_gib is not None and self.host_gib > FIT_MARGIN * host_gib:
            out.append(
                f"host memory: ~{self.host_gib:.0f} GiB needed, {host_gib:.0f} GiB available "
                f"(parts: {self._fmt('host')}); offload less, use LoRA, or a machine with more RAM"
            )
        return out

    def _fmt(self, phase: str) -> str:
        return ", ".join(
            f"{k[len(phase) + 1 :]} {v:.1f}" for k, v in self.parts.items() if k.startswith(phase + ":")
        )

    def summary(self) -> str:
        return (
            f"per GPU: update ~{self.gpu_train_gib:.1f} GiB, rollout ~{self.gpu_rollout_gib:.1f} GiB "
            f"(vLLM KV cache ~{self.kv_cache_gib:.1f} GiB, ~{self.kv_needed_gib:.1f} GiB for all sequences at once); "
            f"host ~{self.host_gib:.0f} GiB"
        )


def _host_parts(
    shape: TrainShape, p: float, params_b: float, grads_b: float, adam_b: float, replicas: int
) -> dict[str, float]:
    """Host memory (GiB) by part: offloaded actor state, reference copy, processes, workers, the rank-0
    init transient (see the module docstring). ``params_b``/``grads_b``/``adam_b``: whole-model GiB."""
    n = max(1, shape.n_gpus)
    lora = shape.lora_rank > 0
    fsdp2_policy = shape.offload_policy and shape.strategy == "fsdp2"
    host: dict[str, float] = {}
    if fsdp2_policy:
        host["host:actor params+grads+adam"] = params_b + grads_b + adam_b
    else:
        host["host:actor params"] = params_b if shape.param_offload else 0.0
        host["host:actor grads"] = grads_b if shape.param_offload else 0.0
        host["host:adam"] = adam_b if shape.optimizer_offload else 0.0
    if shape.use_ref and not lora:
        host["host:reference model (pinned)"] = _bytes_per_param(shape.ref_model_dtype) * p / GIB
    if lora:
        host["host:vLLM weights while asleep"] = 2.0 * p / GIB * replicas
    # trainer workers (1 per GPU), vLLM (a server per replica + a worker per GPU), driver + TaskRunner, SAM
    procs = n + (replicas + n) + 2 + (1 if shape.sam_placement else 0)
    host["host:processes"] = procs * PROCESS_HOST_GIB
    host["host:reward workers"] = shape.reward_workers * REWARD_WORKER_HOST_GIB
    host["host:agent-loop workers"] = shape.agent_loop_workers * AGENT_LOOP_WORKER_HOST_GIB
    host["host:ray + transferqueue"] = RAY_SERVICE_HOST_GIB
    host["host:dataloader"] = shape.dataloader_workers * 0.5
    # rank 0's full HF copy exists only at init, before gradients and AdamW moments are allocated: it
    # adds to the peak only where it exceeds what those take later
    on_host_later = (
        (grads_b + adam_b)
        if fsdp2_policy
        else ((grads_b if shape.param_offload else 0.0) + (adam_b if shape.optimizer_offload else 0.0))
    )
    host["host:rank-0 init transient"] = max(0.0, params_b - on_host_later)
    return host


def estimate_memory(shape: TrainShape, model: ModelShape, gpu_gib: float) -> MemoryEstimate:
    """Estimate the memory of a run described by ``shape`` on GPUs of ``gpu_gib`` GiB (see module doc)."""
    n = max(1, shape.n_gpus)
    p = model.params
    lora = shape.lora_rank > 0
    mdt = _bytes_per_param(shape.model_dtype)
    # LoRA adapters on every linear of every layer: rank x (in + out) per matrix (~7 matrices per layer).
    trainable = (
        shape.lora_rank * model.layers * (4 * 2 * model.hidden + 3 * (model.hidden + model.ffn))
        if lora
        else p
    )
    params_b = mdt * p / GIB
    grads_b = mdt * trainable / GIB
    adam_b = shape.optimizer_bytes_per_param * trainable / GIB
    fsdp2_policy = shape.offload_policy and shape.strategy == "fsdp2"

    tokens = shape.max_token_len_per_gpu if shape.use_dynamic_bsz else shape.micro_batch * shape.seq_len
    per_token = model.hidden * 2.0 * model.layers if shape.gradient_checkpointing else 0.0
    layer_full = model.layer_activation_bytes_per_token * (
        1 if shape.gradient_checkpointing else model.layers
    )
    logit_tokens = (
        tokens if shape.logit_tokens_per_micro_batch is None else shape.logit_tokens_per_micro_batch
    )
    act = (
        tokens * (per_token + layer_full) + logit_tokens * model.vocab * LOGIT_BYTES_PER_TOKEN_VOCAB
    ) / GIB + VISION_ACTIVATION_GIB
    lp_tokens = (
        shape.max_token_len_per_gpu if shape.use_dynamic_bsz else shape.log_prob_micro_batch * shape.seq_len
    )
    lp_logit_tokens = lp_tokens if shape.logit_tokens_per_micro_batch is None else logit_tokens
    act_fwd = (lp_tokens * model.layer_activation_bytes_per_token + lp_logit_tokens * model.vocab * 6.0) / GIB
    # FSDP: the bf16 unit being computed + the prefetched one
    gathered = 2 * 2.0 * model.largest_unit_params / GIB if shape.sharded else 0.0
    sam = shape.sam_gpu_gib if shape.sam_placement == "shared_gpu" else 0.0

    parts: dict[str, float] = {}
    state_train = 0.0 if fsdp2_policy else (params_b + grads_b + adam_b) / n
    parts["train:actor state"] = state_train
    parts["train:gathered layers"] = gathered
    parts["train:activations"] = max(act, act_fwd)
    parts["train:sam"] = sam
    parts["train:cuda"] = CUDA_CONTEXT_GIB
    gpu_train = sum(v for k, v in parts.items() if k.startswith("train:"))

    resident = 0.0
    if not fsdp2_policy:
        resident += 0.0 if shape.param_offload else params_b / n
        resident += 0.0 if shape.optimizer_offload else adam_b / n
    vllm_share = shape.gpu_memory_utilization * gpu_gib
    parts["rollout:vllm share"] = vllm_share
    parts["rollout:actor resident"] = resident
    parts["rollout:sam"] = sam
    parts["rollout:cuda"] = CUDA_CONTEXT_GIB
    gpu_rollout = sum(v for k, v in parts.items() if k.startswith("rollout:"))

    weights_per_gpu = 2.0 * p / GIB / max(1, shape.tp)
    kv_cache = vllm_share - weights_per_gpu - VLLM_ACTIVATION_GIB
    replicas = max(1, n // max(1, shape.tp))
    seqs_per_replica = math.ceil(shape.train_batch_size * shape.rollout_n / replicas)
    kv_one = shape.max_model_len * model.kv_bytes_per_token / GIB / max(1, shape.tp)
    parts["kv_one_sequence"] = kv_one
    kv_needed = seqs_per_replica * shape.seq_len * model.kv_bytes_per_token / GIB / max(1, shape.tp)

    host = _host_parts(shape, p, params_b, grads_b, adam_b, replicas)
    parts.update(host)
    notes = [f"model: {model.params / 1e9:.2f} B parameters ({model.source})"]
    if shape.sam_placement == "shared_gpu":
        notes.append(f"SAM shares GPU 0 (+{sam:.1f} GiB there; the other GPUs have that much more room)")
    return MemoryEstimate(
        gpu_train_gib=gpu_train,
        gpu_rollout_gib=gpu_rollout,
        host_gib=sum(host.values()),
        kv_cache_gib=kv_cache,
        kv_needed_gib=kv_needed,
        parts=parts,
        notes=notes,
    )
