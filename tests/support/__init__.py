"""Helpers shared by the test suites and benchmarks, one job a module.

- ``helm``: the real helm over the chart (fetch, run, render); ``value_sets``: the value
  sets the chart is rendered with; ``manifests``: look-ups over Kubernetes objects.
- ``kube_hub``: the Kubernetes hub config loaded from values, and spawners made from it.
- ``terminals``: terminals of a user server over terminado's websocket protocol.
- ``students``: a user of the one-machine hub with a running server.
- ``sync_cli``: ``python -m server_extension.sync`` as the spawners run it.
- ``timing``: percentiles, latency summaries and timed spawns for the benchmarks.
- ``localhost``: ``*.localhost`` resolved to loopback, as browsers do.

Parts started for real: ``hubtools`` (the one-machine hub, as `make up` runs it),
``jupyterserver`` (a jupyter server), ``s3server`` (moto's S3 API), ``kubeapi`` (a
Kubernetes API on loopback); ``isolationtools`` looks into a server's sandbox;
``sync_machine`` is the sync engine's stateful property model; ``forkprobe`` and
``startcheck`` run in a server's place (``python -m tests.support.forkprobe``). Fixtures
used by several modules are in ``tests/conftest.py``. Test modules import only from this
package, never from one another.
"""
