"""Tools agents can call: HTTP endpoints and MCP servers declared in ``tools/*.yaml``,
and built-ins. :class:`~parley.tools.registry.ToolRegistry` loads and serves them.

(This file also makes ``parley.tools`` a regular package, so a non-editable
install, such as the Docker image's, includes it.)
"""
