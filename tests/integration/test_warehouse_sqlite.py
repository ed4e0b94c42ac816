"""The embedded default: init-db and import on a SQLite file, through the CLI, and the same reads."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fraud_cli import main as cli
from fraud_core.db import make_engine, session_scope
from fraud_core.db import repository as repo
from fraud_core.db.migrate import current_revision, head_revision

pytestmark = pytest.mark.integration


def main(argv: list[str]) -> int:
    """Run the CLI in-process and return its exit status (typer exits via SystemExit on success)."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture
def small_file(sample_path: Path, tmp_path: Path) -> Path:
    """The first 3,000 rows of the sample, plus two bad rows, as a CSV."""
    raw = pd.read_parquet(sample_path).iloc[:3_000].copy()
    raw["amt"] = raw["amt"].astype(object)
    raw.loc[raw.index[[10, 20]], "amt"] = "n/a"
    path = tmp_path / "small.csv"
    raw.to_csv(path, index=False)
    return path


def test_init_db_and_import_twice_on_sqlite(
    small_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARD_TOKEN_KEY", "sqlite-smoke-key-0123456789")
    url = f"sqlite:///{tmp_path / 'var' / 'fraud.db'}"
    assert main(["init-db", "--database-url", url]) == 0
    assert "schema created" in capsys.readouterr().out
    assert current_revision(url) == head_revision()
    assert main(["init-db", "--database-url", url]) == 0
    assert "up to date" in capsys.readouterr().out

    assert main(["import", "--data", str(small_file), "--database-url", url]) == 0
    out = capsys.readouterr()
    assert "read 3,000, inserted 2,998, skipped 0 duplicates, rejected 2" in out.out
    assert "rows loaded" in out.err
    assert main(["import", "--data", str(small_file), "--database-url", url]) == 0
    assert "read 3,000, inserted 0, skipped 2,998 duplicates, rejected 2" in capsys.readouterr().out

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            counts = connection.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM transactions), (SELECT count(DISTINCT trans_num) FROM transactions), "
                    "(SELECT count(*) FROM labels WHERE origin = 'import'), (SELECT count(*) FROM rejected_records)"
                )
            ).one()
            assert tuple(counts) == (2_998, 2_998, 2_998, 4)  # rejections are logged per import
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            assert mode == "wal"
    finally:
        engine.dispose()


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["import", "--data", str(tmp_path / "missing.parquet"), "--database-url", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: no such file: {tmp_path / 'missing.parquet'}"
    not_kaggle = tmp_path / "other.csv"
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(not_kaggle, index=False)
    assert main(["import", "--data", str(not_kaggle), "--database-url", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "missing column" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_repository_reads_on_sqlite(sqlite_engine: Engine, sample_path: Path) -> None:
    from fraud_core.data import read_raw, to_canonical

    frame = to_canonical(read_raw(sample_path), token_key="k" * 20).frame
    day = frame[(frame["event_time"] >= "2019-03-10") & (frame["event_time"] < "2019-03-11")]
    with session_scope(sqlite_engine) as session:
        inserted = repo.insert_transactions(day, session=session, source="feed")
        assert sorted(inserted) == sorted(day["trans_num"])
        assert repo.insert_transactions(day, session=session, source="feed") == []
        preds = pd.DataFrame(
            {
                "trans_num": day["trans_num"],
                "model_version": "v1",
                "score": 0.9,
                "threshold": 0.5,
                "decision": True,
                "risk_level": "high",
            }
        )
        assert repo.insert_predictions(preds, session=session) == len(day)
        assert repo.upsert_labels(day.loc[:, ["trans_num", "is_fraud"]], session=session, origin="feed") == len(day)
    with session_scope(sqlite_engine) as session:
        kpis = repo.daily_kpis(date(2019, 3, 10), session=session)
        assert (kpis.transactions, kpis.flagged, kpis.labelled) == (len(day), len(day), len(day))
        assert kpis.fraud == int(day["is_fraud"].sum())
        hours = repo.fraud_rate_by("hour", session=session)
        assert (
            hours.set_index("hour")["transactions"].to_dict() == day.groupby(day["event_time"].dt.hour).size().to_dict()
        )
        volume = repo.volume_over_time(session=session, freq="day")
        assert list(volume["period"]) == [pd.Timestamp("2019-03-10")]
        assert len(repo.review_queue(session=session, limit=5)) == 5
        latest = repo.latest_scored_transactions(session=session, limit=3)
        assert latest["card"].str.match(r"^\*\*\*\* \d{4}$").all()
        back = repo.get_transactions(list(day["trans_num"].iloc[:5]), session=session)
        assert list(back.set_index("trans_num").loc[day["trans_num"].iloc[:5], "event_time"]) == list(
            day["event_time"].iloc[:5]
        )
