"""A trained student made cheaper to run for evaluation under bfloat16 autocast (``runtime.eval_autocast``).

Under :func:`torch.autocast` every linear layer casts its float32 weight to bfloat16 at every call,
and a LoRA-wrapped layer runs two more small matrix products per call; in greedy decoding, one call
per layer per new token, those casts and products cost about a third of the time
(``bench/smollm2_speed.py``, "inference model"). :func:`inference_model` does that work once:

1. the LoRA adapters are merged into the base weights (peft ``merge_and_unload``, in float32);
2. every linear layer's weight is stored in the autocast dtype, the very values autocast would
   cast it to at each call (round to nearest even), so the products are the same as under
   autocast with the merged float32 model (``tests/test_inference.py``);
3. an output layer that shares its weight with the input embedding gets its own copy in the
   autocast dtype: autocast leaves embedding lookups in float32, and so does this.

Merging changes the float32 sums (W + BA rounded once, instead of W x and B(A x) apart), so greedy
generations can differ a little from the unmerged model's; a profile that sets ``eval_autocast``
is evaluated this way in every row. Without autocast (float32) the model is returned unchanged.
"""
from __future__ import annotations

import torch
from peft import PeftModel

from edit.runtime import AUTOCAST_DTYPES


def merge_adapters(model):
    """``model`` with its LoRA adapters merged into the base weights (a plain model); a model
    without adapters is returned as it is."""
    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def cast_linear_weights(model, dtype: torch.dtype) -> int:
    """Store every ``nn.Linear`` weight of ``model`` in ``dtype`` (biases too), in place, for
    inference only (nothing may train it afterwards). An output layer tied to the input embedding is
    untied first: the embedding keeps its dtype. Returns the number of weight elements cast."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    n = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if module is head and embed is not None and module.weight is embed.weight:
            module.weight = torch.nn.Parameter(module.weight.detach().to(dtype), requires_grad=False)
        else:
            module.weight.data = module.weight.data.to(dtype)
            module.weight.requires_grad_(False)
        if module.bias is not None:
            module.bias.data = module.bias.data.to(dtype)
            module.bias.requires_grad_(False)
        n += module.weight.numel()
    return n


def inference_model(model, autocast: str | None):
    """The model to generate with under ``autocast`` (``runtime.eval_autocast``): None returns
    ``model`` unchanged (float32); ``"bfloat16"`` merges its LoRA adapters and stores its linear
    weights in bfloat16 (module docstring). The result is in eval mode and must not be trained."""
    if autocast is None:
        return model
    if autocast not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast must be None or one of {AUTOCAST_DTYPES}, got {autocast!r}")
    model = merge_adapters(model)
    cast_linear_weights(model, getattr(torch, autocast))
    return model.eval()
