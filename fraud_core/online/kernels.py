"""Compiled (numba) walks of flattened boosted trees: the inner loops of :mod:`fraud_core.online.trees`.

A walk takes a row from each tree's root to a leaf with scikit-learn's decision rules
(``_predict_from_raw_data``): a missing value follows ``missing_left``; on a categorical split a
negative value is treated as missing and any other looks up ``cat_table[cat_row[node], code]``
(left, right, or the missing-value direction for an unknown category); a numeric value goes left
when ``value <= threshold``. Leaves point at themselves. Leaf values are added in tree order from
the baseline, as scikit-learn accumulates them, so raw scores equal a sequential sum bit for bit.

``trees`` is :class:`fraud_core.online.trees.FastHGB`'s ``_trees`` tuple: ``(roots, feature, threshold,
left, right, missing_left, is_categorical, cat_row, cat_table, value)``. The kernels are compiled on
first use, cached on disk (``cache=True``) and run in the calling thread with the GIL released. The
walk of a whole row is one call: a call per tree would hand over the tree arrays (and count their
references) 300 times per row, which costs ten times the walk itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _walk_row(xp, r, start, leaves, first, record, trees):
    """Walk row ``r`` of ``xp`` down every tree ``t`` from node ``start[t]`` into ``leaves[t]``.

    Trees with ``start[t] < 0`` keep ``leaves[t]``. With ``record``, ``first[c, t]`` becomes the
    first node of tree ``t``'s path that tests column ``c`` (it stays -1 where none does).
    """
    _, feature, threshold, left, right, missing_left, is_categorical, cat_row, cat_table, _ = trees
    for t in range(start.shape[0]):
        node = start[t]
        if node < 0:
            continue
        while left[node] != node:
            column = feature[node]
            if record and first[column, t] < 0:
                first[column, t] = node
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
    leaves = np.empty(trees[0].shape[0], dtype=np.int64)
    no_first = np.zeros((1, 1), dtype=np.int64)
    out = np.empty(xp.shape[0], dtype=np.float64)
    for r in range(xp.shape[0]):
        _walk_row(xp, r, trees[0], leaves, no_first, False, trees)
        out[r] = _total(baseline, leaves, trees[9])
    return out


@njit(cache=True, nogil=True)
def reference_walk(xp0, baseline, trees):
    """Row 0 of ``xp0`` through every tree: (leaf per tree, first node testing each column, raw score).

    ``first[c, t]`` is the first node on tree ``t``'s path that tests column ``c``, -1 if none.
    """
    n_trees = trees[0].shape[0]
    leaves = np.empty(n_trees, dtype=np.int64)
    first = np.full((xp0.shape[1], n_trees), -1, dtype=np.int64)
    _walk_row(xp0, 0, trees[0], leaves, first, True, trees)
    return leaves, first, _total(baseline, leaves, trees[9])


@njit(cache=True, nogil=True)
def raw_scores_one_change(xp0, leaves0, first, columns, values, baseline, trees):
    """Raw scores of the reference row ``xp0[0]`` with one column changed: ``columns[k]`` to ``values[k]``.

    Above the first node that tests the changed column a path cannot change, so each tree whose
    path tests it is walked on from that node; every other tree keeps its reference leaf. Same
    leaves as a full walk of the changed row, so the same sums.
    """
    row = xp0.copy()
    leaves = np.empty(leaves0.shape[0], dtype=np.int64)
    no_first = np.zeros((1, 1), dtype=np.int64)
    out = np.empty(columns.shape[0], dtype=np.float64)
    for k in range(columns.shape[0]):
        c = columns[k]
        old = row[0, c]
        row[0, c] = values[k]
        leaves[:] = leaves0
        _walk_row(row, 0, first[c], leaves, no_first, False, trees)
        out[k] = _total(baseline, leaves, trees[9])
        row[0, c] = old
    return out
