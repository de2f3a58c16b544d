"""A local causal LM as a chat backend, through transformers.

* Loading: :meth:`HFBackend.load` takes a hub id (from the local HF cache: runs are offline), a
  model folder, or a folder plus ``gguf_file`` (a GGUF checkpoint, de-quantised to ``dtype`` by
  transformers; needs the ``gguf`` package).
* Prompts: the tokenizer's chat template (``add_generation_prompt=True``) when it has one, else the
  messages' contents joined by a blank line.
* Batching: requests are grouped by their sampling parameters (a batch shares one ``generate``
  call), sorted longest prompt first within a group (less padding; an out-of-memory batch shows up
  first), ``batch_size`` at a time, LEFT padded.
* Sampling parameters per request (:class:`~edit.llm.base.ChatRequest`), over the backend's
  defaults: ``max_tokens``, ``temperature`` (0 or absent: greedy), ``top_p``, ``top_k``,
  ``repetition_penalty``, ``stop`` (a string or a list; the reply is cut before it, as OpenAI
  servers do), ``seed``. Other names (OpenAI-only ones) are ignored.
* Seeding: before each sampled batch ``torch.manual_seed`` is set from (seed, the batch's request
  keys), so the same requests in the same batches give the same replies; greedy decoding needs
  no seed. A request's sample depends on the batch it shares (use ``batch_size: 1`` for
  per-request reproducibility of sampled replies).
* Failures are results: a prompt that does not fit the model's context, or an exception in a batch
  (out of memory, ...), gives ``ChatResult(text=None, error=...)`` for the requests concerned.
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from edit.llm.base import ChatBackend, ChatRequest, ChatResult
from edit.records import stable_seed

_KNOWN = ("max_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "stop", "seed")


class HFBackend(ChatBackend):
    """Chat completions from a transformers causal LM held in memory.

    model / tokenizer: a loaded model and its tokenizer
    model_name:  the id that enters cache keys (the hub id, folder or GGUF file as given in params)
    batch_size:  requests per ``generate`` call
    seed:        base seed of sampled decoding
    sampling:    default sampling parameters (a request's own values win)
    """

    name = "hf"

    def __init__(self, model, tokenizer, model_name: str, batch_size: int = 4, seed: int = 0,
                 sampling: dict | None = None):
        if int(batch_size) < 1:
            raise ValueError(f"HFBackend: batch_size must be >= 1, got {batch_size}")
        self.hf_model = model
        self.tokenizer = tokenizer
        self.model = str(model_name)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.sampling = dict(sampling or {"max_tokens": 512})
        self.load_seconds: float | None = None
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.eval()

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, gguf_file: str | None = None, dtype: str = "float32", device: str = "cpu",
             model_name: str | None = None, **kwargs) -> "HFBackend":
        """Load a model and tokenizer from a hub id, a folder, or ``path``/``gguf_file``."""
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            torch_dtype = getattr(torch, dtype)
        except AttributeError:
            raise ValueError(f"teacher.hf.dtype: unknown torch dtype {dtype!r}") from None
        start = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(str(path), **extra)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype, **extra).to(device)
        backend = cls(model, tokenizer, model_name or (f"{path}/{gguf_file}" if gguf_file else str(path)), **kwargs)
        backend.load_seconds = time.perf_counter() - start
        return backend

    @classmethod
    def from_settings(cls, hf: dict) -> "HFBackend":
        """From the ``teacher.hf`` params section: ``path`` (required), ``gguf_file``, ``dtype``,
        ``device``, ``model_name``, ``batch_size``, ``seed``, ``sampling``."""
        hf = dict(hf)
        if not hf.get("path"):
            raise ValueError("teacher.hf.path is required (a hub id, a model folder, or the folder of gguf_file)")
        known = {"path", "gguf_file", "dtype", "device", "model_name", "batch_size", "seed", "sampling"}
        unknown = set(hf) - known
        if unknown:
            raise ValueError(f"teacher.hf: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        return cls.load(hf.pop("path"), **hf)

    # ------------------------------------------------------------------ requests
    def normalize(self, request: ChatRequest) -> ChatRequest:
        """The request with this backend's default sampling merged in (so cache keys see them)."""
        merged = {**self.sampling, **request.sampling_dict}
        if merged == request.sampling_dict:
            return request
        return ChatRequest(request.messages, tuple(sorted(merged.items())), request.sample_index, request.tag)

    def prompt_text(self, request: ChatRequest) -> str:
        """The text fed to the model for ``request``."""
        msgs = request.message_dicts
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m.get("content", "") for m in msgs)

    def _max_context(self) -> int | None:
        n = getattr(self.hf_model.config, "max_position_embeddings", None)
        return int(n) if n else None

    def _eos_ids(self) -> list[int]:
        ids = self.hf_model.generation_config.eos_token_id
        if ids is None:
            ids = self.tokenizer.eos_token_id
        ids = ids if isinstance(ids, (list, tuple)) else [ids]
        return [int(i) for i in ids if i is not None]

    def complete(self, requests: list[ChatRequest], progress: bool = True) -> list[ChatResult]:
        reqs = [self.normalize(r) for r in requests]
        results: list[ChatResult | None] = [None] * len(reqs)
        texts = [self.prompt_text(r) for r in reqs]
        chat = bool(getattr(self.tokenizer, "chat_template", None))
        ids = [self.tokenizer(t, add_special_tokens=not chat)["input_ids"] for t in texts]
        limit = self._max_context()
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(reqs):
            if limit is not None and len(ids[i]) >= limit:
                results[i] = ChatResult(None, error=f"prompt of {len(ids[i])} tokens does not fit the context "
                                                    f"of {limit} tokens ({self.model})", attempts=0)
                continue
            key = tuple((k, repr(v)) for k, v in sorted(r.sampling_dict.items()) if k in _KNOWN)
            groups[key].append(i)
        batches = []
        for key in sorted(groups):
            idx = sorted(groups[key], key=lambda i: (-len(ids[i]), i))
            batches += [idx[s: s + self.batch_size] for s in range(0, len(idx), self.batch_size)]
        for batch in tqdm(batches, desc=f"hf {self.model}", disable=not progress or not batches):
            try:
                out = self._generate([reqs[i] for i in batch], [ids[i] for i in batch])
            except Exception as e:  # never crash the stage: the batch's requests fail
                msg = f"{type(e).__name__}: {e}"[:500]
                out = [ChatResult(None, error=msg) for _ in batch]
            for i, res in zip(batch, out):
                results[i] = res
        return results  # type: ignore[return-value]

    @torch.no_grad()
    def _generate(self, reqs: list[ChatRequest], ids: list[list[int]]) -> list[ChatResult]:
        s = reqs[0].sampling_dict
        tok = self.tokenizer
        pad_id = tok.pad_token_id
        width = max(len(x) for x in ids)
        device = getattr(self.hf_model, "device", torch.device("cpu"))
        input_ids = torch.tensor([[pad_id] * (width - len(x)) + list(x) for x in ids], device=device)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=device)
        max_new = int(s.get("max_tokens", 512))
        limit = self._max_context()
        if limit is not None:
            max_new = max(1, min(max_new, limit - width))
        temperature = float(s.get("temperature") or 0.0)
        kwargs: dict = {"max_new_tokens": max_new, "pad_token_id": pad_id, "eos_token_id": self._eos_ids(),
                        "num_beams": 1}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=float(s.get("top_p", 1.0)))
            if s.get("top_k") is not None:
                kwargs["top_k"] = int(s["top_k"])
            torch.manual_seed(stable_seed(self.seed, s.get("seed", ""),
                                           *(r.key(self.name, self.model) for r in reqs)))
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if s.get("repetition_penalty") is not None:
            kwargs["repetition_penalty"] = float(s["repetition_penalty"])
        stops = s.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        if stops:
            kwargs.update(stop_strings=stops, tokenizer=tok)
        gen = self.hf_model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        new = gen[:, width:].tolist()
        eos = set(self._eos_ids()) | {pad_id}
        out = []
        for row, prompt in zip(new, ids):
            n, finish = len(row), "length"
            for j, t in enumerate(row):
                if t in eos:
                    n, finish = j + 1, "stop"
                    break
            text = tok.decode(row[:n], skip_special_tokens=True)
            for st in stops:
                k = text.find(st)
                if k >= 0:
                    text, finish = text[:k], "stop"
            out.append(ChatResult(text, finish_reason=finish,
                                  usage={"prompt_tokens": len(prompt), "completion_tokens": n}))
        return out
