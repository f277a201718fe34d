"""Example services for the shipped tools (``tools/*.yaml``); they need no key or network.

- :mod:`parley.examples.orders`: an order and ticket service over HTTP.
- :mod:`parley.examples.mcp_server`: a service-status MCP server (stdio or HTTP).
"""
