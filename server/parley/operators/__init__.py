"""People taking conversations over from agents, and the handoff webhook.

``store`` (Postgres), ``desk`` (takeover, release, operator replies),
``events`` (the operations channel), ``webhook`` and ``deliveries``.
"""
