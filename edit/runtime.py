"""The process's runtime: torch threads and determinism (seeds, deterministic algorithms) from the
``runtime`` section of the params; every stage calls :func:`setup_runtime` first."""
from __future__ import annotations

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
