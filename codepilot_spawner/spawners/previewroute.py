"""Where the preview gateway reaches a server's app: the part of a spawner's state it reads.

Both spawners write a ``PreviewRoute`` into their state with ``to_state()``; the gateway
reads the hub's user models (``admin:server_state``) and rebuilds it with
``from_state()``. The spawner keeps its own keys beside it (``pid``, the sandbox's
``process_tag``, ``network`` and ``cgroup``, KubeSpawner's ``pod_name``).

On one machine the gateway connects to the app itself, on loopback, inside the server's
network namespace when it has one. On Kubernetes it connects to the pod's relay sidecar
at ``<pod IP>:<relay_port>``, which carries the connection to the app's port in the pod.
"""

from dataclasses import asdict, dataclass

from codepilot_contracts.relay import start_line

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class PreviewRoute:
    start_id: str  # new at every start of the server: sign-ins to a previous one end
    app_port: int  # the app's own port, in the server's network
    relay_port: int = 0  # the pod's relay, which the gateway connects to; 0: none
    host: str = LOOPBACK  # where the gateway connects: a pod's IP on Kubernetes
    netns: str = ""  # path of the server's network namespace; empty: the machine's network
    relay_checks_start: bool = False  # the relay takes only connections that name start_id
    # Ports never previewed: the server's own (its IDE's) and those forwarded to the hub.
    reserved_ports: tuple[int, ...] = ()
    relay_picks_port: bool = False  # the relay reaches the port its start line names

    @property
    def previews_ports(self) -> bool:
        """Whether other ports than ``app_port`` are reached (``<port>--<label>`` hosts, an
        app that ignores ``PORT``): only where the server has a network of its own whose
        listening sockets the last hop reads (a namespace the gateway enters, knowing the
        server's own ports; a relay that checks each port); never the machine's shared
        loopback, nor a server started before its route named its own ports."""
        in_namespace = bool(self.netns and self.reserved_ports)
        return in_namespace or (self.relay_picks_port and self.relay_checks_start)

    @property
    def port(self) -> int:
        """The port the gateway connects to: the relay's, or the app's when there is none."""
        return self.relay_port or self.app_port

    @property
    def connection_preamble(self) -> bytes:
        """What each connection begins with: the start line for a relay that checks it (a
        reused pod IP then reaches no other server's app), else nothing."""
        return self.preamble_for(0)

    def preamble_for(self, port: int) -> bytes:
        """The preamble of a connection to ``port`` (0: the app's, as the relay finds it)."""
        if not self.relay_checks_start:
            return b""
        return start_line(self.start_id, port if self.relay_picks_port else 0)

    def to_state(self) -> dict:
        """The spawner state keys of this route, one per field."""
        state = asdict(self)
        state["reserved_ports"] = list(self.reserved_ports)  # JSON in the hub's database
        return state

    @classmethod
    def from_state(cls, state: dict) -> "PreviewRoute | None":
        """The route in a spawner's state; None for a server with no preview route (not
        started, or a pod without a relay)."""
        if "app_port" not in state and "preview_port" in state:
            return cls._from_legacy_state(state)
        if not state.get("app_port"):
            return None
        return cls(
            start_id=str(state.get("start_id") or ""),
            app_port=int(state["app_port"]),
            relay_port=int(state.get("relay_port") or 0),
            host=str(state.get("host") or LOOPBACK),
            netns=str(state.get("netns") or ""),
            relay_checks_start=bool(state.get("relay_checks_start")),
            reserved_ports=tuple(int(p) for p in state.get("reserved_ports") or ()),
            relay_picks_port=bool(state.get("relay_picks_port")),
        )

    @classmethod
    def _from_legacy_state(cls, state: dict) -> "PreviewRoute | None":
        # The keys of versions before this record. Servers they started keep running
        # across a hub upgrade, with this state in the hub's database until they stop.
        # ``preview_port`` was the app's port on one machine (start: ``process_tag``) and
        # the relay's in a pod (``preview_host``, ``preview_app_port``, ``start_id``).
        port = int(state.get("preview_port") or 0)
        if not port:
            return None
        if state.get("preview_host"):
            return cls(
                start_id=str(state.get("start_id") or ""),
                app_port=int(state.get("preview_app_port") or 0),
                relay_port=port,
                host=str(state["preview_host"]),
                relay_checks_start=bool(state.get("preview_start_check")),
            )
        return cls(
            start_id=str(state.get("process_tag") or ""),
            app_port=port,
            netns=str(state.get("netns") or ""),
        )
