"""Load a catalog root (``personalities/``, ``rules/``, ``agents.yaml``) in one go.

Loading never stops at the first problem: every file is read and validated,
cross-references are checked, and every agent's prompt is trial-rendered,
so an operator sees the full list of what to fix in one :class:`CatalogError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from parley.catalog.agent import Agent, Personality
from parley.catalog.binding import AgentBinder
from parley.catalog.catalog import Catalog
from parley.catalog.errors import CatalogError
from parley.catalog.files import Document, describe, read_yaml, validate
from parley.catalog.schema import AgentsFile, PersonalityFile
from parley.knowledge.folders import declared_collections
from parley.rules.ruleset import RuleSet, build_ruleset
from parley.rules.schema import RulesFile
from parley.rules.templates import PromptError, PromptTemplate
from parley.tools.ids import declared_tool_ids

AGENTS_FILE = "agents.yaml"
SAMPLE_DAY = date(2024, 1, 31)


def load_catalog(root: Path) -> Catalog:
    problems: list[str] = []
    personality_docs = _documents(root, "personalities", problems)
    rules_docs = _documents(root, "rules", problems)
    agents_doc = read_yaml(root / AGENTS_FILE, AGENTS_FILE, problems)
    version = catalog_version([*personality_docs.values(), *rules_docs.values(), agents_doc])
    personalities = _load_personalities(personality_docs, problems)
    rule_sets = _load_rule_sets(
        rules_docs,
        _stems(root / "rules"),
        declared_tool_ids(root),
        declared_collections(root),
        problems,
    )
    agents: dict[str, Agent] = {}
    composed: dict[tuple[str, str], Agent] = {}
    spec = validate(agents_doc, AgentsFile, problems) if agents_doc else None
    if spec is not None and agents_doc is not None:
        broken = (_stems(root / "personalities") - set(personalities)) | (
            _stems(root / "rules") - set(rule_sets)
        )
        binder = AgentBinder(
            agents_doc, personalities, rule_sets, broken=broken, version=version, problems=problems
        )
        agents, composed = binder.named(spec), binder.composed(spec)
        for agent in [*agents.values(), *composed.values()]:
            _trial_render(agent, problems)
    if problems:
        raise CatalogError(problems)
    return Catalog(
        version=version,
        personalities=personalities,
        rule_sets=rule_sets,
        agents=agents,
        composed=composed,
    )


def catalog_version(documents: Sequence[Document | None]) -> str:
    """A short hash of every file's name and text, as read: same files, same version."""
    digest = hashlib.sha256()
    for document in sorted((d for d in documents if d), key=lambda d: d.name):
        digest.update(f"{document.name}\0{document.text}\0".encode())
    return digest.hexdigest()[:12]


def _stems(folder: Path) -> set[str]:
    return {path.stem for path in folder.glob("*.yaml")}


def _documents(root: Path, folder: str, problems: list[str]) -> dict[str, Document]:
    """Parsed files of one folder, keyed by file stem (which must equal the id)."""
    if not (root / folder).is_dir():
        problems.append(f"{folder}/: directory not found in {root}")
        return {}
    found: dict[str, Document] = {}
    for path in sorted((root / folder).glob("*.yaml")):
        document = read_yaml(path, f"{folder}/{path.name}", problems)
        if document is not None:
            found[path.stem] = document
    return found


def _id_matches_file(document: Document, stem: str, found: str, problems: list[str]) -> bool:
    if found == stem:
        return True
    problems.append(describe(document, ("id",), f"must match the file name {stem!r}"))
    return False


def _load_personalities(
    documents: dict[str, Document], problems: list[str]
) -> dict[str, Personality]:
    loaded: dict[str, Personality] = {}
    for stem, document in documents.items():
        spec = validate(document, PersonalityFile, problems)
        if spec is None or not _id_matches_file(document, stem, spec.id, problems):
            continue
        loaded[spec.id] = Personality(
            id=spec.id,
            name=spec.name,
            description=spec.description,
            traits=tuple(spec.traits),
            tone=spec.tone,
            approach=spec.approach,
            prompt=PromptTemplate(spec.prompt),
        )
    if not documents and not problems:
        problems.append("personalities/: no personality files (*.yaml)")
    return loaded


def _load_rule_sets(
    documents: dict[str, Document],
    stems: set[str],
    tool_ids: set[str],
    collections: set[str],
    problems: list[str],
) -> dict[str, RuleSet]:
    """Rule sets merged with their fragments; ``stems`` names every file of ``rules/``."""
    specs: dict[str, tuple[RulesFile, Document]] = {}
    for stem, document in documents.items():
        spec = validate(document, RulesFile, problems)
        if spec is not None and _id_matches_file(document, stem, spec.id, problems):
            specs[spec.id] = (spec, document)
            _check_tool_ids(document, spec, tool_ids, problems)
            _check_collections(document, spec, collections, problems)
    fragments = {key: spec for key, (spec, _) in specs.items() if spec.is_fragment}
    # Files already reported as broken: a rule set including one is left out
    # unreported, rather than every includer calling it an unknown fragment.
    broken = stems - specs.keys()
    loaded: dict[str, RuleSet] = {}
    for key, (spec, document) in specs.items():
        if spec.is_fragment:
            if spec.include:
                problems.append(describe(document, ("include",), "fragments cannot include"))
            continue
        if broken.intersection(spec.include):
            continue
        try:
            loaded[key] = build_ruleset(spec, fragments)
        except ValueError as error:
            problems.extend(f"{document.name}: {line}" for line in str(error).splitlines())
    if not documents and not problems:
        problems.append("rules/: no rule set files (*.yaml)")
    return loaded


def _check_tool_ids(
    document: Document, spec: RulesFile, tool_ids: set[str], problems: list[str]
) -> None:
    """Agents can only narrow a rule set's tools, so checking rule sets covers them too."""
    known = ", ".join(sorted(tool_ids)) or "none"
    for position, tool in enumerate(spec.tools):
        if tool not in tool_ids:
            reason = f"unknown tool {tool!r} (tools/*.yaml and built-ins: {known})"
            problems.append(describe(document, ("tools", position), reason))


def _check_collections(
    document: Document, spec: RulesFile, collections: set[str], problems: list[str]
) -> None:
    known = ", ".join(sorted(collections)) or "none"
    for position, name in enumerate(spec.knowledge):
        if name not in collections:
            reason = f"unknown knowledge collection {name!r} (knowledge/*/: {known})"
            problems.append(describe(document, ("knowledge", position), reason))


def _trial_render(agent: Agent, problems: list[str]) -> None:
    """Render once with sample values so a template error fails the load, not a chat."""
    try:
        agent.system_prompt(user_name="Sample User", today=SAMPLE_DAY)
    except PromptError as error:
        problems.append(f"{AGENTS_FILE}: agent {agent.id!r}: system prompt: {error}")
