"""Simulated LLRP reader: our reader-side encoder, the TCP server and tag sources.

Public surface: :class:`LlrpSimulator`, :class:`Fault`, :class:`FaultKind`,
:class:`ConnectionLog`, :class:`ReaderIdentity`, the tag sources :func:`random_tags`
and :func:`batches_source`, and :data:`TagSource` (what the world model implements).
"""

from tagsweep.simulators.llrp.encoder import ReaderIdentity
from tagsweep.simulators.llrp.faults import Fault, FaultKind
from tagsweep.simulators.llrp.server import ConnectionLog, LlrpSimulator
from tagsweep.simulators.llrp.sources import TagSource, batches_source, random_tags

__all__ = [
    "ConnectionLog",
    "Fault",
    "FaultKind",
    "LlrpSimulator",
    "ReaderIdentity",
    "TagSource",
    "batches_source",
    "random_tags",
]
