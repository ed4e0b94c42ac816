"""``fraud-detector up``: the whole system on one machine, from a fresh clone, until Ctrl-C.

What it does, in order (each step is skipped when its work is already done):

1. checks that its ports are free and that no other ``up`` uses the same ``var/``;
2. starts a local Prefect server (``PREFECT_HOME`` under ``var/``) in the background;
3. creates or upgrades the warehouse (``DATABASE_URL``, or the SQLite file under ``var/``);
4. cuts the bundled sample into history and a stream, imports the history if the warehouse is
   empty, and trains and registers a champion on it if the registry has none;
5. starts the transaction source, the web app and (optionally) the MLflow UI;
6. creates the ``fraud-process`` work pool, deploys ``prefect.yaml``, starts a worker and asks for
   a first ``etl-and-predict`` run at once rather than at the next tick of its schedule;
7. prints the URLs, then watches: a child that dies stops everything with its log's last lines;
   SIGINT or SIGTERM stops every child and waits for them.

Logs go to ``var/logs/<name>.log``; the terminal gets one line per step.

The modules:

* :mod:`~fraud_cli.up.options`: what ``up`` was asked for (:class:`UpOptions`) and the terminal
  report (:class:`Report`);
* :mod:`~fraud_cli.up.supervisor`: the children: start, logs, readiness, a clean stop;
* :mod:`~fraud_cli.up.prefect_api`: the few Prefect API calls, through Prefect's own client;
* :mod:`~fraud_cli.up.steps`: the steps (ports, the pid lock, the children's environment, the
  warehouse, the champion, the Prefect server, the deployments, the worker);
* :mod:`~fraud_cli.up.run`: :func:`~fraud_cli.up.run.run_up`, which runs the steps in order and
  watches.

Nothing is imported here: ``fraud-detector --help`` imports this package's options only.
"""

from __future__ import annotations
