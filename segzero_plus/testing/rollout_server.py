"""A stand-in for verl's vLLM rollout server that runs on CPU: the tiny Qwen2.5-VL serves verl's
``LLMServerClient`` through verl's own ``GlobalRequestLoadBalancer``.

verl 0.9.1's agent loop asks its server for tokens with ``server.generate.remote(request_id=,
prompt_ids=, sampling_params=, image_data=, video_data=, ...)`` and expects a
``verl.workers.rollout.replica.TokenOutput`` (``verl/workers/rollout/llm_server.py``,
``LLMServerClient.generate``). :class:`TinyQwenRolloutServer` answers that call with
``Qwen2_5_VLForConditionalGeneration.generate`` on the prompt ids the agent loop built and the images it
extracted, so the rest of verl's streaming path (agent loop, TransferQueue, reward workers) runs as in
training.

Scripted replies: ``scripts`` maps an image digest (:func:`image_digest` of the RGB pixels the agent loop
passes) to a list of answers; the k-th request for that image is decoded by the model under
``prefix_allowed_tokens_fn`` to exactly the k-th answer's tokens (then EOS), later requests sample
freely. Tests use this to send known answers (ground truth, shifted, malformed) through real generation.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def image_digest(image: Any) -> str:
    """sha1 of an image's RGB pixels and shape (PIL image or (H, W, 3) array)."""
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB") if hasattr(image, "convert") else image))
    return hashlib.sha1(repr(rgb.shape).encode() + rgb.tobytes()).hexdigest()


class TinyQwenRolloutServer:
    """Ray actor body (wrap with ``ray.remote``): ``generate`` with verl's rollout-server signature.

    Args:
        model_dir: a Qwen2.5-VL folder (the tiny one in tests).
        scripts: image digest -> answers to force, in request order (see module docstring).
        max_new_tokens: cap of a free (unscripted) generation.
        seed: torch seed of free sampling.
    """

    def __init__(
        self,
        model_dir: str,
        scripts: Mapping[str, Sequence[str]] | None = None,
        max_new_tokens: int = 24,
        seed: int = 0,
    ) -> None:
        import torch
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        torch.set_num_threads(1)
        torch.manual_seed(seed)
        self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir).eval()
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.tokenizer = self.processor.tokenizer
        self.scripts = {k: list(v) for k, v in (scripts or {}).items()}
        self.max_new_tokens = int(max_new_tokens)
        self._served: dict[str, int] = defaultdict(int)
        self.requests = 0

    def _forced_ids(self, image_data: Sequence[Any] | None) -> list[int] | None:
        """Token ids of the next scripted answer for the request's first image (None: sample freely)."""
        if not image_data:
            return None
        key = image_digest(image_data[0])
        answers = self.scripts.get(key, [])
        k = self._served[key]
        self._served[key] += 1
        if k >= len(answers):
            return None
        ids = self.tokenizer(answers[k], add_special_tokens=False)["input_ids"]
        return [*ids, self.tokenizer.eos_token_id]

    def generate(
        self,
        request_id: str,
        prompt_ids: list[int],
        sampling_params: Mapping[str, Any],
        image_data: Sequence[Any] | None = None,
        video_data: Any = None,
        **kwargs: Any,
    ) -> Any:
        """verl's rollout-server call: the response token ids for ``prompt_ids`` (+ ``image_data``)."""
        import torch
        from verl.workers.rollout.replica import TokenOutput

        self.requests += 1
        input_ids = torch.tensor([list(prompt_ids)])
        inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if image_data:
            vision = self.processor.image_processor(images=list(image_data), return_tensors="pt")
            inputs.update(pixel_values=vision["pixel_values"], image_grid_thw=vision["image_grid_thw"])
        forced = self._forced_ids(image_data)
        options: dict[str, Any] = {"pad_token_id": self.tokenizer.pad_token_id}
        if forced is None:
            options.update(do_sample=True, temperature=1.0, max_new_tokens=self.max_new_tokens)
        else:
            start = input_ids.shape[1]

            def only_the_script(_batch: int, sequence: torch.Tensor) -> list[int]:
                position = sequence.shape[-1] - start
                return [forced[min(position, len(forced) - 1)]]

            options.update(
                do_sample=False, max_new_tokens=len(forced), prefix_allowed_tokens_fn=only_the_script
            )
        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        tokens = output[0, input_ids.shape[1] :].tolist()
        return TokenOutput(token_ids=tokens, stop_reason="completed")

    def stats(self) -> dict[str, int]:
        """Requests served so far."""
        return {"requests": self.requests}
