"""Tool files: every problem reported at once as ``file: line: field: reason``;
argument checks; unknown tool ids in the catalog; ``parley check``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from parley.catalog import CatalogError, load_catalog
from parley.tools.env import Environment
from parley.tools.loading import HttpDeclaration, load_declarations
from parley.tools.registry import ToolRegistry
from support.catalog import copy_catalog

REPO = Path(__file__).resolve().parents[1]
ENV = Environment({"CRM_URL": "https://crm.example.com", "CRM_TOKEN": "tok"})
ORDERS = {"PARLEY_EXAMPLE_ORDERS_URL": "http://127.0.0.1:8765"}

GOOD_HTTP: dict[str, Any] = {
    "id": "crm_lookup",
    "description": "Look a customer up.",
    "parameters": {
        "type": "object",
        "properties": {"customer_id": {"type": "string"}, "fields": {"type": "string"}},
        "required": ["customer_id"],
        "additionalProperties": False,
    },
    "http": {
        "method": "GET",
        "url": "${env:CRM_URL}/customers/{customer_id}",
        "query": ["fields"],
        "headers": {"Authorization": "Bearer ${env:CRM_TOKEN}"},
    },
}


def write(root: Path, name: str, data: dict[str, Any] | str) -> None:
    (root / "tools").mkdir(exist_ok=True)
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    (root / "tools" / name).write_text(text)


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def problems(root: Path, env: Environment = ENV) -> list[str]:
    with pytest.raises(CatalogError) as raised:
        load_declarations(root, env)
    return raised.value.problems


def variant(**changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(GOOD_HTTP))
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return data


def test_a_good_file_loads(tmp_path: Path) -> None:
    write(tmp_path, "crm_lookup.yaml", GOOD_HTTP)
    [declaration] = load_declarations(tmp_path, ENV)
    assert isinstance(declaration, HttpDeclaration)
    assert declaration.request.url.placeholders == ("customer_id",)
    assert "tok" not in repr(declaration)


def test_no_tools_directory_means_no_tools(tmp_path: Path) -> None:
    assert load_declarations(tmp_path, ENV) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (variant(colour="blue"), "colour: unknown field"),
        (variant(id="other"), "line 1: id: must match the file name 'crm_lookup'"),
        (variant(http=None), "(top level): give exactly one implementation: http or mcp"),
        (variant(description=None), "description: required for an http tool"),
        (variant(timeout=0), "timeout: Input should be greater than 0"),
        (variant(http__method="FETCH"), "http.method: Input should be 'GET'"),
        (
            variant(parameters__properties__fields__type="strin"),
            "parameters: properties.fields.type: 'strin' is not valid",
        ),
        (variant(parameters__type="array"), 'parameters: must have type "object"'),
        (variant(http__query=["filter"]), "http.query[0]: 'filter' is not in parameters"),
        (
            variant(http__query=None),
            "parameters.properties.fields: never sent: use it in http.url, http.query",
        ),
        (
            variant(parameters__required=[]),
            "http.url: {customer_id} is part of the path: list it in parameters.required",
        ),
        (variant(http__body=["fields"]), "http: a GET request has no body"),
        (
            variant(http__method="POST", http__body=["fields"]),
            "http.body[0]: 'fields' is already sent in query",
        ),
        (
            variant(http__headers={"Idempotency-Key": "x"}),
            "http: headers: Idempotency-Key is set by Parley",
        ),
        (
            variant(http__headers={"X-Key": "${env:MISSING_KEY}"}),
            "http.headers.X-Key: environment variable MISSING_KEY is not set",
        ),
        (variant(http__url="${env:CRM_URL}/c?id={customer_id}"), "only appear in the path"),
        (variant(http__url="${python}/customers/{customer_id}"), "unknown reference ${python}"),
        (variant(id="handoff_to_human"), "id: 'handoff_to_human' is a built-in tool"),
    ],
)
def test_problems_name_the_file_line_and_field(
    tmp_path: Path, data: dict[str, Any], expected: str
) -> None:
    name = "handoff_to_human.yaml" if data["id"] == "handoff_to_human" else "crm_lookup.yaml"
    write(tmp_path, name, data)
    found = problems(tmp_path)
    assert any(p.startswith(f"tools/{name}: ") and expected in p for p in found), found


@pytest.mark.parametrize(
    ("mcp", "expected"),
    [
        ({"command": ["x"], "url": "http://h/mcp"}, "exactly one of command"),
        ({}, "exactly one of command"),
        ({"url": "http://h/mcp", "env": {"A": "b"}}, "env applies to a command"),
        ({"command": ["x"], "headers": {"A": "b"}}, "headers apply to a url"),
        ({"command": ["x"], "env": {"T": "${env:NOPE}"}}, "mcp.env.T: environment variable NOPE"),
        ({"command": ["${home}/x"]}, "mcp.command[0]: unknown reference ${home}"),
        ({"url": "ftp://h/mcp"}, "mcp.url: must be an absolute http"),
        ({"url": "http://h/{x}"}, "mcp.url: must not contain {placeholders}"),
        ({"command": ["x"], "expose": []}, "mcp.expose: List should have at least 1 item"),
    ],
)
def test_mcp_file_problems(tmp_path: Path, mcp: dict[str, Any], expected: str) -> None:
    write(tmp_path, "remote.yaml", {"id": "remote", "mcp": mcp})
    found = problems(tmp_path)
    assert any(p.startswith("tools/remote.yaml: ") and expected in p for p in found), found


def test_mcp_files_take_description_and_schema_from_the_server(tmp_path: Path) -> None:
    write(tmp_path, "remote.yaml", {"id": "remote", "description": "x", "mcp": {"command": ["x"]}})
    [problem] = problems(tmp_path)
    assert "come from the MCP server" in problem


def test_every_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "crm_lookup.yaml", variant(colour="blue"))
    write(tmp_path, "broken.yaml", "id: broken\nhttp: [unclosed\n")
    write(tmp_path, "remote.yaml", {"id": "remote", "mcp": {"command": ["${env:NOPE}"]}})
    found = problems(tmp_path)
    assert [p.split(":")[0] for p in found] == [
        "tools/broken.yaml",
        "tools/crm_lookup.yaml",
        "tools/remote.yaml",
    ]
    assert "YAML syntax error" in found[0]


# -- argument checks ----------------------------------------------------------------------


@pytest.fixture
async def crm(tmp_path: Path) -> Any:
    write(tmp_path, "crm_lookup.yaml", GOOD_HTTP)
    registry = ToolRegistry(environ={"CRM_URL": "https://crm.example.com", "CRM_TOKEN": "t"})
    await registry.start(tmp_path)
    yield registry.select(["crm_lookup"])["crm_lookup"]
    await registry.aclose()


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ('{"customer_id": ', "arguments are not valid JSON"),
        ('["c1"]', "arguments must be a JSON object, not list"),
        ('{"customer_id": 7}', "customer_id: 7 is not of type 'string'"),
        ("{}", "'customer_id' is a required property"),
        ('{"customer_id": "c1", "admin": true}', "Additional properties are not allowed"),
        ('{"customer_id": "' + "x" * 70_000 + '"}', "arguments are too long"),
    ],
)
async def test_check_returns_a_reason_for_bad_arguments(
    crm: Any, arguments: str, reason: str
) -> None:
    result = crm.check(arguments)
    assert isinstance(result, str) and reason in result


async def test_check_returns_the_arguments_when_they_are_valid(crm: Any) -> None:
    assert crm.check('{"customer_id": "c1", "fields": "name"}') == {
        "customer_id": "c1",
        "fields": "name",
    }


# -- the catalog knows which tool ids exist --------------------------------------------------


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return copy_catalog(tmp_path)


def test_the_shipped_catalog_lists_the_shipped_tools(catalog: Path) -> None:
    loaded = load_catalog(catalog)
    assert loaded.agent("agent_gamma").tools == (
        "lookup_order",
        "create_ticket",
        "status_page",
        "handoff_to_human",
    )


@pytest.fixture
def small_catalog(tmp_path: Path) -> Path:
    """One personality, one rule set allowing two tools, one agent: independent of the
    shipped rules, which other work changes."""
    (tmp_path / "personalities").mkdir()
    (tmp_path / "rules").mkdir()
    personality = {
        "id": "plain",
        "name": "Plain",
        "traits": ["clear"],
        "tone": "neutral",
        "approach": "direct",
        "prompt": "You are {{ agent.name }}.",
    }
    rules = {"id": "support", "name": "Support", "tools": ["lookup_order", "handoff_to_human"]}
    agent = {"id": "helper", "name": "Helper", "personality": "plain", "rules": "support"}
    (tmp_path / "personalities" / "plain.yaml").write_text(yaml.safe_dump(personality))
    (tmp_path / "rules" / "support.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    (tmp_path / "agents.yaml").write_text(yaml.safe_dump({"agents": [agent]}))
    shutil.copytree(REPO / "tools", tmp_path / "tools")
    return tmp_path


def test_a_small_catalog_with_known_tools_loads(small_catalog: Path) -> None:
    agent = load_catalog(small_catalog).agent("helper")
    assert agent.tools == ("lookup_order", "handoff_to_human")


def test_a_rule_set_listing_an_unknown_tool_is_a_catalog_problem(small_catalog: Path) -> None:
    rules = small_catalog / "rules" / "support.yaml"
    rules.write_text(rules.read_text().replace("lookup_order", "lookup_orders"))
    with pytest.raises(CatalogError) as raised:
        load_catalog(small_catalog)
    [problem] = raised.value.problems
    assert problem.startswith(f"rules/support.yaml: line {line_of(rules, 'lookup_orders')}: ")
    assert "tools[0]: unknown tool 'lookup_orders'" in problem
    assert "handoff_to_human" in problem  # the known ids include the built-ins


def test_an_agent_listing_an_unknown_tool_is_a_catalog_problem(small_catalog: Path) -> None:
    agents = small_catalog / "agents.yaml"
    data = yaml.safe_load(agents.read_text())
    data["agents"][0]["tools"] = ["lookup_order", "teleport"]
    agents.write_text(yaml.safe_dump(data))
    with pytest.raises(CatalogError) as raised:
        load_catalog(small_catalog)
    [problem] = raised.value.problems
    assert problem.startswith(f"agents.yaml: line {line_of(agents, 'teleport')}: ")
    assert "agents[0].tools[1]: tool 'teleport' is not allowed" in problem


def test_a_broken_tool_file_is_not_also_reported_as_unknown(small_catalog: Path) -> None:
    (small_catalog / "tools" / "lookup_order.yaml").write_text("id: [broken\n")
    load_catalog(small_catalog)  # the tool file's own problem is the tool loader's to report


def test_without_tool_files_only_built_ins_are_known(small_catalog: Path) -> None:
    shutil.rmtree(small_catalog / "tools")
    with pytest.raises(CatalogError) as raised:
        load_catalog(small_catalog)
    [problem] = raised.value.problems
    known = "handoff_to_human, knowledge_search"
    assert f"unknown tool 'lookup_order' (tools/*.yaml and built-ins: {known})" in problem


# -- parley check -----------------------------------------------------------------------------


def parley_check(catalog: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "PARLEY_EXAMPLE_ORDERS_URL"}
    environ.update(PARLEY_CATALOG=str(catalog), PARLEY_DATA_DIR=str(catalog / "data"), **env)
    return subprocess.run(
        [sys.executable, "-m", "parley", "check", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_starts_the_mcp_servers_and_lists_every_tool(catalog: Path) -> None:
    result = parley_check(catalog, **ORDERS)
    assert result.returncode == 0, result.stderr
    listed = "tools: create_ticket, handoff_to_human, knowledge_search, lookup_order, "
    assert listed in result.stdout
    assert "status_page__known_issues, status_page__service_status" in result.stdout


def test_check_reports_tool_problems_with_the_catalogs(catalog: Path) -> None:
    write(catalog, "crm_lookup.yaml", variant(colour="blue"))
    unset = variant(id="crm_unset", http__url="${env:PARLEY_TEST_NEVER_SET}/customers")
    write(catalog, "crm_unset.yaml", unset)
    path = catalog / "rules" / "financial_advisor.yaml"
    path.write_text(path.read_text() + "\ntools: [teleport]\n")
    result = parley_check(catalog, "--offline")
    assert result.returncode == 1
    lines = [line.strip() for line in result.stderr.splitlines()]
    assert any(line.startswith("rules/financial_advisor.yaml: line ") for line in lines)
    colour = line_of(catalog / "tools" / "crm_lookup.yaml", "colour")
    expected = f"tools/crm_lookup.yaml: line {colour}: colour: unknown field"
    assert any(line.startswith(expected) for line in lines), lines
    assert any("PARLEY_TEST_NEVER_SET is not set" in line for line in lines), lines
    # The example order service's URL is the exception: serve starts it when unset.
    assert not any("PARLEY_EXAMPLE_ORDERS_URL" in line for line in lines)


def test_check_offline_does_not_start_mcp_servers(catalog: Path) -> None:
    status = catalog / "tools" / "status_page.yaml"
    status.write_text(status.read_text().replace('"${python}"', '"/nonexistent/python"'))
    offline = parley_check(catalog, "--offline", **ORDERS)
    assert offline.returncode == 0, offline.stderr
    tools = "create_ticket, handoff_to_human, knowledge_search, lookup_order, status_page"
    assert f"tools: {tools}" in offline.stdout
    online = parley_check(catalog, **ORDERS)
    assert online.returncode == 1
    line = line_of(status, "mcp:")
    assert f"tools/status_page.yaml: line {line}: mcp: the server did not start" in online.stderr


def test_check_reports_expose_names_the_server_lacks(catalog: Path) -> None:
    status = catalog / "tools" / "status_page.yaml"
    status.write_text(status.read_text().replace("known_issues]", "known_issues, reboot]"))
    result = parley_check(catalog, **ORDERS)
    assert result.returncode == 1
    line = line_of(status, "expose:")
    expected = f"tools/status_page.yaml: line {line}: mcp.expose[2]: "
    assert expected + "the server has no tool 'reboot'" in result.stderr
