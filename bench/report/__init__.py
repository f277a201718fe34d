"""The run's output: verdicts on the targets, the Markdown report, the plot, the files.

* :mod:`bench.report.judge`: each target judged per path from a run's results;
* :mod:`bench.report.page`: the Markdown report, section by section, from
  :mod:`bench.report.ladders`, :mod:`bench.report.first_token`,
  :mod:`bench.report.limits` and :mod:`bench.report.costs`;
* :mod:`bench.report.formatting`: how numbers and tables are written;
* :mod:`bench.report.plot`: added latency against concurrency (matplotlib);
* :mod:`bench.report.files`: ``bench.json``, ``bench.md``, ``bench.png`` and
  ``--publish`` into docs/performance.md.
"""

from typing import Any

Results = dict[str, Any]  # a run's results, as bench.json holds them
