"""The load generator: its own process (``python -m bench.load``), driven by the harness.

* :mod:`bench.load.generator`: the commands it takes over stdin/stdout;
* :mod:`bench.load.turns`: opening and timing one stream of whichever kind;
* :mod:`bench.load.ws`: Parley's WebSocket protocol;
* :mod:`bench.load.sse`: streamed POSTs (Parley's SSE, the vendors' streams);
* :mod:`bench.load.tally`: what a stream's frames say, turned into a result;
* :mod:`bench.load.idle` and :mod:`bench.load.soak`: silent sockets, steady load.
"""
