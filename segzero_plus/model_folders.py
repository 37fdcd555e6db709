"""Loading a Hugging Face model folder (policy checkpoints) without running code from it.

- No remote code: ``trust_remote_code=False``, so ``*.py`` files in the folder are never imported.
- Weights from safetensors when the folder has any (``use_safetensors=True``: a ``*.bin`` pickle beside
  them is never opened; vLLM gets ``load_format="safetensors"``).
- A folder with PyTorch ``*.bin`` pickles only is read with torch's weights-only unpickler
  (``weights_only=True``), which refuses a pickle that asks for anything but tensors and plain
  containers; the refusal is reported as :class:`UnsafeCheckpointError`.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from segzero_plus.errors import UserError

NO_REMOTE_CODE: dict[str, Any] = {"trust_remote_code": False}
"""kwargs for every ``from_pretrained`` of a processor, tokenizer or config."""


class UnsafeCheckpointError(UserError):
    """A weight file that asks the unpickler for more than tensors (it could run code): refused unread."""


def has_safetensors(folder: str | Path) -> bool:
    """Whether ``folder`` holds safetensors weights (one file or shards)."""
    return any(Path(folder).glob("*.safetensors"))


def model_load_kwargs(folder: str | Path) -> dict[str, Any]:
    """kwargs for ``<ModelClass>.from_pretrained(folder, ...)`` that never unpickle code (see the module
    docstring)."""
    return {**NO_REMOTE_CODE, "use_safetensors": has_safetensors(folder), "weights_only": True}


def vllm_load_format(folder: str | Path) -> str:
    """vLLM's ``load_format`` for ``folder``: "safetensors" when it has them, else "pt" (vLLM reads
    ``*.bin`` files with ``torch.load(weights_only=True)``)."""
    return "safetensors" if has_safetensors(folder) else "pt"


def load_pretrained_model(model_class: Any, folder: str | Path, **kwargs: Any) -> Any:
    """``model_class.from_pretrained(folder, **kwargs)`` with :func:`model_load_kwargs`; a weight pickle
    refused by the weights-only unpickler raises :class:`UnsafeCheckpointError` naming the folder."""
    try:
        return model_class.from_pretrained(str(folder), **model_load_kwargs(folder), **kwargs)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{folder}: a PyTorch .bin weight file asks for more than tensors ({_refusal(exc)}), so it was "
            "refused unread (it could run code); use a safetensors checkpoint (save_pretrained's default)"
        ) from None


def _refusal(exc: Exception) -> str:
    """The line of torch's weights-only error that names what the pickle asked for."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
    return (named or lines or [type(exc).__name__])[0][:200]
