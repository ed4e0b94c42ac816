"""The README says what the code does: generated settings table, two-command quick start, real commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _cli_commands() -> set[str]:
    import typer.main

    from fraud_cli.main import _register_all, app

    _register_all()
    group = typer.main.get_command(app)
    return set(group.list_commands(None))  # type: ignore[arg-type]


def test_settings_table_is_generated_from_the_settings() -> None:
    from fraud_cli.settings_table import markdown_table, replace_table

    document = README.read_text()
    assert replace_table(document, markdown_table()) == document, (
        "README's settings table is out of date: run `uv run fraud-detector settings --write README.md`"
    )


def test_settings_table_lists_every_setting_once() -> None:
    from fraud_cli.settings_table import setting_docs

    docs = setting_docs()
    names = [name for d in docs for name in d.names]
    assert len(names) == len(set(names))
    assert {"DATABASE_URL", "MLFLOW_TRACKING_URI", "API_URL", "CARD_TOKEN_KEY", "FRAUD_VAR_DIR"} <= set(names)
    assert "PREFECT_FLOWS_DASK_SCHEDULER_ADDRESS" in names
    table = _section("Configuration")
    for doc in docs:
        assert f"| `{doc.env}`" in table and all(f"(or `{other}`)" in table for other in doc.also)


def test_settings_table_generator_refuses_an_undocumented_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from fraud_cli import settings_table as settings_doc

    monkeypatch.delitem(settings_doc.MEANINGS, "database.echo")
    with pytest.raises(ValueError, match=r"database\.echo has no meaning"):
        settings_doc.setting_docs()


def test_quick_start_is_exactly_two_commands() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", _section("Quick start"), flags=re.S)
    assert len(blocks) == 1
    assert [line.strip() for line in blocks[0].strip().splitlines()] == ["make up", "make test"]


def test_make_targets_named_in_the_readme_exist() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), flags=re.M))
    named = set(re.findall(r"`make ([a-z][a-z-]*)", README.read_text()))
    assert named, "the README names no make target"
    assert named - targets == set()


def test_fraud_detector_commands_named_in_the_readme_exist() -> None:
    named = set(re.findall(r"fraud-detector ([a-z][a-z-]+)", README.read_text()))
    named.discard("up")  # also checked below; listed to keep the message short
    assert named - _cli_commands() == set()
    assert "up" in _cli_commands()


def test_files_named_in_the_readme_exist() -> None:
    named = set(re.findall(r"`((?:deployments|flows|bench|fraud_core|data)/[\w./-]+)`", README.read_text()))
    named |= {"prefect.yaml", "compose.yaml", "Dockerfile", "CONTRIBUTING.md"}
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert missing == []


def test_benchmarks_section_is_marked_for_measured_figures() -> None:
    section = _section("Benchmarks")
    assert "bench/bench_backfill.py" in section
    assert "make bench" in section
