"""prefect.yaml and the serverless variant: what Prefect's own loader reads from them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from prefect.cli.deploy._models import PrefectYamlModel

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "etl-and-predict": "flows/etl_and_predict.py:etl_and_predict",
    "weekly-quality": "flows/weekly_quality.py:weekly_quality",
    "retrain": "flows/retrain.py:retrain",
    "backfill": "flows/backfill.py:backfill",
}


def _load(path: Path) -> PrefectYamlModel:
    return PrefectYamlModel.model_validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize(
    ("path", "pool"),
    [(ROOT / "prefect.yaml", "fraud-process"), (ROOT / "deployments" / "serverless.prefect.yaml", "fraud-cloud-run")],
)
def test_deployments_schedules_and_concurrency(path: Path, pool: str) -> None:
    model = _load(path)
    deployments = {d.name: d for d in model.deployments}
    assert {name: d.entrypoint for name, d in deployments.items()} == EXPECTED
    etl = deployments["etl-and-predict"]
    assert etl.schedules is not None and len(etl.schedules) == 1
    assert etl.schedules[0].interval == timedelta(seconds=20)  # type: ignore[union-attr]
    assert etl.concurrency_limit is not None
    assert (etl.concurrency_limit.limit, etl.concurrency_limit.collision_strategy) == (1, "CANCEL_NEW")  # type: ignore[union-attr]
    assert deployments["weekly-quality"].schedules[0].cron == "0 6 * * 1"  # type: ignore[index,union-attr]
    assert deployments["retrain"].schedules[0].cron == "0 3 1 * *"  # type: ignore[index,union-attr]
    assert not deployments["backfill"].schedules  # by hand only
    assert {d.work_pool.name for d in deployments.values()} == {pool}  # type: ignore[union-attr]
    # shared settings come from anchors, not copies
    text = path.read_text()
    assert text.count("interval: 20") == 1 and text.count("collision_strategy") == 1
    for entry in EXPECTED.values():
        file, function = entry.split(":")
        assert f"def {function}(" in (ROOT / file).read_text()


def test_no_secret_in_the_files() -> None:
    for path in (ROOT / "prefect.yaml", ROOT / "deployments" / "serverless.prefect.yaml"):
        env = yaml.safe_load(path.read_text())["definitions"]["work_pools"]
        for pool in env.values():
            for key, value in pool.get("job_variables", {}).get("env", {}).items():
                assert str(value).startswith("{{") or key in {"FRAUD_ENVIRONMENT"}, (path.name, key)


def test_serverless_builds_and_pushes_the_image() -> None:
    model = _load(ROOT / "deployments" / "serverless.prefect.yaml")
    assert model.build is not None and model.push is not None
    (build,) = model.build
    (push,) = model.push
    assert build["prefect_docker.deployments.steps.build_docker_image"]["dockerfile"] == "deployments/Dockerfile"
    assert push["prefect_docker.deployments.steps.push_docker_image"]["tag"] == "{{ build-image.tag }}"
    assert (ROOT / "deployments" / "Dockerfile").is_file()
