"""The Kubernetes hub's parts: the Helm values it reads, the pod objects it builds, what a
pod's status says, and what it uses of KubeSpawner beyond its API."""
