"""Benchmark of training, evaluation and single-row scoring; prints figures, asserts nothing.

Usage (paths are arguments: the product never reads the team's data folder itself)::

    uv run python bench/bench_train.py --train /path/fraud_train.parquet \\
        --test /path/fraud_test.parquet [--model hgb|rf] [--out var/bench-model]

Training runs in this process (features, fit, threshold, save) and reports wall and CPU seconds and
the peak resident memory. Evaluation then runs as the real command, ``fraud-detector evaluate``, in
a child process (its wall time and peak memory are its own). Last, the single-row latency of the
predictor (features of one transaction from its card's history, then score with and without
reasons). CPU seconds matter on a shared machine: wall time there depends on the neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # KiB on Linux


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load_avg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, type=Path)
    parser.add_argument("--test", required=True, type=Path)
    parser.add_argument("--model", default="hgb", choices=("hgb", "rf"))
    parser.add_argument("--out", type=Path, default=Path("var/bench-model"))
    parser.add_argument("--latency-rows", type=int, default=300, help="single-row scores to time")
    args = parser.parse_args()

    from fraud_core.ml.train import train_file

    print(f"machine: {os.cpu_count()} cores, load average {_load_avg()}")
    out_dir = args.out / args.model
    t0, c0 = time.perf_counter(), _cpu_seconds()
    artifact = train_file(args.train, out_dir, kind=args.model, progress=lambda m: print(f"  train: {m}", flush=True))
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    timings = artifact.card.timings
    val = artifact.validation_metrics
    print(f"training ({args.model}): {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {_peak_rss_mb():.0f} MB")
    print(
        f"  read {timings['read_seconds']:.1f} s, features {timings['features_seconds']:.1f} s, "
        f"fit {timings['fit_seconds']:.1f} s ({artifact.card.n_fit:,} rows fitted)"
    )
    print(
        f"  validation: PR-AUC {val['pr_auc']:.4f}, ROC-AUC {val['roc_auc']:.4f}, precision {val['precision']:.4f}, "
        f"recall {val['recall']:.4f}, F1 {val['f1']:.4f} at threshold {artifact.threshold:.4f}"
    )
    print(f"  load average now {_load_avg()}")

    command = [
        sys.executable,
        "-m",
        "fraud_cli.main",
        "evaluate",
        "--model",
        str(out_dir),
        "--history",
        str(args.train),
        "--test",
        str(args.test),
        "--json",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        print(f"evaluate failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        sys.exit(1)
    metrics = json.loads(done.stdout)
    child_rss = _peak_rss_mb(resource.RUSAGE_CHILDREN)
    print(f"evaluate (fraud-detector evaluate --json): {wall:.1f} s wall, peak RSS {child_rss:.0f} MB")
    print(
        f"  test: n {metrics['n']:,}, fraud {metrics['n_fraud']:,}, PR-AUC {metrics['pr_auc']:.4f}, "
        f"ROC-AUC {metrics['roc_auc']:.4f}, precision {metrics['precision']:.4f}, recall {metrics['recall']:.4f}, "
        f"F1 {metrics['f1']:.4f} at {metrics['threshold']:.4f}"
    )
    print(
        f"  card precision@100 {metrics['card_precision_at_100']:.4f} "
        f"(ceiling {metrics['card_precision_at_100_ceiling']:.4f}); confusion [[tn, fp], [fn, tp]] "
        f"{metrics['confusion_matrix']}"
    )
    print(f"  evaluate timings: {metrics['timings']}")

    _latency(out_dir, args.test, args.train, args.latency_rows)


def _latency(model_dir: Path, test_path: Path, train_path: Path, rows: int) -> None:
    import pandas as pd

    from fraud_core.data import load_canonical
    from fraud_core.features import (
        build_features_with_history,
        history_window,
        select_card_history,
        select_label_events,
    )
    from fraud_core.ml.predictor import Predictor

    predictor = Predictor.load(model_dir)
    key = "bench-token-key"
    train, _ = load_canonical(train_path, token_key=key)
    test, _ = load_canonical(test_path, token_key=key)
    warehouse = pd.concat([train, test.iloc[:20_000]], ignore_index=True)
    picks = test.iloc[:20_000].sample(rows, random_state=0)
    cases = []
    for index in picks.index:
        new = test.loc[[index]].drop(columns="is_fraud")
        window = history_window(new, label_delay_days=predictor.card.label_delay_days)
        cases.append((new, select_card_history(warehouse, window), select_label_events(warehouse, window)))

    feature_ms, score_ms, reasons_ms = [], [], []
    for new, history, labels in cases:
        t0 = time.perf_counter()
        features = build_features_with_history(new, history, labels, label_delay_days=predictor.card.label_delay_days)
        t1 = time.perf_counter()
        predictor.score_features(features, reasons=0)
        t2 = time.perf_counter()
        predictor.score_features(features, reasons=3)
        t3 = time.perf_counter()
        feature_ms.append((t1 - t0) * 1000)
        score_ms.append((t2 - t1) * 1000)
        reasons_ms.append((t3 - t2) * 1000)

    def q(values: list[float]) -> str:
        ordered = sorted(values)
        return f"median {statistics.median(ordered):.2f} ms, p95 {ordered[int(0.95 * (len(ordered) - 1))]:.2f} ms"

    print(f"single transaction ({rows} timed, load average {_load_avg()}):")
    print(f"  online features (one card's history in memory): {q(feature_ms)}")
    print(f"  score only: {q(score_ms)}")
    print(f"  score + 3 reasons: {q(reasons_ms)}")


if __name__ == "__main__":
    main()
