"""Text generation with the student: batched greedy decoding and seeded sampling (for
self-consistency), each stopping at EOS or at the end of the answer sentence.

The answer sentence is the one that starts at the first answer phrase ("the answer is",
case-insensitive, as in :mod:`edit.scoring`) and ends at the first newline or the first "." that
is followed by a character other than a digit (so "3.5." ends after the second "."; a "." at the
very end of the text may still be the decimal point of a number and does not end it yet). The
same rule decides when a row stops (:class:`AnswerSentenceStop`, checked per row while decoding)
and where its text is cut (:func:`trim_after_answer`), so a row stopped early has exactly the
text that a full-length generation would have after trimming.

Backends: ``"hf"`` (transformers ``generate`` with a KV cache and LEFT padding) and ``"vllm"``
(used only when ``vllm`` is importable; ``model`` is then a ``vllm.LLM``; its outputs are trimmed
with the same rule).
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass, fields
from typing import Mapping, Sequence

import torch
from tqdm.auto import tqdm
from transformers import StaticCache, StoppingCriteria, StoppingCriteriaList
from transformers.cache_utils import StaticLayer

#: An answer phrase followed by at least one more character (so "the answer is" at the end of a
#: partial generation is not taken for "the answer issue").
ANSWER_PHRASE_RE = re.compile(r"the\s+answer\s+is(?=\W)", re.IGNORECASE)
#: The end of the answer sentence: a newline, or a "." followed by a character that is not a digit.
_SENTENCE_END_RE = re.compile(r"\n|\.(?=\D)")

BACKENDS = ("hf", "vllm")


# ---------------------------------------------------------------- the answer sentence


def answer_end(text: str) -> int | None:
    """The index just after the answer sentence of ``text`` (after its final "."; at the newline
    that ends it, the newline excluded), or None when no answer sentence has ended yet."""
    m = ANSWER_PHRASE_RE.search(text)
    if m is None:
        return None
    e = _SENTENCE_END_RE.search(text, m.end())
    if e is None:
        return None
    return e.end() if e.group(0) == "." else e.start()


def trim_after_answer(text: str) -> str:
    """``text`` cut just after its answer sentence; unchanged when it has none that has ended."""
    end = answer_end(text)
    return text if end is None else text[:end]


class AnswerSentenceStop(StoppingCriteria):
    """Stops each row of a batch, independently, once its NEW text (after ``prompt_len`` tokens)
    holds a finished answer sentence (:func:`answer_end`).

    Each call looks only at the tokens added since the previous call: their texts are appended to
    a per-row buffer (a per-token text cache; special tokens count as ""), and the phrase and the
    sentence end are searched near the end of the buffer, so a step costs O(batch) regardless of
    how long the rows are. A candidate stop is confirmed on the exact decoding of the row's new
    ids, so the decision agrees with :func:`trim_after_answer` on the final text.
    """

    _LOOKBACK = 64  # characters searched again before new text (the phrase spans < 64 chars)

    def __init__(self, tokenizer, prompt_len: int):
        self.tokenizer = tokenizer
        self.prompt_len = int(prompt_len)
        self._piece: dict[int, str] = {}
        self._special = set(tokenizer.all_special_ids)
        self._seen = self.prompt_len
        self._buf: list[str] = []
        self._phrase_end: list[int | None] = []
        self._done: list[bool] = []

    def _text(self, tid: int) -> str:
        s = self._piece.get(tid)
        if s is None:
            s = "" if tid in self._special else self.tokenizer.decode([tid])
            self._piece[tid] = s
        return s

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        n, length = input_ids.shape
        if not self._buf:
            self._buf = [""] * n
            self._phrase_end = [None] * n
            self._done = [False] * n
        new = input_ids[:, self._seen:length].tolist()
        self._seen = length
        for r in range(n):
            if self._done[r]:
                continue
            before = len(self._buf[r])
            self._buf[r] += "".join(self._text(t) for t in new[r])
            buf = self._buf[r]
            if self._phrase_end[r] is None:
                m = ANSWER_PHRASE_RE.search(buf, max(0, before - self._LOOKBACK))
                if m is None:
                    continue
                self._phrase_end[r] = m.end()
            if _SENTENCE_END_RE.search(buf, max(self._phrase_end[r], before - 1)) is None:
                continue
            exact = self.tokenizer.decode(input_ids[r, self.prompt_len:], skip_special_tokens=True)
            if answer_end(exact) is not None:
                self._done[r] = True
        return torch.tensor(self._done, dtype=torch.bool, device=input_ids.device)


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class GenConfig:
    """How to generate (the ``eval`` params section maps onto it, see :meth:`from_params`).

    max_new_tokens - new tokens per sample at most;
    batch_size     - rows per forward pass (for sampling: prompt x sample rows);
    num_samples    - 1: greedy decoding; k > 1: self-consistency with k sampled outputs per prompt;
    temperature, top_p, seed - the sampling settings (used only when num_samples > 1);
    stop_at_answer - stop each row at the end of its answer sentence and trim the text there;
    backend        - "hf" (transformers) or "vllm" (only when vllm is installed);
    cache          - the KV cache of the hf backend: "auto", "static" or "dynamic" (see generate).
    """

    max_new_tokens: int = 400
    batch_size: int = 32
    num_samples: int = 1
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    stop_at_answer: bool = True
    backend: str = "hf"
    cache: str = "auto"

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"gen_cfg.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"gen_cfg.batch_size must be >= 1, got {self.batch_size}")
        if self.num_samples < 1:
            raise ValueError(f"gen_cfg.num_samples must be >= 1, got {self.num_samples}")
        if self.num_samples > 1 and not self.temperature > 0:
            raise ValueError(f"gen_cfg.temperature must be > 0 for sampling, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"gen_cfg.top_p must be in (0, 1], got {self.top_p}")
        if self.backend not in BACKENDS:
            raise ValueError(f"gen_cfg.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.cache not in CACHES:
            raise ValueError(f"gen_cfg.cache must be one of {CACHES}, got {self.cache!r}")

    @classmethod
    def from_params(cls, cfg: "GenConfig | Mapping | None" = None, **overrides) -> "GenConfig":
        """A GenConfig from a GenConfig, a mapping such as the ``eval`` params section (unknown
        keys such as ``suites`` are ignored; a ``self_consistency: {k, temperature, top_p, seed}``
        sub-section is read too), or None (the defaults); ``overrides`` win."""
        if isinstance(cfg, GenConfig):
            base = asdict(cfg)
        else:
            cfg = dict(cfg or {})
            sc = cfg.pop("self_consistency", None) or {}
            if "k" in sc:
                cfg.setdefault("num_samples", sc["k"])
            for key in ("temperature", "top_p", "seed"):
                if key in sc:
                    cfg.setdefault(key, sc[key])
            names = {f.name for f in fields(cls)}
            base = {k: v for k, v in cfg.items() if k in names}
        base.update(overrides)
        types = {f.name: f.type for f in fields(cls)}
        conv = {"int": int, "float": float, "bool": bool, "str": str}
        return cls(**{k: conv[types[k]](v) if types[k] in conv else v for k, v in base.items()})


# ---------------------------------------------------------------- generation


CACHES = ("auto", "static", "dynamic")


class _CastStaticLayer(StaticLayer):
    """A static cache layer that stores keys and values in ``dtype`` (the autocast dtype): under
    bfloat16 autocast the attention then reads half the bytes of a float32 cache."""

    def __init__(self, max_cache_len: int, dtype: torch.dtype, **kwargs):
        super().__init__(max_cache_len, **kwargs)
        self.store_dtype = dtype

    def lazy_initialization(self, key_states, value_states):
        super().lazy_initialization(key_states.to(self.store_dtype), value_states.to(self.store_dtype))

    def update(self, key_states, value_states, *args, **kwargs):
        return super().update(key_states.to(self.store_dtype), value_states.to(self.store_dtype), *args, **kwargs)


def _autocast_static_cache(config, max_cache_len: int, dtype: torch.dtype):
    """A static KV cache of ``max_cache_len`` positions stored in ``dtype``, or None when the model
    has layers other than plain full-attention ones (sliding windows and the like keep the default)."""
    cache = StaticCache(config=config, max_cache_len=max_cache_len)
    if any(type(layer) is not StaticLayer for layer in cache.layers):
        return None
    cache.layers = [_CastStaticLayer(max_cache_len, dtype) for _ in cache.layers]
    return cache


def _cache_kwargs(cache: str, rows: int, device: torch.device, config=None, max_cache_len: int | None = None) -> dict:
    """``generate`` keyword arguments for the KV cache. ``"auto"``: a static (preallocated) cache
    for batches of several rows on the CPU, where growing a dynamic cache by concatenation costs
    more than the model itself (measured: bench/generation_speed.py), else a dynamic one. Under
    bfloat16 autocast (``runtime.eval_autocast``) a static cache of the model ``config`` stores its
    keys and values in bfloat16 (bench/smollm2_speed.py). Never compiled (``disable_compile``):
    shapes vary from batch to batch."""
    if cache not in CACHES:
        raise ValueError(f"cache must be one of {CACHES}, got {cache!r}")
    static = cache == "static" or (cache == "auto" and rows > 1 and device.type == "cpu")
    if not static:
        return {"disable_compile": True}
    if config is not None and max_cache_len and torch.is_autocast_enabled(device.type):
        dtype = torch.get_autocast_dtype(device.type)
        if dtype == torch.bfloat16:
            kv = _autocast_static_cache(config, max_cache_len, dtype)
            if kv is not None:
                return {"cache": kv, "disable_compile": True}
    return {"cache_implementation": "static", "disable_compile": True}


def _hf_batches(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int,
                show_progress: bool, stop_at_answer: bool, sampling: dict | None, desc: str,
                cache: str = "auto") -> list[str]:
    """The new text of every prompt (in the order of ``prompts``), ``batch_size`` rows at a time,
    longest prompts first, LEFT padded."""
    model.eval()
    old_side = tokenizer.padding_side
    old_pad = tokenizer.pad_token
    eos_id = tokenizer.eos_token_id
    try:
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        pad_id = tokenizer.pad_token_id
        lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
        out: list[str | None] = [None] * len(prompts)
        device = getattr(model, "device", torch.device("cpu"))
        starts = range(0, len(order), batch_size)
        decode_kw = {"do_sample": False}
        rng = contextlib.nullcontext()
        if sampling is not None:
            decode_kw = {"do_sample": True, "temperature": sampling["temperature"], "top_p": sampling["top_p"],
                         "top_k": 0}
            # a private random stream: seeded here, the caller's global RNG state is left as it was
            rng = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
        with rng:
            if sampling is not None:
                torch.manual_seed(sampling["seed"])
            for s in tqdm(starts, desc=desc, disable=not show_progress, total=len(starts)):
                idx = order[s: s + batch_size]
                enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                                add_special_tokens=False)
                enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
                prompt_len = enc["input_ids"].shape[1]
                stops = StoppingCriteriaList([AnswerSentenceStop(tokenizer, prompt_len)]) if stop_at_answer else None
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    num_beams=1,
                    pad_token_id=pad_id,
                    eos_token_id=eos_id,
                    stopping_criteria=stops,
                    **decode_kw,
                    **_cache_kwargs(cache, len(idx), device, getattr(model, "config", None),
                                    prompt_len + max_new_tokens),
                )
                texts = tokenizer.batch_decode(gen[:, prompt_len:], skip_special_tokens=True)
                for i, t in zip(idx, texts):
                    out[i] = trim_after_answer(t) if stop_at_answer else t
        return out  # type: ignore[return-value]
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None and tokenizer.pad_token is not None:
            tokenizer.pad_token = None


def vllm_available() -> bool:
    """Whether the optional vLLM backend can be used here."""
    try:
        import vllm  # noqa: F401
    except Exception:
        return False
    return True


def _vllm_generate(llm, prompts: Sequence[str], max_new_tokens: int, n: int, sampling: dict | None,
                   stop_at_answer: bool) -> list[list[str]]:
    """``n`` outputs per prompt from a ``vllm.LLM`` (greedy when ``sampling`` is None)."""
    if not vllm_available():
        raise RuntimeError("backend='vllm' needs the vllm package, which is not installed; use backend='hf'")
    from vllm import SamplingParams

    if sampling is None:
        sp = SamplingParams(n=1, temperature=0.0, max_tokens=max_new_tokens)
    else:
        sp = SamplingParams(n=n, temperature=sampling["temperature"], top_p=sampling["top_p"],
                            seed=sampling["seed"], max_tokens=max_new_tokens)
    results = llm.generate(list(prompts), sp, use_tqdm=False)
    out = []
    for p, res in zip(prompts, results):
        if getattr(res, "prompt", p) != p:  # vLLM keeps input order; check rather than assume
            raise RuntimeError("vLLM returned outputs in another order than its prompts")
        texts = [o.text for o in res.outputs]
        out.append([trim_after_answer(t) if stop_at_answer else t for t in texts])
    return out


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 32,
             show_progress=True, stop_at_answer: bool = True, backend: str = "hf", cache: str = "auto") -> list[str]:
    """Greedy decoding (``do_sample=False``, KV cache) of ``prompts``, ``batch_size`` at a time with
    LEFT padding, each row stopping at EOS, after ``max_new_tokens``, or (``stop_at_answer``) at
    the end of its answer sentence, its text cut there (:func:`trim_after_answer`). Rows stop
    independently: a finished row only receives padding, so batched outputs equal one-at-a-time
    outputs. Returns only the new text of each prompt (``skip_special_tokens=True``), in the order
    of ``prompts``. Prompts are processed longest first (less padding; an out-of-memory batch
    shows up first). The tokenizer's ``padding_side`` (and ``pad_token`` when it had none: EOS is
    used) is restored afterwards. Prompts are tokenised without special tokens, exactly as
    training tokenises them. ``cache``: the KV cache, ``"auto"`` (static for CPU batches, else
    dynamic), ``"static"`` or ``"dynamic"``. ``backend="vllm"`` expects ``model`` to be a ``vllm.LLM``."""
    if not prompts:
        return []
    if backend == "vllm":
        return [o[0] for o in _vllm_generate(model, prompts, max_new_tokens, 1, None, stop_at_answer)]
    if backend != "hf":
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return _hf_batches(model, tokenizer, prompts, max_new_tokens, batch_size, show_progress, stop_at_answer,
                       None, "generate", cache)


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], num_samples: int, max_new_tokens: int,
           temperature: float = 0.7, top_p: float = 0.95, seed: int = 0, batch_size: int = 32,
           show_progress=True, stop_at_answer: bool = True, backend: str = "hf",
           cache: str = "auto") -> list[list[str]]:
    """``num_samples`` sampled outputs per prompt (temperature, nucleus ``top_p``, no top-k), for
    self-consistency. Returns one list per prompt, in the order of ``prompts``: ``out[i][j]`` is
    sample j OF PROMPT i (rows are expanded as (prompt, sample) pairs and mapped back by that pair,
    never by position in a flattened list). Deterministic given ``seed``, the prompts and
    ``batch_size`` (the random stream is shared by a batch's rows)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    if not prompts:
        return []
    sampling = {"temperature": float(temperature), "top_p": float(top_p), "seed": int(seed)}
    if backend == "vllm":
        return _vllm_generate(model, prompts, max_new_tokens, num_samples, sampling, stop_at_answer)
    if backend != "hf":
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    owners = [(i, j) for i in range(len(prompts)) for j in range(num_samples)]
    flat = _hf_batches(model, tokenizer, [prompts[i] for i, _ in owners], max_new_tokens, batch_size,
                       show_progress, stop_at_answer, sampling, "sample", cache)
    out: list[list[str | None]] = [[None] * num_samples for _ in prompts]
    for (i, j), text in zip(owners, flat):
        out[i][j] = text
    return out  # type: ignore[return-value]


def generate_with(model, tokenizer, prompts: list[str], cfg: GenConfig | Mapping | None = None,
                  show_progress=True) -> list[list[str]]:
    """Generate by a :class:`GenConfig`: one list of outputs per prompt (one greedy output when
    ``num_samples == 1``, else ``num_samples`` sampled ones)."""
    cfg = GenConfig.from_params(cfg)
    if cfg.num_samples == 1:
        gens = generate(model, tokenizer, prompts, cfg.max_new_tokens, cfg.batch_size, show_progress,
                        cfg.stop_at_answer, cfg.backend, cfg.cache)
        return [[g] for g in gens]
    return sample(model, tokenizer, prompts, cfg.num_samples, cfg.max_new_tokens, cfg.temperature, cfg.top_p,
                  cfg.seed, cfg.batch_size, show_progress, cfg.stop_at_answer, cfg.backend, cfg.cache)
