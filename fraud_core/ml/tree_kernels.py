"""Compiled (numba) walks of flattened boosted trees: the inner loops of :mod:`fraud_core.ml.fast`.

A walk takes a row from each tree's root to a leaf with scikit-learn's decision rules
(``_predict_from_raw_data``): a missing value follows ``missing_left``; on a categorical split a
negative value is treated as missing and any other looks up ``cat_table[cat_row[node], code]``
(left, right, or the missing-value direction for an unknown category); a numeric value goes left
when ``value <= threshold``. Leaves point at themselves. Leaf values are added in tree order from
the baseline, as scikit-learn accumulates them, so raw scores equal a sequential sum bit for bit.

``trees`` is :class:`fraud_core.ml.fast.FastHGB`'s ``_trees`` tuple: ``(roots, feature, threshold,
left, right, missing_left, is_categorical, cat_row, cat_table, value)``. The kernels are compiled on
first use, cached on disk (``cache=True``) and run in the calling thread with the GIL released. The
walk of a whole row is one call: a call per tree would hand over the tree arrays (and count their
references) 300 times per row, which costs ten times the walk itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _walk_row(xp, r, walk, leaves, uses, record, trees):
    """Set ``leaves[t]`` to row ``r``'s leaf in every tree ``t`` with ``walk[t]``.

    With ``record``, ``uses[t, c]`` is set for every column ``c`` tested on tree ``t``'s path.
    """
    roots, feature, threshold, left, right, missing_left, is_categorical, cat_row, cat_table, _ = trees
    for t in range(roots.shape[0]):
        if not walk[t]:
            continue
        node = roots[t]
        while left[node] != node:
            column = feature[node]
            if record:
                uses[t, column] = True
            value = xp[r, column]
            if value != value or (is_categorical[node] and value < 0):  # missing (or an invalid code)
                go_left = missing_left[node]
            elif is_categorical[node]:
                go_left = cat_table[cat_row[node], int(min(value, 255.0))]
            else:
                go_left = value <= threshold[node]
            node = left[node] if go_left else right[node]
        leaves[t] = node


@njit(cache=True, nogil=True)
def _total(baseline, leaves, value):
    total = baseline
    for t in range(leaves.shape[0]):
        total += value[leaves[t]]
    return total


@njit(cache=True, nogil=True)
def raw_scores(xp, baseline, trees):
    """Raw scores (log-odds) of every row of a preprocessed matrix."""
    n_trees = trees[0].shape[0]
    walk = np.ones(n_trees, dtype=np.bool_)
    leaves = np.empty(n_trees, dtype=np.int64)
    no_uses = np.zeros((1, 1), dtype=np.bool_)
    out = np.empty(xp.shape[0], dtype=np.float64)
    for r in range(xp.shape[0]):
        _walk_row(xp, r, walk, leaves, no_uses, False, trees)
        out[r] = _total(baseline, leaves, trees[9])
    return out


@njit(cache=True, nogil=True)
def reference_walk(xp0, baseline, trees):
    """Row 0 of ``xp0`` through every tree: (leaf per tree, columns each tree's path tests, raw score)."""
    n_trees = trees[0].shape[0]
    walk = np.ones(n_trees, dtype=np.bool_)
    leaves = np.empty(n_trees, dtype=np.int64)
    uses = np.zeros((n_trees, xp0.shape[1]), dtype=np.bool_)
    _walk_row(xp0, 0, walk, leaves, uses, True, trees)
    return leaves, uses, _total(baseline, leaves, trees[9])


@njit(cache=True, nogil=True)
def raw_scores_near(xp0, leaves0, uses, xp, baseline, trees):
    """Raw scores of rows that differ from the reference row ``xp0[0]`` in a few columns.

    A tree is walked again only when its path for the reference row tests a column where the row
    differs; every other tree keeps the reference leaf (``leaves0``), so the sums equal
    :func:`raw_scores`'.
    """
    n, width = xp.shape
    n_trees = trees[0].shape[0]
    walk = np.empty(n_trees, dtype=np.bool_)
    leaves = np.empty(n_trees, dtype=np.int64)
    no_uses = np.zeros((1, 1), dtype=np.bool_)
    out = np.empty(n, dtype=np.float64)
    for r in range(n):
        walk[:] = False
        for c in range(width):
            a = xp[r, c]
            b = xp0[0, c]
            if a != b and not (a != a and b != b):  # changed (NaN equals NaN here)
                for t in range(n_trees):
                    walk[t] |= uses[t, c]
        leaves[:] = leaves0
        _walk_row(xp, r, walk, leaves, no_uses, False, trees)
        out[r] = _total(baseline, leaves, trees[9])
    return out
