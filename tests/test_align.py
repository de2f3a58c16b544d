"""Tests for edit.align: key-token masks, the documented tie rule, spans and localisation scores."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

from edit.align import (
    CHOSEN_ONLY,
    EQUAL,
    REJECTED_ONLY,
    REPLACE,
    align_tokens,
    alignment_cost,
    key_share,
    key_token_masks,
    krsl_weights,
    localisation_scores,
    spans_to_token_mask,
)

# Small alphabets make ties and repeated tokens frequent.
tokens = st.lists(st.integers(min_value=0, max_value=3), max_size=12)
tiny_tokens = st.lists(st.integers(min_value=0, max_value=2), max_size=5)


# ---------------------------------------------------------------- hand-made cases


def test_identical_pair_has_no_key_tokens():
    c, r = key_token_masks([4, 8, 15, 16], [4, 8, 15, 16])
    assert c == [False] * 4 and r == [False] * 4


def test_one_substitution():
    c, r = key_token_masks([1, 2, 3, 4], [1, 2, 9, 4])
    assert c == [False, False, True, False]
    assert r == [False, False, True, False]


def test_one_insertion_marks_chosen_only():
    c, r = key_token_masks([1, 2, 3, 4], [1, 2, 4])
    assert c == [False, False, True, False]
    assert r == [False, False, False]


def test_one_deletion_marks_rejected_only():
    c, r = key_token_masks([1, 2, 4], [1, 2, 3, 4])
    assert c == [False, False, False]
    assert r == [False, False, True, False]


def test_completely_different():
    c, r = key_token_masks([1, 2, 3], [7, 8, 9, 10, 11])
    assert c == [True] * 3 and r == [True] * 5


@pytest.mark.parametrize(
    "chosen, rejected, expected",
    [
        ([], [], ([], [])),
        ([1, 2], [], ([True, True], [])),
        ([], [3], ([], [True])),
    ],
)
def test_empty_sides(chosen, rejected, expected):
    assert key_token_masks(chosen, rejected) == expected


def test_accepts_any_sequence_of_hashables():
    assert key_token_masks((1, 2), range(1, 3)) == ([False, False], [False, False])
    assert key_token_masks("abc", "abd") == ([False, False, True], [False, False, True])


def test_response_only_no_padding_artefact():
    # Same response, different amounts of padding stripped by the caller: nothing is key.
    # (Aligning the padded sequences would have marked EOS/pad tokens.)
    resp = [10, 11, 12]
    c, r = key_token_masks(resp, list(resp))
    assert not any(c) and not any(r)


# ---------------------------------------------------------------- the documented tie rule


def test_tie_repeated_token_marks_last_copy():
    # [5,7,7,9] vs [5,7,9]: deleting either 7 costs 1; the rule matches equal tokens as early as
    # possible, so the surplus (marked) copy is the LAST one, index 2.
    c, r = key_token_masks([5, 7, 7, 9], [5, 7, 9])
    assert c == [False, False, True, False]
    assert r == [False, False, False]
    # mirrored
    c, r = key_token_masks([5, 7, 9], [5, 7, 7, 9])
    assert c == [False, False, False]
    assert r == [False, False, True, False]


def test_tie_swap_prefers_fewest_key_tokens_then_chosen_only_first():
    # [1,2] vs [2,1]: distance 2 as two substitutions (4 key tokens) or as one insertion + one
    # deletion (2 key tokens).  Fewest substitutions wins; of the two indel alignments the
    # left-to-right preference consumes chosen '1' first (chosen_only), then matches the 2s.
    assert align_tokens([1, 2], [2, 1]) == [
        (CHOSEN_ONLY, 0, None),
        (EQUAL, 1, 0),
        (REJECTED_ONLY, None, 1),
    ]
    assert key_token_masks([1, 2], [2, 1]) == ([True, False], [False, True])


def test_tie_substitution_when_no_indel_alignment_is_as_cheap():
    # [1,2,3] vs [1,9,3]: the substitution (cost 1) beats insert+delete (cost 2).
    assert align_tokens([1, 2, 3], [1, 9, 3]) == [(EQUAL, 0, 0), (REPLACE, 1, 1), (EQUAL, 2, 2)]


def _all_alignments(a, b, i=0, j=0):
    """Every alignment of a[i:] with b[j:], generated in the preference order diag > chosen_only > rejected_only."""
    if i == len(a) and j == len(b):
        yield []
        return
    if i < len(a) and j < len(b):
        col = (EQUAL if a[i] == b[j] else REPLACE, i, j)
        for rest in _all_alignments(a, b, i + 1, j + 1):
            yield [col, *rest]
    if i < len(a):
        for rest in _all_alignments(a, b, i + 1, j):
            yield [(CHOSEN_ONLY, i, None), *rest]
    if j < len(b):
        for rest in _all_alignments(a, b, i, j + 1):
            yield [(REJECTED_ONLY, None, j), *rest]


def _rule_key(ops):
    return (alignment_cost(ops), sum(1 for t, _, _ in ops if t == REPLACE))


@settings(max_examples=150, deadline=None)
@given(tiny_tokens, tiny_tokens)
def test_alignment_matches_brute_force_rule(a, b):
    # The documented rule, by exhaustive enumeration: minimum distance, then fewest substitutions,
    # then the first alignment in the left-to-right preference order.
    best = None
    for ops in _all_alignments(a, b):
        if best is None or _rule_key(ops) < _rule_key(best):
            best = ops  # strict '<' keeps the first one in preference order
    assert align_tokens(a, b) == best


# ---------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(tokens, tokens)
def test_mask_lengths(a, b):
    c, r = key_token_masks(a, b)
    assert len(c) == len(a) and len(r) == len(b)


@settings(max_examples=300, deadline=None)
@given(tokens, tokens)
def test_unmarked_tokens_form_the_same_sequence(a, b):
    c, r = key_token_masks(a, b)
    assert [t for t, k in zip(a, c) if not k] == [t for t, k in zip(b, r) if not k]


@settings(max_examples=300, deadline=None)
@given(tokens, tokens)
def test_key_counts_and_edit_distance(a, b):
    c, r = key_token_masks(a, b)
    ck, rk = sum(c), sum(r)
    ops = align_tokens(a, b)
    dist = alignment_cost(ops)
    assert dist == Levenshtein.distance(a, b)
    assert max(ck, rk) <= dist <= ck + rk
    # every index appears exactly once, in order
    assert [i for _, i, _ in ops if i is not None] == list(range(len(a)))
    assert [j for _, _, j in ops if j is not None] == list(range(len(b)))


@settings(max_examples=200, deadline=None)
@given(tokens)
def test_identical_all_false(a):
    c, r = key_token_masks(a, list(a))
    assert not any(c) and not any(r)


@settings(max_examples=300, deadline=None)
@given(tokens, tokens)
def test_swapping_arguments_swaps_key_counts(a, b):
    c, r = key_token_masks(a, b)
    c2, r2 = key_token_masks(b, a)
    assert (sum(c), sum(r)) == (sum(r2), sum(c2))


@settings(max_examples=100, deadline=None)
@given(tokens, tokens, tokens)
def test_common_prefix_is_never_key(p, a, b):
    c, r = key_token_masks(p + a, p + b)
    assert not any(c[: len(p)]) and not any(r[: len(p)])


def test_long_sequences_are_fast_enough():
    import random
    import time

    rng = random.Random(0)
    a = [rng.randrange(50) for _ in range(600)]
    b = [rng.randrange(50) for _ in range(600)]
    t = time.perf_counter()
    c, r = key_token_masks(a, b)
    assert time.perf_counter() - t < 10.0
    assert sum(c) + sum(r) >= Levenshtein.distance(a, b)


# ---------------------------------------------------------------- weights, key share


def test_krsl_weights_signs_and_defaults():
    wc, wr = krsl_weights([True, False, True], [False, True])
    assert wc == [1.0, 0.0, 1.0]
    assert wr == [0.0, -0.025]
    wc, wr = krsl_weights([True], [True], alpha=2.0, beta=0.5)
    assert wc == [2.0] and wr == [-0.5]
    assert krsl_weights([], []) == ([], [])


def test_krsl_weights_rejects_negative_magnitudes():
    with pytest.raises(ValueError):
        krsl_weights([True], [True], beta=-0.025)


def test_key_share():
    assert key_share([True, False, False, True]) == 0.5
    assert key_share([]) == 0.0


# ---------------------------------------------------------------- spans -> token mask


def test_spans_to_token_mask_overlap():
    # text "ab cd ef", tokens "ab", " cd", " ef"
    offsets = [(0, 2), (2, 5), (5, 8)]
    assert spans_to_token_mask(offsets, [(3, 4)]) == [False, True, False]
    # a span touching a token boundary only (half-open) does not overlap it
    assert spans_to_token_mask(offsets, [(2, 5)]) == [False, True, False]
    # partial overlap on both sides
    assert spans_to_token_mask(offsets, [(1, 6)]) == [True, True, True]
    assert spans_to_token_mask(offsets, []) == [False, False, False]
    assert spans_to_token_mask([], [(0, 3)]) == []


def test_spans_to_token_mask_zero_length():
    # zero-length tokens (special tokens) are never in, even inside a span
    assert spans_to_token_mask([(0, 0), (3, 3), (2, 5)], [(0, 10)]) == [False, False, True]
    # a zero-length span covers no character
    assert spans_to_token_mask([(2, 5)], [(3, 3)]) == [False]


# ---------------------------------------------------------------- localisation scores


def test_localisation_scores_basic():
    s = localisation_scores([True, True, False, False], [True, False, True, False])
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1)
    assert s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5


def test_localisation_scores_empty_cases_are_none_not_nan():
    s = localisation_scores([False, False], [True, False])  # nothing predicted
    assert s["precision"] is None and s["recall"] == 0.0 and s["f1"] is None
    s = localisation_scores([True, False], [False, False])  # no ground truth
    assert s["precision"] == 0.0 and s["recall"] is None and s["f1"] is None
    s = localisation_scores([], [])
    assert s == {"tp": 0, "fp": 0, "fn": 0, "precision": None, "recall": None, "f1": None}
    s = localisation_scores([True, False], [False, True])  # both defined, both zero
    assert s["precision"] == 0.0 and s["recall"] == 0.0 and s["f1"] == 0.0


def test_localisation_scores_length_mismatch():
    with pytest.raises(ValueError):
        localisation_scores([True], [True, False])
