"""The Kubernetes hub's parts: the Helm values it reads, the pod objects it builds and what
a pod's status says. What it uses of KubeSpawner beyond its API is in
``codepilot_spawner.upstream_api.kubespawner``."""
