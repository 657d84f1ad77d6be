"""The storage port's value types: what crosses a process boundary comes back whole."""

from __future__ import annotations

import pickle
from dataclasses import fields

from openspine.platform.storage.ports import PutResource, ResourceState


def test_a_put_pickles_by_every_field_in_order() -> None:
    put = PutResource(
        "Patient",
        "9000000009",
        3,
        b'{"id":"9000000009"}',
        2,
        ResourceState.SUPERSEDED,
        b'{"id":"9000000009","restricted":true}',
        "9000000017",
        (("fd", "SMITH|1990-01-01"), ("sx", "1990-01-01|S530")),
    )
    reduced = put.__reduce__()
    # A field added to PutResource but not to its __reduce__ fails here, not in a bulk load.
    assert reduced[1] == tuple(getattr(put, f.name) for f in fields(put))
    pickled = pickle.dumps(put, protocol=pickle.HIGHEST_PROTOCOL)
    assert pickle.loads(pickled) == put  # noqa: S301 (bytes this test made)
