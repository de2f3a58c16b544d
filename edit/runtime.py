"""The process's runtime: torch threads and determinism (seeds, deterministic algorithms) from the
``runtime`` section of the params; every stage calls :func:`setup_runtime` first. Also the optional
mixed precision of training and evaluation (``runtime.autocast``: null, the default, keeps float32;
``bfloat16`` runs the training forward passes under :func:`torch.autocast`, see :func:`autocast_context`;
``runtime.eval_autocast`` does the same for evaluation)."""
from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch
from transformers import set_seed


def setup_runtime(params: dict, seed: int | None = None) -> None:
    """Threads and determinism for this process, from the ``runtime`` section."""
    threads = int(params["runtime"]["torch_threads"])
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        set_seed(seed)


#: values of ``runtime.autocast`` besides null (float32, no autocast)
AUTOCAST_DTYPES = ("bfloat16",)


def autocast_setting(params: dict, key: str = "autocast") -> str | None:
    """``runtime.<key>`` of ``params`` (None when absent: float32): ``autocast`` for training,
    ``eval_autocast`` for generation and scoring (measured: bfloat16 autocast speeds up LoRA training
    but slows greedy decoding of SmolLM2 down, bench/smollm2_speed.py)."""
    value = (params.get("runtime") or {}).get(key)
    if value is not None and value not in AUTOCAST_DTYPES:
        raise ValueError(f"runtime.{key} must be null or one of {AUTOCAST_DTYPES}, got {value!r}")
    return value


def autocast_context(dtype: str | None, device_type: str = "cpu"):
    """A context in which forward passes run in ``dtype`` (:func:`torch.autocast`; on a CPU with
    AVX-512 BF16 about 1.7x the float32 training throughput of SmolLM2-135M, bench/smollm2_speed.py)
    or, for None, a no-op context (float32). Weights, gradients and optimizer states stay float32
    either way. Deterministic like float32: the same seed gives the same bytes."""
    if dtype is None:
        return contextlib.nullcontext()
    if dtype not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast must be None or one of {AUTOCAST_DTYPES}, got {dtype!r}")
    return torch.autocast(device_type=device_type, dtype=getattr(torch, dtype))
