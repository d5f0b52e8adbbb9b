"""The project's files beside the code: LICENSE, CITATION.cff and CHANGELOG.md agree with
pyproject.toml (licence and version)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def test_license_is_mit_and_matches_pyproject() -> None:
    text = _text("LICENSE")
    assert text.startswith("MIT License")
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    lic = _project()["license"]
    assert (lic["text"] if isinstance(lic, dict) else lic) == "MIT"


def test_citation_version_matches_pyproject() -> None:
    # A plain read of the top-level key, so this holds without PyYAML too.
    found = re.findall(r"^version:\s*['\"]?([^'\"\s#]+)", _text("CITATION.cff"), re.MULTILINE)
    assert found == [_project()["version"]]


def test_citation_is_valid_cff_yaml() -> None:
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load(_text("CITATION.cff"))
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff[key], key
    assert str(cff["version"]) == _project()["version"]
    assert cff["license"] == "MIT"
    for ref in cff["references"]:
        assert ref["type"] and ref["title"] and ref["authors"], ref.get("title")


def test_changelog_latest_release_matches_pyproject() -> None:
    text = _text("CHANGELOG.md")
    assert re.search(r"^## \[Unreleased\]", text, re.MULTILINE)
    releases = re.findall(r"^## \[(\d[^\]]*)\] - (\d{4}-\d{2}-\d{2})", text, re.MULTILINE)
    assert releases, "no released version in CHANGELOG.md"
    assert releases[0][0] == _project()["version"]
