"""Readers and row validation: real Kaggle rows, the real-time format, malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fraud_core.data import (
    DataFormatError,
    card_token,
    mask_card,
    parse_realtime_payload,
    read_raw,
    records_to_raw,
    to_canonical,
)
from fraud_core.schema import CANONICAL_COLUMNS, UNIX_TIME_OFFSET_SECONDS

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parents[1] / "fixtures"
KEY = "unit-test-key-0123456789"


@pytest.fixture(scope="module")
def kaggle_rows() -> pd.DataFrame:
    return read_raw(FIXTURES / "kaggle_train_rows.csv")


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client would send them."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def test_reads_real_kaggle_csv_with_its_index_column(kaggle_rows: pd.DataFrame) -> None:
    assert "Unnamed: 0" not in kaggle_rows.columns
    batch = to_canonical(kaggle_rows, token_key=KEY)
    assert batch.rejected == []
    assert len(batch.frame) == 50
    assert list(batch.frame.columns) == [*CANONICAL_COLUMNS, "is_fraud"]
    assert batch.frame["is_fraud"].sum() == 10
    first = batch.frame.iloc[0]
    assert first["event_time"] == pd.Timestamp("2019-01-01 00:00:18")
    assert first["amount"] == pytest.approx(4.97)
    assert first["card_last4"] == "2095"
    assert first["card_id"] == card_token("2703186189652095", KEY)


def test_personal_data_is_not_kept(kaggle_rows: pd.DataFrame) -> None:
    frame = to_canonical(kaggle_rows, token_key=KEY).frame
    for column in ("cc_num", "first", "last", "street", "unix_time"):
        assert column not in frame.columns
    clear_numbers = set(kaggle_rows["cc_num"].astype(str))
    assert not clear_numbers & set(frame["card_id"])
    assert not any(number in frame.to_csv() for number in clear_numbers)


def test_unix_time_alone_gives_the_real_event_time(kaggle_rows: pd.DataFrame) -> None:
    raw = kaggle_rows.drop(columns=["trans_date_trans_time"])
    frame = to_canonical(raw, token_key=KEY).frame
    expected = pd.to_datetime(kaggle_rows["trans_date_trans_time"]).astype("datetime64[us]")
    assert (frame["event_time"].to_numpy() == expected.to_numpy()).all()
    assert (
        kaggle_rows["unix_time"].iloc[0] + UNIX_TIME_OFFSET_SECONDS == pd.Timestamp("2019-01-01 00:00:18").timestamp()
    )


def test_bad_rows_are_named_and_good_neighbours_kept(kaggle_rows: pd.DataFrame) -> None:
    records = _records(kaggle_rows.head(8))
    records[1]["amt"] = -3
    records[2]["category"] = "casino"
    records[3]["trans_date_trans_time"] = "not a date"
    records[4]["lat"] = 123.0
    records[5]["cc_num"] = "4000-12x"
    del records[6]["merchant"]
    records[7]["amt"] = "12,5"
    batch = to_canonical(records_to_raw(records), token_key=KEY)
    assert len(batch.frame) == 1
    assert batch.frame["trans_num"].iloc[0] == records[0]["trans_num"]
    got = {r.row: (r.field, r.reason) for r in batch.rejected}
    assert got[1] == ("amt", "out of range (must be > 0 and <= 1e+06)")
    assert got[2][0] == "category" and "unknown value" in got[2][1]
    assert got[3] == ("trans_date_trans_time", "not a date-time")
    assert got[4][0] == "lat" and "out of range" in got[4][1]
    assert got[5] == ("cc_num", "must be 8 to 19 ASCII digits (spaces and dashes allowed between them)")
    assert got[6] == ("merchant", "missing")
    assert got[7] == ("amt", "not a number")
    assert batch.rejected[0].message().startswith("row 1: amt:")


def test_rejected_payload_never_holds_the_card_number(kaggle_rows: pd.DataFrame) -> None:
    records = _records(kaggle_rows.head(2))
    records[0]["amt"] = 0
    rejected = to_canonical(records_to_raw(records), token_key=KEY).rejected
    assert len(rejected) == 1
    payload = rejected[0].payload
    assert "cc_num" not in payload
    assert payload["card_last4"] == str(records[0]["cc_num"])[-4:]
    assert str(records[0]["cc_num"]) not in json.dumps(payload, default=str)


def test_duplicate_trans_num_in_a_batch_keeps_the_first(kaggle_rows: pd.DataFrame) -> None:
    records = _records(kaggle_rows.head(3))
    records[2]["trans_num"] = records[0]["trans_num"]
    batch = to_canonical(records_to_raw(records), token_key=KEY)
    assert len(batch.frame) == 2
    assert [(r.row, r.field) for r in batch.rejected] == [(2, "trans_num")]


def test_normalising_in_slices_equals_normalising_at_once(kaggle_rows: pd.DataFrame) -> None:
    """What the import does (one slice loading while the next is normalised) loses no rejection."""
    from fraud_core.db.importer import normalised_chunks

    raw = pd.concat([kaggle_rows] * 3, ignore_index=True)  # every trans_num three times
    raw["trans_num"] = raw["trans_num"].astype(object)
    n = len(kaggle_rows)
    raw.loc[n:, "trans_num"] = [f"{t}-{i}" for i, t in enumerate(raw.loc[n:, "trans_num"])]
    raw.loc[n + 1, "trans_num"] = raw.loc[1, "trans_num"]  # repeats a row of an earlier slice
    raw["amt"] = raw["amt"].astype(object)
    raw.loc[2, "amt"] = "not-a-number"  # an invalid first occurrence ...
    raw.loc[2 * n + 3, "trans_num"] = raw.loc[2, "trans_num"]  # ... still wins over a later valid one
    raw.loc[n + 5, "trans_num"] = raw.loc[n + 4, "trans_num"]  # a repeat inside one slice

    whole = to_canonical(raw, token_key=KEY)
    for chunk_rows in (1, 7, n, len(raw)):
        parts = list(normalised_chunks(raw, token_key=KEY, chunk_rows=chunk_rows))
        frame = pd.concat([p.frame for p in parts], ignore_index=True)
        pd.testing.assert_frame_equal(frame, whole.frame)
        rejected = [(r.row, r.field, r.reason, r.trans_num) for p in parts for r in p.rejected]
        assert rejected == [(r.row, r.field, r.reason, r.trans_num) for r in whole.rejected], chunk_rows
    assert {r.row for r in whole.rejected} == {2, n + 1, n + 5, 2 * n + 3}


def test_missing_trans_num_generated_only_when_asked(kaggle_rows: pd.DataFrame) -> None:
    records = _records(kaggle_rows.head(1))
    del records[0]["trans_num"]
    assert to_canonical(records_to_raw(records), token_key=KEY).rejected[0].field == "trans_num"
    frame = to_canonical(records_to_raw(records), token_key=KEY, generate_trans_num=True).frame
    assert len(frame) == 1 and len(frame["trans_num"].iloc[0]) == 32


def test_booleans_are_not_numbers(kaggle_rows: pd.DataFrame) -> None:
    records = _records(kaggle_rows.head(1))
    records[0]["amt"] = True
    rejected = to_canonical(records_to_raw(records), token_key=KEY).rejected
    assert (rejected[0].field, rejected[0].reason) == ("amt", "not a number")


def test_realtime_payload_single_and_double_encoded(kaggle_rows: pd.DataFrame) -> None:
    row = kaggle_rows.head(1).drop(columns=["unix_time"]).copy()
    row["current_time"] = 1_700_000_000_000
    once = row.to_json(orient="split", date_format="iso")
    for payload in (once, json.dumps(once), once.encode()):
        raw = parse_realtime_payload(payload)
        batch = to_canonical(raw, token_key=KEY)
        assert batch.rejected == []
        assert batch.frame["trans_num"].iloc[0] == kaggle_rows["trans_num"].iloc[0]
        assert batch.frame["event_time"].iloc[0] == pd.Timestamp("2019-01-01 00:00:18")
        assert batch.frame["released_at"].iloc[0] == pd.Timestamp("2023-11-14 22:13:20")
        assert batch.frame["is_fraud"].iloc[0] == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"columns": ["a"], "data": [[1]]}), "missing column"),
        (json.dumps({"index": [0]}), "not a pandas split frame"),
        (json.dumps({"columns": ["a", "b"], "data": [[1]]}), "row 0 has 1 values for 2 columns"),
    ],
)
def test_realtime_payload_errors(payload: str, message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        parse_realtime_payload(payload)


def test_read_raw_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no such file"):
        read_raw(tmp_path / "missing.parquet")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataFormatError, match="unsupported file type"):
        read_raw(tmp_path / "notes.txt")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataFormatError, match="cannot read"):
        read_raw(tmp_path / "broken.parquet")
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(DataFormatError, match="missing column"):
        read_raw(tmp_path / "other.csv")


def test_tokens_are_keyed_and_masking_shows_four_digits() -> None:
    assert card_token("4111111111111111", "key-a") != card_token("4111111111111111", "key-b")
    assert card_token(4111111111111111, "key-a") == card_token("4111111111111111", "key-a")
    assert mask_card("1111") == "**** 1111"
