"""The KRSL (key reasoning step learning) weighted token loss.

Sign convention (the only one used in this repo): the loss is MINIMISED and a weight ``w_t``
multiplies the token's cross-entropy ``CE_t = -log p(label_t)``:

* ``w = +alpha`` on chosen key tokens   -> minimising ``+alpha * CE`` pushes their log-prob UP;
* ``w = -beta``  on rejected key tokens -> minimising ``-beta * CE`` pushes their log-prob DOWN;
* ``w = 0`` elsewhere (defaults alpha = 1.0, beta = 0.025; see ``edit.align.krsl_weights``).

Chosen and rejected sequences are separate rows of one batch, so one forward pass serves both:
rows come in pairs ``[chosen_0, rejected_0, chosen_1, rejected_1, ...]`` (``B = 2P``), the order
:class:`edit.training` collates them in. The loss is the paper's (and its reference code's): per pair
``alpha * sum CE(chosen key tokens) / n_chosen  -  beta * sum CE(rejected key tokens) / n_rejected``
with ``n`` the row's number of response tokens, averaged over the P pairs; that is the sum of the
per-row terms divided by P (not the mean over the 2P rows, which would halve it).

Indexing follows Hugging Face labels: ``labels[b, t]`` and ``weights[b, t]`` refer to the token AT
position t; the functions shift internally so that ``logits[:, t - 1]`` predicts ``labels[:, t]``.
``labels == -100`` marks non-response positions (prompt, padding); ``labels[:, 0]`` has no
predicting position and is therefore never scored.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["IGNORE_INDEX", "token_log_probs", "krsl_loss", "weighted_positions", "krsl_loss_at", "WeightedPositions"]

IGNORE_INDEX = -100


def _shifted_ce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 cross-entropy of ``labels[:, 1:]`` under ``logits[:, :-1]`` and the valid mask.

    Returns ``(ce, valid)`` of shape ``[B, T-1]``; ``ce`` is 0 where ``valid`` is False.
    """
    if logits.dim() != 3 or labels.dim() != 2 or logits.shape[:2] != labels.shape:
        raise ValueError(f"expected logits [B,T,V] and labels [B,T], got {tuple(logits.shape)} and {tuple(labels.shape)}")
    pred = logits[:, :-1, :].float()
    target = labels[:, 1:]
    valid = target != IGNORE_INDEX
    ce = F.cross_entropy(
        pred.reshape(-1, pred.size(-1)),
        target.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view_as(target)
    ce = torch.where(valid, ce, torch.zeros_like(ce))
    return ce, valid


def token_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``out[b, t] = log p(labels[b, t] | logits[b, t - 1])`` in float32, shape ``[B, T]``.

    Same indexing as ``labels``; 0 at ignored positions (label -100) and at t = 0.
    Differentiable with respect to ``logits``.
    """
    ce, _ = _shifted_ce(logits, labels)
    return F.pad(-ce, (1, 0), value=0.0)


class WeightedPositions(NamedTuple):
    """The logit positions KRSL needs: ``logits[rows[i], cols[i]]`` predicts a response token of
    non-zero weight ``weights[i]`` (``targets[i]`` is that token); ``n[b]`` is row b's number of
    scored response tokens (the normaliser), ``batch`` the number of rows."""

    rows: torch.Tensor
    cols: torch.Tensor
    weights: torch.Tensor
    targets: torch.Tensor
    n: torch.Tensor
    batch: int


def weighted_positions(labels: torch.Tensor, weights: torch.Tensor) -> WeightedPositions:
    """Where KRSL's loss is non-zero: only tokens with a non-zero weight contribute, so the
    cross-entropy (the vocabulary projection, its log-softmax and their backward) is needed at those
    positions alone, a few percent of the tokens. ``weights`` is indexed like ``labels``."""
    if weights.shape != labels.shape:
        raise ValueError(f"weights {tuple(weights.shape)} must have the shape of labels {tuple(labels.shape)}")
    target = labels[:, 1:]
    valid = target != IGNORE_INDEX
    w = weights[:, 1:].to(device=labels.device, dtype=torch.float32)
    w = torch.where(valid, w, torch.zeros_like(w))
    rows, cols = (w != 0).nonzero(as_tuple=True)
    return WeightedPositions(rows, cols, w[rows, cols], target[rows, cols], valid.sum(dim=1), labels.shape[0])


def krsl_loss_at(logits_at: torch.Tensor, pos: WeightedPositions, nll_cap: float | None = None) -> torch.Tensor:
    """KRSL from the logits at ``pos`` only (``logits_at[i]`` = the logits at position i of
    :func:`weighted_positions`, shape [K, V]); see :func:`krsl_loss` for the definition."""
    if pos.batch % 2:
        raise ValueError(f"KRSL rows come in (chosen, rejected) pairs: got an odd number of rows ({pos.batch})")
    if pos.rows.numel() == 0:  # nothing weighted (or an empty batch): a zero that keeps the graph
        return logits_at.sum() * 0.0
    ce = F.cross_entropy(logits_at.float(), pos.targets, reduction="none")
    weights = pos.weights
    if nll_cap is not None:  # a rejected token already at or above the cap is left alone: weight 0
        weights = torch.where((weights < 0) & (ce.detach() >= float(nll_cap)), torch.zeros_like(weights), weights)
    per_row = torch.zeros(pos.batch, dtype=torch.float32, device=logits_at.device).index_add(0, pos.rows, weights * ce)
    return (per_row / pos.n.clamp(min=1).to(torch.float32)).sum() / (pos.batch // 2)


def krsl_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    nll_cap: float | None = None,
) -> torch.Tensor:
    """Weighted token cross-entropy, normalised per row, summed per pair, averaged over pairs
    (scalar, float32).

    Rows are (chosen, rejected) pairs, ``B = 2P`` (an odd B is an error). Per row b:
    ``sum_t w[b,t] * CE[b,t] / n_b`` with ``n_b`` the number of scored response tokens
    (``labels[b, 1:] != -100``); a row with ``n_b == 0`` (e.g. truncation removed the whole
    response) contributes exactly 0, never NaN.  The loss is the sum over all B rows divided by P,
    i.e. the mean over pairs of (chosen term + rejected term), as in the paper.

    ``weights`` is indexed like ``labels`` (unshifted).  Weights at positions with label -100 are
    ignored (masked out), as is ``weights[:, 0]``.

    ``nll_cap``: a token with NEGATIVE weight (a rejected key token) whose ``CE_t`` (from the logits
    that predict it, position t - 1) is at or above the cap gets weight 0: it adds nothing to the
    value and nothing to the gradient, so the push-down stops instead of diverging. Positive-weight
    terms are never capped.

    CE is computed in float32 whatever the dtype of ``logits`` (e.g. bf16).
    """
    if logits.dim() != 3 or logits.shape[:2] != labels.shape:
        raise ValueError(f"expected logits [B,T,V] and labels [B,T], got {tuple(logits.shape)} and {tuple(labels.shape)}")
    pos = weighted_positions(labels, weights)
    if pos.rows.numel() == 0:
        return logits.sum() * 0.0
    return krsl_loss_at(logits[pos.rows, pos.cols], pos, nll_cap)
