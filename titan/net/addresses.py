"""Several master addresses, for masters that share a PostgreSQL journal (one leads, the others wait).

A standby binds no socket until it leads, so a peer connected to every master's address with
ZMQ_IMMEDIATE reaches the leader alone: ZeroMQ queues messages only on completed connections. When the
leader goes, its connection drops, the next leader binds, and the peer's socket connects to it by
itself; a request that got no answer meanwhile is sent again under its request id (the SDK's channel)
and answered from the journaled reply cache if the old leader had already done it. This is why a
standby does not answer "not the leader" instead: nothing needs to know which address leads.
"""

from __future__ import annotations

from typing import List, Tuple

import zmq

from titan import defaults

# A connection that carries no ZMTP heartbeat answer for this long is dropped, so a leader whose machine
# vanished (no TCP reset) stops taking requests within seconds.
PEER_HEARTBEAT_MS, PEER_TIMEOUT_MS = 1000, 3000


def masters(hosts: str, default_port: int) -> List[Tuple[str, int]]:
    """"h1,h2" or "h1:9090,h2:9091" (a port per host, else `default_port`) as [(host, base port)]."""
    found = []
    for entry in (part.strip() for part in str(hosts).split(",")):
        if not entry:
            continue
        host, _, port = entry.rpartition(":") if entry.count(":") == 1 else ("", "", "")
        found.append((host, int(port)) if host and port.isdigit() else (entry, default_port))
    if not found:
        raise ValueError(f"no master address in {hosts!r}: expected HOST or HOST:PORT, comma-separated")
    return found


def endpoints(hosts: str, default_port: int, offset: int) -> str:
    """The tcp:// endpoints of one of the masters' sockets (`offset`), comma-separated (see connect_all)."""
    return ",".join(f"tcp://{host}:{defaults.port_for(port, offset)}" for host, port in masters(hosts, default_port))


def connect_all(socket: zmq.Socket, address: str) -> None:
    """Connect to each comma-separated endpoint; with several, reach only the one that is bound (the
    leader) and find the next leader soon after a takeover."""
    each = [part for part in address.split(",") if part]
    if len(each) > 1:
        socket.setsockopt(zmq.IMMEDIATE, 1)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, int(defaults.MULTI_MASTER_RECONNECT_MAX_S * 1000))
        socket.setsockopt(zmq.HEARTBEAT_IVL, PEER_HEARTBEAT_MS)
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, PEER_TIMEOUT_MS)
    for endpoint in each:
        socket.connect(endpoint)
