"""A compiled evaluator of a fitted HistGradientBoosting model, for small batches.

scikit-learn evaluates its boosted trees one tree at a time with an OpenMP loop over rows: for a
single transaction that is 300 parallel regions of one row each, whose thread start-up and
synchronisation cost far more than the walk itself. :class:`FastHGB` flattens every tree into a few
arrays once; the walks themselves are numba-compiled loops (:mod:`fraud_core.online.kernels`) that
run in the calling thread (no thread pool): a few microseconds per row for all trees.

It reproduces scikit-learn's decision rules exactly (``_predict_from_raw_data``): missing values
follow ``missing_go_to_left``; a categorical value goes left when its bit is set in the split's
bitset, right when it is a known category, and is treated as missing when unknown or negative;
a numeric value goes left when ``x <= threshold``. Leaf values are added in tree order, starting
from the baseline, as scikit-learn does, so raw scores agree to rounding (tests check 1e-9).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fraud_core.online.kernels import raw_scores, raw_scores_one_change, reference_walk

_BITS = 32


class Reference(NamedTuple):
    """One row walked through every tree (:meth:`FastHGB.reference`).

    Attributes:
        xp: the row, preprocessed (1 x columns).
        leaves: its leaf in each tree.
        first: ``first[c, t]``, the first node of tree ``t``'s path that tests preprocessed column
            ``c`` (-1: the path never tests it).
        raw: its raw score (log-odds).
    """

    xp: np.ndarray
    leaves: np.ndarray
    first: np.ndarray
    raw: float


class OneColumnChanges(NamedTuple):
    """Changes of one column each, ready for the compiled walk (:meth:`FastHGB.one_column_changes`).

    Attributes:
        positions: the changed column of each change, after preprocessing.
        values: its new value, as the trees see it (categories ordinal-encoded).
    """

    positions: np.ndarray
    values: np.ndarray


class FastHGB:
    """The trees of a fitted binary ``HistGradientBoostingClassifier`` as flat arrays.

    Args:
        model: the fitted classifier (binary).

    Raises:
        ValueError: not a fitted binary HistGradientBoostingClassifier.
    """

    def __init__(self, model: Any) -> None:
        predictors = getattr(model, "_predictors", None)
        if predictors is None or getattr(model, "n_trees_per_iteration_", 0) != 1:
            raise ValueError("FastHGB needs a fitted binary HistGradientBoostingClassifier")
        self.baseline = float(np.asarray(model._baseline_prediction).ravel()[0])

        # The model's own preprocessing: categorical columns first (ordinal-encoded), then numeric.
        preprocessor = getattr(model, "_preprocessor", None)
        n_in = int(model.n_features_in_)
        if preprocessor is None:
            self.cat_columns: list[int] = []
            self.cat_values: list[np.ndarray] = []
            self.num_columns = np.arange(n_in)
        else:
            is_cat = np.asarray(model.is_categorical_, dtype=bool)
            encoder = preprocessor.named_transformers_["encoder"]
            self.cat_columns = [int(i) for i in np.flatnonzero(is_cat)]
            self.cat_values = [np.asarray(c, dtype=np.float64) for c in encoder.categories_]
            self.num_columns = np.flatnonzero(~is_cat)
            if list(preprocessor.transformers_[0][2]) != list(is_cat):
                raise ValueError("unexpected preprocessor layout")

        self.width = n_in
        # Where each encoded column sits after preprocessing (categorical columns first).
        self.position = np.empty(n_in, dtype=np.int64)
        self.position[[*self.cat_columns, *self.num_columns.tolist()]] = np.arange(n_in)

        known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
        known_bitsets = np.asarray(known, dtype=np.uint32)

        features, thresholds, lefts, rights, leaf, miss_left, is_cat_node, bitset_rows, values = ([] for _ in range(9))
        bitsets: list[np.ndarray] = []
        roots = []
        offset = 0
        bitset_offset = 0
        for (tree,) in predictors:
            nodes = tree.nodes
            roots.append(offset)
            features.append(nodes["feature_idx"].astype(np.int64))
            thresholds.append(nodes["num_threshold"].astype(np.float64))
            lefts.append(nodes["left"].astype(np.int64) + offset)
            rights.append(nodes["right"].astype(np.int64) + offset)
            leaf.append(nodes["is_leaf"].astype(bool))
            miss_left.append(nodes["missing_go_to_left"].astype(bool))
            is_cat_node.append(nodes["is_categorical"].astype(bool))
            bitset_rows.append(nodes["bitset_idx"].astype(np.int64) + bitset_offset)
            values.append(nodes["value"].astype(np.float64))
            raw_bitsets = np.asarray(tree.raw_left_cat_bitsets, dtype=np.uint32).reshape(-1, 8)
            bitsets.append(raw_bitsets)
            bitset_offset += len(raw_bitsets)
            offset += len(nodes)
        # A leaf points at itself, so extra steps past a short branch's leaf change nothing.
        is_leaf = np.concatenate(leaf)
        ids = np.arange(offset, dtype=np.int64)
        feature = np.where(is_leaf, 0, np.concatenate(features))
        missing_left = np.concatenate(miss_left)
        is_categorical = np.concatenate(is_cat_node) & ~is_leaf
        bitset_row = np.concatenate(bitset_rows)
        all_bitsets = np.concatenate(bitsets) if bitsets and bitset_offset else np.zeros((1, 8), dtype=np.uint32)
        # Categorical splits as a lookup table: go_left[split, code] for codes 0..255, with
        # scikit-learn's rule (left if in the split's bitset, right if a known category, else the
        # missing-value direction), so a step is one gather instead of two bitset tests.
        cat_nodes = np.flatnonzero(is_categorical)
        cat_row = np.zeros(offset, dtype=np.int64)
        cat_row[cat_nodes] = np.arange(len(cat_nodes))
        codes = np.arange(256, dtype=np.int64)
        word, bit = codes // _BITS, (codes % _BITS).astype(np.uint32)
        cat_table = np.zeros((max(len(cat_nodes), 1), 256), dtype=bool)
        for i, j in enumerate(cat_nodes):
            in_left = ((all_bitsets[bitset_row[j], word] >> bit) & 1).astype(bool)
            known_here = ((known_bitsets[f_idx_map[feature[j]], word] >> bit) & 1).astype(bool)
            cat_table[i] = np.where(in_left | known_here, in_left, missing_left[j])
        # The trees, once, as the compiled walks take them (see fraud_core.online.kernels).
        self._trees = (
            np.asarray(roots, dtype=np.int64),
            feature,
            np.concatenate(thresholds),
            np.where(is_leaf, ids, np.concatenate(lefts)),
            np.where(is_leaf, ids, np.concatenate(rights)),
            missing_left,
            is_categorical,
            cat_row,
            cat_table,
            np.concatenate(values),
        )
        # Compile the walks (or load them from numba's disk cache) now, not in the first request.
        x0 = np.zeros((1, n_in))
        self.raw_one_change(self.reference(x0[0]), self.one_column_changes(np.arange(n_in), np.ones(n_in)))
        self.raw(x0)

    def preprocess(self, x: np.ndarray) -> np.ndarray:
        """The classifier's ``_preprocess_X``: categorical columns ordinal-encoded and moved first.

        C-contiguous float64 always, the one layout the compiled walks are built for.
        """
        x = np.asarray(x, dtype=np.float64)
        if not self.cat_columns:
            return np.ascontiguousarray(x)
        blocks = []
        for column, values in zip(self.cat_columns, self.cat_values, strict=True):
            raw = x[:, column]
            pos = np.searchsorted(values, raw)
            pos_clipped = np.minimum(pos, len(values) - 1)
            found = (pos < len(values)) & (values[pos_clipped] == raw)
            blocks.append(np.where(found, pos_clipped.astype(np.float64), np.nan))
        return np.ascontiguousarray(np.column_stack([*blocks, x[:, self.num_columns]]))

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds) of an encoded feature matrix (what the pipeline's encoder gives)."""
        return np.asarray(raw_scores(self.preprocess(x), self.baseline, self._trees))

    def reference(self, x0: np.ndarray) -> Reference:
        """Walk one encoded row through every tree (what :meth:`raw_one_change` starts from)."""
        xp0 = self.preprocess(np.asarray(x0, dtype=np.float64).reshape(1, -1))
        leaves, first, raw = reference_walk(xp0, self.baseline, self._trees)
        return Reference(xp0, leaves, first, float(raw))

    def one_column_changes(self, columns: np.ndarray, values: np.ndarray) -> OneColumnChanges:
        """Change ``k`` sets encoded column ``columns[k]`` to ``values[k]`` (prepared once, used per row)."""
        columns = np.asarray(columns, dtype=np.int64)
        encoded = np.zeros((len(columns), self.width), dtype=np.float64)
        encoded[np.arange(len(columns)), columns] = np.asarray(values, dtype=np.float64)
        positions = self.position[columns]
        return OneColumnChanges(positions, self.preprocess(encoded)[np.arange(len(columns)), positions])

    def raw_one_change(self, reference: Reference, changes: OneColumnChanges) -> np.ndarray:
        """Raw scores of the reference row with one column changed per result (see :meth:`one_column_changes`).

        Result ``k`` is what :meth:`raw` gives for the row with change ``k``, leaf for leaf, but each
        tree is walked on only from the first node of its path that tests the changed column.
        """
        return np.asarray(
            raw_scores_one_change(
                reference.xp, reference.leaves, reference.first, changes.positions, changes.values,
                self.baseline, self._trees,
            )
        )  # fmt: skip

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class (scikit-learn's ``predict_proba(x)[:, 1]``)."""
        raw = self.raw(x)
        return 1.0 / (1.0 + np.exp(-raw))
