"""Minimum-edit-distance key-token alignment (pure functions, no torch).

EDIT marks as *key reasoning steps* the tokens where a correct CoT (``chosen``) and a wrong CoT
(``rejected``) of the same question differ under a minimum edit distance alignment of the
STUDENT tokenizer's token ids.

Inputs are the RESPONSE token ids only: the caller strips the prompt and any padding/EOS before
calling :func:`key_token_masks` (aligning padded sequences of different lengths would mark padding
and EOS tokens as key), and maps the returned per-response-token marks back onto label positions.

Alignment vocabulary (transforming ``rejected`` into ``chosen``; unit costs):

* ``"equal"``         chosen[i] == rejected[j], both unmarked;
* ``"replace"``       substitution, chosen[i] != rejected[j], both marked key;
* ``"chosen_only"``   chosen[i] has no partner (an insertion), marked key on the chosen side;
* ``"rejected_only"`` rejected[j] has no partner (a deletion), marked key on the rejected side.

Tie-breaking rule (one of several optimal alignments must be picked; different picks mark
different tokens):  among all alignments of minimum edit distance, take those with the FEWEST
substitutions (equivalently the fewest key tokens, i.e. the most tokens left shared), and among
those the first one found walking both sequences LEFT TO RIGHT with the move preference
diagonal (equal / replace)  >  chosen_only  >  rejected_only.  Consequences:

* the key tokens are the smallest set explaining the difference at minimum edit distance; since
  the secondary criterion is symmetric, swapping the arguments swaps the masks' key counts;
* equal tokens are matched as early as possible, so in a run of a repeated token the surplus
  copies that get marked are the LAST ones: chosen ``[5, 7, 7, 9]`` vs rejected ``[5, 7, 9]``
  marks chosen index 2 (not 1);
* chosen ``[1, 2]`` vs rejected ``[2, 1]`` (distance 2 either as two substitutions or as one
  insertion + one deletion) keeps one token shared; the left-to-right preference consumes chosen
  ``1`` as chosen_only first, matches the ``2``s and marks rejected ``1``: masks
  ``[True, False]`` and ``[False, True]``.

The rule is implemented by a dynamic programme over suffixes on the combined cost
``distance * K + substitutions`` (``K`` larger than any substitution count, so the order is
lexicographic) followed by a forward trace that takes the first optimal move in the preference
order.  ``rapidfuzz`` is not used for the backtrace because its tie-breaking is an implementation
detail of a bit-parallel algorithm (it is used in the tests to check the distance).  A common
prefix is skipped before the DP; since a diagonal move on equal tokens is always optimal this does
not change the result.  Cost is O(n * m) time and memory after the common prefix.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

__all__ = [
    "EQUAL",
    "REPLACE",
    "CHOSEN_ONLY",
    "REJECTED_ONLY",
    "align_tokens",
    "alignment_cost",
    "key_token_masks",
    "krsl_weights",
    "key_share",
    "spans_to_token_mask",
    "localisation_scores",
]

EQUAL = "equal"
REPLACE = "replace"
CHOSEN_ONLY = "chosen_only"
REJECTED_ONLY = "rejected_only"

#: One alignment column: (tag, chosen index or None, rejected index or None).
AlignOp = tuple[str, "int | None", "int | None"]


def align_tokens(chosen: Sequence[Hashable], rejected: Sequence[Hashable]) -> list[AlignOp]:
    """A minimum-cost (unit Levenshtein) alignment of ``chosen`` with ``rejected``.

    Returns the alignment columns in order as ``(tag, i, j)``: ``i`` indexes ``chosen`` (None for
    ``rejected_only``), ``j`` indexes ``rejected`` (None for ``chosen_only``).  Every index of both
    sequences appears exactly once.  Ties are broken by the rule in the module docstring:
    fewest substitutions, then left-to-right with diagonal > chosen_only > rejected_only.
    """
    a = list(chosen)
    b = list(rejected)
    ops: list[AlignOp] = []

    # Common prefix: matched diagonally by the rule anyway (a diagonal move on equal tokens is
    # always optimal), skipping it only saves DP work.
    p = 0
    lim = min(len(a), len(b))
    while p < lim and a[p] == b[p]:
        ops.append((EQUAL, p, p))
        p += 1
    a = a[p:]
    b = b[p:]
    n, m = len(a), len(b)

    # cost[i][j] = min over alignments of a[i:] with b[j:] of  distance * K + substitutions.
    K = min(n, m) + 1
    SUB = K + 1
    cost: list[list[int]] = [[0] * (m + 1) for _ in range(n + 1)]
    last = cost[n]
    for j in range(m + 1):
        last[j] = (m - j) * K
    for i in range(n - 1, -1, -1):
        row = cost[i]
        below = cost[i + 1]
        ai = a[i]
        row[m] = (n - i) * K
        for j in range(m - 1, -1, -1):
            diag = below[j + 1] + (0 if ai == b[j] else SUB)
            down = below[j] + K  # a[i] chosen_only
            right = row[j + 1] + K  # b[j] rejected_only
            best = diag if diag < down else down
            row[j] = best if best < right else right

    i = j = 0
    while i < n or j < m:
        here = cost[i][j]
        if i < n and j < m:
            same = a[i] == b[j]
            if here == cost[i + 1][j + 1] + (0 if same else SUB):
                ops.append((EQUAL if same else REPLACE, i + p, j + p))
                i += 1
                j += 1
                continue
        if i < n and here == cost[i + 1][j] + K:
            ops.append((CHOSEN_ONLY, i + p, None))
            i += 1
        else:
            ops.append((REJECTED_ONLY, None, j + p))
            j += 1
    return ops


def alignment_cost(ops: Sequence[AlignOp]) -> int:
    """Unit cost of an alignment: the number of non-``equal`` columns."""
    return sum(1 for tag, _, _ in ops if tag != EQUAL)


def key_token_masks(
    chosen: Sequence[Hashable], rejected: Sequence[Hashable]
) -> tuple[list[bool], list[bool]]:
    """Key-token masks of a (chosen, rejected) pair of RESPONSE token-id sequences.

    A chosen token is key if it is substituted or inserted (``replace`` / ``chosen_only``) in the
    alignment of :func:`align_tokens`; a rejected token is key if it is substituted or deleted
    (``replace`` / ``rejected_only``).  Ties follow the module docstring's rule: fewest
    substitutions (fewest key tokens), then left-to-right with diagonal > chosen_only > rejected_only.  Masks have the lengths of the inputs; empty inputs
    give empty masks (and an empty side against a non-empty one marks all of the non-empty one).
    Pass response tokens only: no prompt, padding or EOS padding.
    """
    chosen = list(chosen)
    rejected = list(rejected)
    cmask = [False] * len(chosen)
    rmask = [False] * len(rejected)
    for tag, i, j in align_tokens(chosen, rejected):
        if tag == EQUAL:
            continue
        if i is not None:
            cmask[i] = True
        if j is not None:
            rmask[j] = True
    return cmask, rmask


def krsl_weights(
    chosen_mask: Sequence[bool],
    rejected_mask: Sequence[bool],
    alpha: float = 1.0,
    beta: float = 0.025,
) -> tuple[list[float], list[float]]:
    """Per-token KRSL weights: ``+alpha`` on chosen key tokens, ``-beta`` on rejected key tokens, 0 else.

    The weight multiplies the token's cross-entropy (NLL) in a MINIMISED loss, so a positive weight
    pushes the token's log-prob up and a negative weight pushes it down (see ``edit.losses``).
    ``alpha`` and ``beta`` are magnitudes and must be >= 0.
    """
    if alpha < 0 or beta < 0:
        raise ValueError(f"alpha and beta are magnitudes and must be >= 0, got {alpha=}, {beta=}")
    wc = [float(alpha) if k else 0.0 for k in chosen_mask]
    wr = [-float(beta) if k else 0.0 for k in rejected_mask]
    return wc, wr


def key_share(mask: Sequence[bool]) -> float:
    """Fraction of tokens marked key; 0.0 for an empty mask."""
    mask = list(mask)
    return sum(1 for k in mask if k) / len(mask) if mask else 0.0


def spans_to_token_mask(
    offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> list[bool]:
    """Ground-truth key-token mask from character spans.

    ``offsets[k] = (s, e)`` are token k's character offsets ``[s, e)`` in the response text (as in a
    fast tokenizer's offset mapping, response tokens only); ``spans`` are ground-truth ``[a, b)``
    character spans.  A token is in the ground truth iff it shares at least one character with some
    span, i.e. ``max(s, a) < min(e, b)``.  Zero-length tokens (special tokens, ``(0, 0)``) and
    zero-length spans therefore never match.
    """
    spans = [(int(a), int(b)) for a, b in spans if b > a]
    out: list[bool] = []
    for s, e in offsets:
        s, e = int(s), int(e)
        out.append(e > s and any(max(s, a) < min(e, b) for a, b in spans))
    return out


def localisation_scores(pred: Sequence[bool], truth: Sequence[bool]) -> dict:
    """Token-level agreement of predicted key tokens with ground-truth key tokens.

    Returns ``{"tp", "fp", "fn", "precision", "recall", "f1"}``.  Undefined ratios are ``None``
    rather than NaN or a made-up value: ``precision`` is None when nothing is predicted
    (tp + fp == 0), ``recall`` is None when there is no ground truth (tp + fn == 0), ``f1`` is None
    when either is None, and 0.0 when both are 0.  Raises ValueError on length mismatch.
    """
    pred = [bool(x) for x in pred]
    truth = [bool(x) for x in truth]
    if len(pred) != len(truth):
        raise ValueError(f"length mismatch: {len(pred)} predicted vs {len(truth)} ground-truth tokens")
    tp = sum(1 for p, t in zip(pred, truth) if p and t)
    fp = sum(1 for p, t in zip(pred, truth) if p and not t)
    fn = sum(1 for p, t in zip(pred, truth) if t and not p)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    elif precision + recall == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}
