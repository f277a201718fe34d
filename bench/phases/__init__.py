"""The measurements, one module per phase or family of phases.

* :mod:`bench.phases.harness`: what every phase shares (:class:`Harness`, :class:`Route`);
* :mod:`bench.phases.rounds`: one timed round of one path, alternating with the baseline;
* :mod:`bench.phases.first_token`, :mod:`bench.phases.ladder`, :mod:`bench.phases.burst`:
  latency at one stream, against concurrency, and while a burst arrives;
* :mod:`bench.phases.stall_free` and :mod:`bench.phases.scaling`: the most streams
  without a stall, on one core and across two;
* :mod:`bench.phases.storage`: what replies cost Postgres and Redis;
* :mod:`bench.phases.memory`: RSS of idle sockets and under steady load;
* :mod:`bench.phases.profiling`: py-spy's view of the server.
"""
