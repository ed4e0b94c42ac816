"""Where one ``/predict`` request's time goes, in process, one request at a time.

The saturation figures of :mod:`bench_predict` depend on how the two cores are shared (server
processes, PostgreSQL backends, the load generator, other tenants of the machine); these do not:
the same requests are scored one after another in this process, without HTTP, and each stage of
:meth:`fraud_core.pipeline.online_scoring.OnlineScorer.score_record` is timed on its own.

Stages: ``canonical`` (validate and tokenise the body), ``history`` (the card-history query: one
round trip, PostgreSQL's time included), ``features``, ``score`` (one walk of the trees),
``reasons`` (the per-feature perturbations and the reason records); ``total`` is
``score_record`` end to end, timed separately.

    uv run python bench/bench_predict_stages.py [--requests 2000] [--model DIR]

Needs PostgreSQL (``TEST_POSTGRES_URL`` admin URL); makes and drops its own database.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_predict import TOKEN_KEY, prepare, scratch_database


def measure(bodies: Path, n: int) -> dict[str, float]:
    """Microseconds per request of each stage, over the first ``n`` bodies (after 50 warm-up calls)."""
    import msgspec

    from fraud_core.db import make_engine
    from fraud_core.online.canonical import canonical_one
    from fraud_core.online.features import features_one
    from fraud_core.pipeline.online_scoring import OnlineScorer
    from fraud_core.settings import get_settings
    from webapp.schemas import TransactionIn

    settings = get_settings()
    database = make_engine(settings.database.url)
    engine = OnlineScorer(database, settings)
    engine.warm_up()
    lines = bodies.read_text().splitlines()[:n]
    records = [msgspec.structs.asdict(msgspec.json.decode(line.encode(), type=TransactionIn)) for line in lines]
    for record in records[:50]:
        engine.score_record(record)
    model = engine.model()
    parts = engine._online_parts(model)
    if parts is None:
        raise SystemExit("the fast path is off for this model (not a HistGradientBoosting artifact?)")
    scorer, reader = parts
    delay = model.card.label_delay_days
    token_key = settings.security.card_token_key.get_secret_value()
    spent = dict.fromkeys(("canonical", "history", "features", "score", "reasons"), 0.0)
    for record in records:
        t0 = time.perf_counter()
        row = canonical_one(record, token_key=token_key)
        assert row is not None
        t1 = time.perf_counter()
        history = reader.read(row)
        t2 = time.perf_counter()
        features = features_one(row, history, engine._label_index(), label_delay_days=delay)
        t3 = time.perf_counter()
        scorer.score(features, reasons=0)
        t4 = time.perf_counter()
        scorer.score(features, reasons=engine.reasons)
        t5 = time.perf_counter()
        spent["canonical"] += t1 - t0
        spent["history"] += t2 - t1
        spent["features"] += t3 - t2
        spent["score"] += t4 - t3
        spent["reasons"] += (t5 - t4) - (t4 - t3)
    started = time.perf_counter()
    for record in records:
        engine.score_record(record)
    spent["total"] = time.perf_counter() - started
    engine.close()
    database.dispose()
    return {stage: round(1e6 * seconds / len(records), 1) for stage, seconds in spent.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--split", default="2020-10-01")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args(argv)

    with scratch_database("fraud_bench_stages_") as database_url, tempfile.TemporaryDirectory() as tmp:
        model_dir, bodies, n_history = prepare(database_url, args.split, args.model, Path(tmp))
        os.environ.update(DATABASE_URL=database_url, MODEL_PATH=str(model_dir), CARD_TOKEN_KEY=TOKEN_KEY, API_KEYS="")
        from fraud_core.settings import get_settings

        get_settings.cache_clear()
        report = {"history_rows": n_history, "us_per_request": measure(bodies, args.requests)}
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
