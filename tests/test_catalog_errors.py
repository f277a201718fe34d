"""A bad catalog reports every problem with file, field (and line) and reason."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from parley.catalog import CatalogError, load_catalog
from parley.rules.templates import PromptContext, PromptError, PromptTemplate
from support.catalog import copy_catalog


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_catalog(tmp_path)


def problems_for(root: Path) -> list[str]:
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    assert str(raised.value) == "\n".join(raised.value.problems)
    return raised.value.problems


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_yaml_syntax_error_gives_the_line(root: Path) -> None:
    (root / "personalities" / "creative.yaml").write_text(
        "id: creative\nname: Creative\ntraits: [a, b\ntone: warm\n"
    )
    [problem] = problems_for(root)
    assert problem.startswith("personalities/creative.yaml: line 4, column ")
    assert "YAML syntax error" in problem


def test_unknown_field_names_file_line_and_field(root: Path) -> None:
    edit(
        root / "personalities" / "analytical.yaml",
        "tone: professional",
        "tone: professional\ncolour: blue",
    )
    [problem] = problems_for(root)
    assert problem.startswith("personalities/analytical.yaml: line 7: colour: unknown field")


def test_missing_field_is_reported(root: Path) -> None:
    edit(root / "personalities" / "supportive.yaml", "tone: warm\n", "")
    [problem] = problems_for(root)
    assert problem.startswith("personalities/supportive.yaml: ")
    assert "tone: Field required" in problem


def test_nested_field_path_and_line(root: Path) -> None:
    edit(
        root / "rules" / "financial_advisor.yaml",
        "      replacement: potential returns\n",
        "      replacement: potential returns\n      replacment: typo\n",
    )
    [problem] = problems_for(root)
    assert "rules/financial_advisor.yaml: line " in problem
    assert "output.replace[0].replacment: unknown field" in problem


def test_duplicate_yaml_keys_are_errors(root: Path) -> None:
    edit(
        root / "personalities" / "creative.yaml",
        "tone: enthusiastic",
        "tone: enthusiastic\ntone: calm",
    )
    [problem] = problems_for(root)
    assert problem == "personalities/creative.yaml: line 6: duplicate key 'tone'"


def test_id_must_match_the_file_name(root: Path) -> None:
    edit(root / "personalities" / "creative.yaml", "id: creative", "id: inventive")
    problems = problems_for(root)
    assert any(
        "creative.yaml: line 1: id: must match the file name 'creative'" in p for p in problems
    )


def test_every_problem_is_listed_at_once(root: Path) -> None:
    edit(root / "agents.yaml", "personality: creative", "personality: whimsical")
    edit(root / "agents.yaml", "rules: technical_support\n", "rules: plumbing\n")
    edit(root / "rules" / "content_creator.yaml", "temperature: 0.9", "temperature: 7")
    edit(root / "rules" / "technical_support.yaml", "models: []", 'models: ["gpt-4o"]')
    problems = problems_for(root)
    assert any(
        "agents.yaml: line " in p and "agents[1].personality: unknown personality 'whimsical'" in p
        for p in problems
    )
    assert any("agents[2].rules: unknown rule set 'plumbing'" in p for p in problems)
    assert any("content_creator.yaml" in p and "limits.temperature" in p for p in problems)
    assert any(
        "technical_support.yaml" in p and "limits.models[0]" in p and "provider:model" in p
        for p in problems
    )


def test_unbounded_output_pattern_is_rejected_with_its_field(root: Path) -> None:
    edit(root / "rules" / "financial_advisor.yaml", r"'\brisk[- ]free\b'", r"'\brisk\w+'")
    [problem] = problems_for(root)
    assert "rules/financial_advisor.yaml: line " in problem
    assert "output.replace[4].regex: unbounded quantifier" in problem


def test_catastrophic_pattern_is_rejected(root: Path) -> None:
    edit(
        root / "rules" / "technical_support.yaml",
        r"'\b(?:keygen|",
        r"'(?:[a-z]{1,9}\s?){1,9}(?:keygen|",
    )
    [problem] = problems_for(root)
    assert "input.block[0].regex: too much backtracking" in problem


def test_bad_include_and_disable_are_reported(root: Path) -> None:
    edit(
        root / "rules" / "content_creator.yaml",
        "include: [_common]",
        "include: [_shared]\ndisable: [nope]",
    )
    problems = problems_for(root)
    assert (
        "rules/content_creator.yaml: include: unknown fragment '_shared' (known: _common)"
        in problems
    )
    assert "rules/content_creator.yaml: disable: no included rule 'nope'" in problems


def test_a_broken_fragment_is_reported_once_not_by_every_includer(root: Path) -> None:
    edit(root / "rules" / "_common.yaml", "  max_length: 8000", "  max_length: lots")
    problems = problems_for(root)
    assert len(problems) == 1, problems
    assert problems[0].startswith("rules/_common.yaml: line ")
    assert "input.max_length" in problems[0]


def test_a_fragment_with_a_yaml_error_is_reported_once(root: Path) -> None:
    edit(root / "rules" / "_common.yaml", "input:", "input: [")
    [problem] = problems_for(root)
    assert problem.startswith("rules/_common.yaml: line ")
    assert "YAML syntax error" in problem


def test_duplicate_rule_ids_after_include_are_reported(root: Path) -> None:
    edit(root / "rules" / "technical_support.yaml", "- id: password", "- id: email_address")
    problems = problems_for(root)
    assert problems == [
        "rules/technical_support.yaml: input.redact: rule id 'email_address' is used twice "
        "(after includes)"
    ]


def test_template_syntax_error_is_reported_with_template_line(root: Path) -> None:
    edit(root / "personalities" / "creative.yaml", "Today is {{ date }}.", "Today is {{ date }.")
    [problem] = problems_for(root)
    assert problem.startswith("personalities/creative.yaml: line ")
    assert "prompt: template syntax error on line 2" in problem


def test_undefined_template_variable_fails_at_load(root: Path) -> None:
    edit(root / "personalities" / "creative.yaml", "{{ user_name }}", "{{ user.email }}")
    [problem] = problems_for(root)
    assert "prompt: template error: 'user' is undefined" in problem


def test_sandbox_blocks_internals_at_load(root: Path) -> None:
    edit(root / "personalities" / "creative.yaml", "{{ date }}", "{{ ''.__class__.__mro__ }}")
    [problem] = problems_for(root)
    assert "prompt: template blocked by the sandbox" in problem


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ agent.__class__.__init__.__globals__ }}",
        "{{ date.__class__.__subclasses__() }}",
        "{{ agent.items.__self__ }}",
        "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
    ],
)
def test_sandbox_refuses_attribute_access_to_internals(source: str) -> None:
    context = PromptContext("Ann", date(2025, 1, 1), "a", "A", "d", "D", "")
    with pytest.raises(PromptError, match="sandbox"):
        PromptTemplate(source).render(context)


def test_sandbox_caps_huge_string_building() -> None:
    with pytest.raises(PromptError, match="sandbox"):
        PromptTemplate("{{ 'x' * 100000000 }}").render({})


def test_missing_agents_file_and_empty_folders(tmp_path: Path) -> None:
    (tmp_path / "personalities").mkdir()
    problems = problems_for(tmp_path)
    assert "rules/: directory not found in " + str(tmp_path) in problems
    assert any(p.startswith("agents.yaml: cannot read the file") for p in problems)
