"""What every PostgreSQL session of OpenSpine asks of the server: that a node gone silent lets go.

Many API nodes share one database. A batch holds the head row of an audit chain (``FOR UPDATE``)
until it commits, and a leading process holds its duty's advisory lock for as long as its session
lasts (ADR 0019). A node that stops answering without closing its connection would hold them:
a machine powered off or cut off until the server's TCP keepalive noticed, by default after more
than two hours; a process frozen on a live machine for as long as it stays frozen, since its
kernel answers the keepalives. Every write of every node waits behind the head row meanwhile,
and no process runs the duty. So each session is opened with (ADR 0026):

- ``idle_in_transaction_session_timeout``: a session that stays inside a transaction without
  sending anything for this long is ended by the server, and its locks go with it. A batch sends
  its statements one after another, milliseconds apart.
- server-side TCP keepalives and ``tcp_user_timeout``: the server ends a session whose client
  no longer answers at the TCP level, also when it is idle outside a transaction (a lease).
- the same keepalives on the client's side (libpq), so a node finds out that the server is gone
  from a connection it is only waiting on.

An operator's own ``options`` in the store URL come after these, so they win where they differ.
"""

from __future__ import annotations

from typing import Final

from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["STALLED_TRANSACTION_MS", "guarded_conninfo"]

#: A session idle inside a transaction for this long is ended by the server (milliseconds).
STALLED_TRANSACTION_MS = 10_000
#: Seconds of silence before the first keepalive probe, seconds between probes, and probes
#: unanswered before the peer counts as gone: about 25 s from the last sign of life.
_KEEPALIVE_IDLE_S: Final = 10
_KEEPALIVE_INTERVAL_S: Final = 5
_KEEPALIVE_COUNT: Final = 3
#: Data sent and not acknowledged for this long also ends the connection (milliseconds).
_TCP_USER_TIMEOUT_MS: Final = 25_000


def guarded_conninfo(url: str) -> str:
    """The connection string for ``url`` with the settings above (see the module docstring)."""
    params = conninfo_to_dict(url)
    server = (
        f"-c idle_in_transaction_session_timeout={STALLED_TRANSACTION_MS}"
        f" -c tcp_keepalives_idle={_KEEPALIVE_IDLE_S}"
        f" -c tcp_keepalives_interval={_KEEPALIVE_INTERVAL_S}"
        f" -c tcp_keepalives_count={_KEEPALIVE_COUNT}"
        f" -c tcp_user_timeout={_TCP_USER_TIMEOUT_MS}"
    )
    operator = params.get("options")
    params["options"] = f"{server} {operator}" if operator else server
    params.setdefault("keepalives", 1)
    params.setdefault("keepalives_idle", _KEEPALIVE_IDLE_S)
    params.setdefault("keepalives_interval", _KEEPALIVE_INTERVAL_S)
    params.setdefault("keepalives_count", _KEEPALIVE_COUNT)
    params.setdefault("tcp_user_timeout", _TCP_USER_TIMEOUT_MS)
    return make_conninfo("", **params)
