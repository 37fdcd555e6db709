"""Generation backends behind one interface: Hugging Face transformers (CPU/GPU) and vLLM (GPU).

Both present a sample exactly as training does: the prompt template by name (system turn + user turn
``<image>`` followed by the template text, split into a structured content list the way verl's
``RLHFDataset`` does), the image already resized to the MODEL frame by the caller (840x840 squash by
default), the Qwen2.5-VL chat template with the generation prompt, greedy decoding by default.

- :class:`TransformersBackend`: ``AutoProcessor`` + ``Qwen2_5_VLForConditionalGeneration``; a batch is one
  ``generate`` call with LEFT padding (right padding changes the results of a decoder-only model).
  Both backends load the folder without running code from it (:mod:`segzero_plus.model_folders`).
- :class:`VllmBackend`: ``vllm.LLM(...).generate`` with ``multi_modal_data``; vLLM schedules the batch
  itself (continuous batching); tensor parallel through ``tensor_parallel_size``, data parallel through
  :mod:`segzero_plus.evaluation.pools` (one backend per Ray actor). vLLM is imported lazily.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from segzero_plus.devices import resolve_device
from segzero_plus.errors import UserError
from segzero_plus.model_folders import NO_REMOTE_CODE, load_pretrained_model, vllm_load_format
from segzero_plus.prompts import get_template

BACKENDS: tuple[str, ...] = ("transformers", "vllm", "replay")


class BackendError(UserError, RuntimeError):
    """A backend that cannot be built (missing package, missing or unreadable model folder)."""


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings shared by all backends. ``temperature`` 0 means greedy."""

    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


@dataclass
class Generation:
    """One response: decoded text (special tokens removed) and token counts."""

    text: str
    n_prompt_tokens: int
    n_new_tokens: int


class GenerationBackend(Protocol):
    """What the evaluator needs from a backend."""

    name: str

    def generate(self, images: Sequence[np.ndarray], queries: Sequence[str]) -> list[Generation]:
        """One response per (MODEL-frame (H, W, 3) uint8 image, query) pair, in input order."""
        ...


def hf_messages(template_name: str, query: str, image: Any = None) -> list[dict[str, Any]]:
    """The chat messages of ``query`` in Hugging Face's structured form, as verl builds them in training.

    The template's ``"<image>" + text`` user content is split on ``<image>`` into
    ``[{"type": "image"[, "image": image]}, {"type": "text", "text": text}]``; the system turn stays a string.
    """
    out: list[dict[str, Any]] = []
    for message in get_template(template_name).messages(query):
        content = message["content"]
        if "<image>" not in content:
            out.append({"role": message["role"], "content": content})
            continue
        parts: list[dict[str, Any]] = []
        for seg in (s for s in re.split("(<image>)", content) if s != ""):
            if seg == "<image>":
                parts.append({"type": "image", "image": image} if image is not None else {"type": "image"})
            else:
                parts.append({"type": "text", "text": seg})
        out.append({"role": message["role"], "content": parts})
    return out


def _check_model_dir(model: str | Path) -> Path:
    path = Path(model)
    if not path.is_dir():
        raise BackendError(f"model folder not found: {path}")
    if not (path / "config.json").is_file():
        raise BackendError(f"model folder {path} has no config.json (not a Hugging Face model folder)")
    return path


class _ChatModelBackend:
    """What the Hugging Face model backends share: the model folder and template checks, the settings and
    the chat prompt formatted by the model's processor."""

    template: str
    settings: GenerationSettings
    processor: Any

    def _setup(self, model: str | Path, template: str, settings: GenerationSettings | None) -> Path:
        """Check the model folder and the template name (fail early), keep both settings; the folder."""
        path = _check_model_dir(model)
        get_template(template)  # fail early on a bad name
        self.template = template
        self.settings = settings or GenerationSettings()
        return path

    def prompt_text(self, query: str) -> str:
        """The full chat-formatted prompt string (image placeholders included) for ``query``."""
        return self.processor.apply_chat_template(
            hf_messages(self.template, query), tokenize=False, add_generation_prompt=True
        )


def _pil_batch(images: Sequence[np.ndarray], queries: Sequence[str]) -> list[Any]:
    """PIL images of a generation batch, after checking that there is one image per query."""
    from PIL import Image

    if len(images) != len(queries):
        raise ValueError(f"{len(images)} images for {len(queries)} queries")
    return [Image.fromarray(np.ascontiguousarray(im)) for im in images]


def quiet_transformers() -> None:
    """Turn off transformers' weight-loading progress bars (CLI output stays readable)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


class TransformersBackend(_ChatModelBackend):
    """Batched ``generate`` with a Qwen2.5-VL model (``Qwen2_5_VLForConditionalGeneration``), LEFT padding.

    Args:
        model: Hugging Face model folder (the tiny test model or a trained checkpoint).
        template: prompt template name (``segzero_plus.prompts``).
        settings: decoding settings (greedy by default).
        device: "auto", "cpu", "cuda", "cuda:1" ...
        dtype: "auto" (bf16 on CUDA, fp32 on CPU), "bfloat16", "float16" or "float32".
    """

    name = "transformers"

    def __init__(
        self,
        model: str | Path,
        template: str = "negative_point",
        settings: GenerationSettings | None = None,
        device: str = "auto",
        dtype: str = "auto",
    ) -> None:
        import torch
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        path = self._setup(model, template, settings)
        self.device = resolve_device(device)
        if dtype == "auto":
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        try:
            self.processor = AutoProcessor.from_pretrained(path, **NO_REMOTE_CODE)
            self.model = load_pretrained_model(
                Qwen2_5_VLForConditionalGeneration, path, dtype=getattr(torch, dtype)
            )
        except Exception as exc:  # truncated weights, a broken config: loaders raise many types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise BackendError(
                f"cannot load the model in {path} ({type(exc).__name__}: {first}); check or re-download it"
            ) from exc
        self.model.to(self.device).eval()
        tok = self.processor.tokenizer
        tok.padding_side = "left"  # decoder-only batching: pad on the left, always
        self._eos = tok.convert_tokens_to_ids("<|im_end|>")
        self._pad = tok.pad_token_id if tok.pad_token_id is not None else self._eos

    def generate(self, images: Sequence[np.ndarray], queries: Sequence[str]) -> list[Generation]:
        import torch

        pil = _pil_batch(images, queries)
        if not pil:
            return []
        texts = [self.prompt_text(q) for q in queries]
        inputs = self.processor(
            text=texts, images=pil, padding=True, padding_side="left", return_tensors="pt"
        )
        inputs = inputs.to(self.device)
        s = self.settings
        kwargs: dict[str, Any] = {
            "max_new_tokens": s.max_new_tokens,
            "eos_token_id": self._eos,
            "pad_token_id": self._pad,
        }
        if s.temperature > 0:
            torch.manual_seed(s.seed)
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        new = out[:, prompt_len:].cpu()
        n_prompt = inputs["attention_mask"].sum(dim=1).tolist()
        results = []
        for i in range(len(texts)):
            ids = new[i]
            valid = ids != self._pad
            stop = (ids == self._eos).nonzero()
            n_new = int(stop[0, 0]) + 1 if len(stop) else int(valid.sum())
            text = self.processor.tokenizer.decode(ids[:n_new], skip_special_tokens=True)
            results.append(Generation(text=text, n_prompt_tokens=int(n_prompt[i]), n_new_tokens=n_new))
        return results


class VllmBackend(_ChatModelBackend):
    """vLLM offline inference (GPU): ``LLM.generate`` with ``{"prompt", "multi_modal_data": {"image"}}``.

    Args:
        model: Hugging Face model folder.
        template: prompt template name.
        settings: decoding settings (greedy by default).
        tensor_parallel_size: GPUs per model replica.
        gpu_memory_utilization: vLLM's share of each GPU (leave room for SAM2 in the same process).
        max_model_len: context length reserved per sequence (prompt ~950 tokens at 840x840 + response).
        max_num_seqs: most sequences vLLM runs at once.
        dtype: vLLM dtype ("auto", "bfloat16", ...).
        enforce_eager: skip CUDA graph capture (faster start-up, slower decoding).
    """

    name = "vllm"

    def __init__(
        self,
        model: str | Path,
        template: str = "negative_point",
        settings: GenerationSettings | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.7,
        max_model_len: int = 4096,
        max_num_seqs: int = 128,
        dtype: str = "auto",
        enforce_eager: bool = False,
    ) -> None:
        path = self._setup(model, template, settings)
        try:
            import vllm
        except ImportError as exc:
            raise BackendError("the vllm backend needs the `vllm` package (GPU profile, see README)") from exc
        from transformers import AutoProcessor

        self.processor = AutoProcessor.from_pretrained(path, **NO_REMOTE_CODE)
        self.llm = vllm.LLM(
            model=str(path),
            load_format=vllm_load_format(path),
            **NO_REMOTE_CODE,
            tensor_parallel_size=int(tensor_parallel_size),
            gpu_memory_utilization=float(gpu_memory_utilization),
            max_model_len=int(max_model_len),
            max_num_seqs=int(max_num_seqs),
            dtype=dtype,
            seed=self.settings.seed,
            enforce_eager=enforce_eager,
            limit_mm_per_prompt={"image": 1},
        )
        s = self.settings
        self.sampling = vllm.SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p if s.temperature > 0 else 1.0,
            max_tokens=s.max_new_tokens,
            seed=s.seed if s.temperature > 0 else None,
            skip_special_tokens=True,
        )

    def generate(self, images: Sequence[np.ndarray], queries: Sequence[str]) -> list[Generation]:
        requests = [
            {"prompt": self.prompt_text(q), "multi_modal_data": {"image": image}}
            for image, q in zip(_pil_batch(images, queries), queries, strict=True)
        ]
        outputs = self.llm.generate(requests, self.sampling, use_tqdm=False)
        return [
            Generation(
                text=o.outputs[0].text,
                n_prompt_tokens=len(o.prompt_token_ids or ()),
                n_new_tokens=len(o.outputs[0].token_ids),
            )
            for o in outputs
        ]


class ReplayBackend:
    """Replays recorded responses by sample id instead of generating (re-score a run's answers with another
    SAM checkpoint or with diagnostics, without the policy model). A missing id answers "" (a failure).

    Args:
        responses: ``{sample id: response}``, or a JSONL file of ``{"id", "response"}`` lines (an
            evaluation run's samples.jsonl works).
    """

    name = "replay"
    needs_ids = True

    def __init__(self, responses: dict[str, str] | str | Path) -> None:
        if isinstance(responses, dict):
            self.responses = dict(responses)
            return
        path = Path(responses)
        if not path.is_file():
            raise BackendError(f"responses file not found: {path}")
        import json

        self.responses = {}
        try:
            lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
        except OSError as exc:
            raise BackendError(f"cannot read the responses file {path}: {exc.strerror}") from None
        for line in lines:
            if line.strip():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a torn or corrupt line: its sample has no response (counted unparseable)
                if isinstance(rec, dict) and rec.get("id") is not None and rec.get("response") is not None:
                    self.responses[str(rec["id"])] = str(rec["response"])

    def generate(
        self, images: Sequence[np.ndarray], queries: Sequence[str], ids: Sequence[str] | None = None
    ) -> list[Generation]:
        if ids is None or len(ids) != len(queries):
            raise ValueError("the replay backend needs the sample ids")
        return [Generation(self.responses.get(str(i), ""), 0, 0) for i in ids]


def make_backend(
    name: str,
    model: str | Path,
    template: str = "negative_point",
    settings: GenerationSettings | None = None,
    **options: Any,
) -> GenerationBackend:
    """Build the backend called ``name`` ("transformers", "vllm" or "replay"); ``options`` go to its
    constructor (unknown options for that backend are ignored, so one config can serve all).
    For "replay", ``model`` is the responses file."""
    import inspect

    if name == "replay":
        return ReplayBackend(model)
    classes = {"transformers": TransformersBackend, "vllm": VllmBackend}
    if name not in classes:
        raise BackendError(f"unknown backend {name!r}; choose one of {sorted(classes)}")
    cls = classes[name]
    accepted = set(inspect.signature(cls.__init__).parameters)
    t0 = time.perf_counter()
    backend = cls(model, template, settings, **{k: v for k, v in options.items() if k in accepted})
    backend.load_seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    return backend
