"""Helpers shared by the test suites and benchmarks, one job a module.

- ``helm``: the real helm over the chart (fetch, run, render); ``value_sets``: the value
  sets the chart is rendered with; ``manifests``: look-ups over Kubernetes objects.
- ``kube_hub``: the Kubernetes hub config loaded from values, and spawners made from it.
- ``terminals``: terminals of a user server over terminado's websocket protocol.
- ``students``: a user of the one-machine hub with a running server.
- ``sync_cli``: ``python -m server_extension.sync`` as the spawners run it.
- ``timing``: percentiles, latency summaries and timed spawns for the benchmarks.
- ``localhost``: ``*.localhost`` resolved to loopback, as browsers do.

Parts that are started for real live beside this package: ``tests/hubtools.py`` (the
one-machine hub), ``tests/jupyterserver.py`` (a jupyter server), ``tests/s3server.py``
(moto's S3 API), ``tests/kubeapi.py`` (a Kubernetes API on loopback). Fixtures used
by several modules are in ``tests/conftest.py``. Test modules import only from these,
never from one another.
"""
