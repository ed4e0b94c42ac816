"""A small model trained once per session on the bundled sample's training period."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fraud_core.ml.artifact import ModelArtifact

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "fraud_sample.parquet"
#: The sample holds both periods; as with the full files, only what precedes the split is training.
SPLIT = pd.Timestamp("2020-06-21")
TOKEN_KEY = "model-tests-token-key"
DELAY_DAYS = 7.0


@pytest.fixture(scope="session")
def sample_raw() -> pd.DataFrame:
    return pd.read_parquet(SAMPLE)


@pytest.fixture(scope="session")
def sample_canonical(sample_raw: pd.DataFrame) -> pd.DataFrame:
    from fraud_core.data import to_canonical

    batch = to_canonical(sample_raw, token_key=TOKEN_KEY, require_label=True)
    assert not batch.rejected
    return batch.frame.sort_values(["event_time", "trans_num"], kind="stable").reset_index(drop=True)


@pytest.fixture(scope="session")
def sample_train(sample_canonical: pd.DataFrame) -> pd.DataFrame:
    return sample_canonical[sample_canonical["event_time"] < SPLIT].reset_index(drop=True)


@pytest.fixture(scope="session")
def sample_test(sample_canonical: pd.DataFrame) -> pd.DataFrame:
    return sample_canonical[sample_canonical["event_time"] >= SPLIT].reset_index(drop=True)


@pytest.fixture(scope="session")
def trained_dir(sample_train: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model (hgb), trained on the sample before 2020-06-21 and saved."""
    from fraud_core.ml.artifact import save_artifact
    from fraud_core.ml.train import train_model

    artifact = train_model(
        sample_train, kind="hgb", validation_weeks=4, label_delay_days=DELAY_DAYS, threshold_strategy="f1", threads=1
    )
    return save_artifact(artifact, tmp_path_factory.mktemp("models") / "hgb")


@pytest.fixture(scope="session")
def trained(trained_dir: Path) -> ModelArtifact:
    from fraud_core.ml.artifact import load_artifact

    return load_artifact(trained_dir)
