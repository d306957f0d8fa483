"""Synthetic conjunction task: label 1 exactly when both word A and word B occur.

The text twin of the paper's monomial: the label is an AND of two tokens, so no single token
explains a positive prediction. A group-attributing model should put A and B in the same group;
per-token attributions must split the credit between them.

Sentences are random filler words; A and/or B (each at most once) are inserted at random
positions. Half the examples are positive (both words); the negatives are split evenly between
"neither", "A only" and "B only", so neither word alone predicts the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_FILLER", "ConjunctionData", "make_conjunction_data"]

DEFAULT_FILLER = (
    "the a cat dog sat ran on under big small red blue house tree river hill "
    "quick slow green old new far near day night sun"
).split()

# Cases: (has A, has B); the first is the positive class.
_CASES = ((True, True), (False, False), (True, False), (False, True))


@dataclass
class ConjunctionData:
    """A conjunction data set.

    Attributes
    ----------
    sentences : list of list of str
        Token lists.
    labels : ndarray of int
        1 when both words occur, else 0.
    has_a, has_b : ndarray of bool
        Whether word A (B) occurs.
    pos_a, pos_b : ndarray of int
        Token index of A (B), −1 when absent.
    word_a, word_b : str
        The two words.
    """

    sentences: list[list[str]]
    labels: np.ndarray
    has_a: np.ndarray
    has_b: np.ndarray
    pos_a: np.ndarray
    pos_b: np.ndarray
    word_a: str
    word_b: str

    def __len__(self) -> int:
        return len(self.sentences)


def make_conjunction_data(
    n: int,
    *,
    min_len: int = 6,
    max_len: int = 14,
    word_a: str = "alpha",
    word_b: str = "beta",
    filler: tuple[str, ...] | list[str] = DEFAULT_FILLER,
    seed: int = 0,
) -> ConjunctionData:
    """Draw ``n`` balanced examples of the conjunction task.

    Parameters
    ----------
    n : int
        Number of examples; ⌊n/2⌋ positives, the rest split evenly over the three negative
        cases (any remainder drawn at random), then shuffled.
    min_len, max_len : int
        Sentence length range (inclusive), counting A and B.
    word_a, word_b : str
        The conjunction's words; they must not be filler words.
    filler : sequence of str
        Filler vocabulary.
    seed : int
        Seed of the generator (results are reproducible).
    """
    if n < 1:
        raise ValueError(f"n: expected a positive number of examples, got {n}")
    if not 2 <= min_len <= max_len:
        raise ValueError(
            f"min_len, max_len: need 2 <= min_len <= max_len, got {min_len}, {max_len}"
        )
    if word_a == word_b or {word_a, word_b} & set(filler):
        raise ValueError("word_a, word_b: must differ from each other and from every filler word")
    rng = np.random.default_rng(seed)
    n_pos = n // 2
    n_neg = n - n_pos
    neg_counts = [n_neg // 3] * 3
    for k in rng.choice(3, size=n_neg - sum(neg_counts), replace=False):
        neg_counts[k] += 1
    cases = np.repeat(np.arange(4), [n_pos, *neg_counts])
    rng.shuffle(cases)

    sentences, pos_a, pos_b = [], np.full(n, -1), np.full(n, -1)
    filler = list(filler)
    for i, case in enumerate(cases):
        has_a, has_b = _CASES[case]
        length = int(rng.integers(min_len, max_len + 1))
        tokens = [filler[j] for j in rng.integers(0, len(filler), size=length)]
        slots = rng.choice(length, size=2, replace=False)  # distinct positions for A and B
        if has_a:
            tokens[slots[0]] = word_a
            pos_a[i] = slots[0]
        if has_b:
            tokens[slots[1]] = word_b
            pos_b[i] = slots[1]
        sentences.append(tokens)
    has_a, has_b = pos_a >= 0, pos_b >= 0
    return ConjunctionData(
        sentences=sentences,
        labels=(has_a & has_b).astype(np.int64),
        has_a=has_a,
        has_b=has_b,
        pos_a=pos_a,
        pos_b=pos_b,
        word_a=word_a,
        word_b=word_b,
    )
