"""Read records as numpy columns: the views the dedup kernel copies them out with.

A read record (``READ_DTYPE``) is 100 bytes; the kernel needs its EPC words and a few
numbers. Two block copies pull them out: the first ``width`` 8-byte words of the EPC as
one opaque field, and the 32-byte stretch from ``reader`` holding the port (reader and
antenna as one word), RSSI, first and last seen and the seen count. :class:`ReadColumns`
holds the numeric columns, with the common cases (every read counted once, every RSSI
known, ``last_seen`` equal to ``first_seen``) left as ``None`` so the kernel can skip work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from tagsweep.domain import EPC_HEX_MAX, READ_DTYPE, ReadBatch

Bool = npt.NDArray[np.bool_]
F4 = npt.NDArray[np.float32]
F8 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Index = npt.NDArray[np.intp]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]

EPC_WORDS: Final = EPC_HEX_MAX // 8  # an S64 EPC is eight 8-byte words
MIN_WORDS: Final = 3  # a 96-bit EPC (24 hex digits) fills exactly three words

_FIELDS = READ_DTYPE.fields
assert _FIELDS is not None
_EPC_AT: Final = _FIELDS["epc"][1]
_PORT_AT: Final = _FIELDS["reader"][1]
# (reader, antenna) are read as one 4-byte *port* word: the two u2 fields must be adjacent.
assert _FIELDS["antenna"][1] == _PORT_AT + 2


def _key_view(words: int) -> np.dtype[np.void]:
    """The first ``words`` 8-byte words of the EPC as one opaque field (a view of READ_DTYPE).

    One copy of that field pulls the words out of the 100-byte records in one pass.
    """
    return np.dtype(
        {"names": ["key"], "formats": [f"V{8 * words}"], "offsets": [_EPC_AT], "itemsize": _ITEM}
    )


_ITEM: Final = READ_DTYPE.itemsize
_KEY_VIEWS: Final = tuple(_key_view(w) for w in range(1, EPC_WORDS + 1))
#: The numeric fields the kernel needs lie in one 32-byte stretch from ``reader``: one
#: copy of it makes a compact array whose columns are cheap, aligned strided views.
_TAIL: Final = np.dtype(
    {
        "names": ["port", "rssi", "first", "last", "seen"],
        "formats": ["u4", "f4", "i8", "i8", "u4"],
        "offsets": [
            _FIELDS[name][1] - _PORT_AT
            for name in ("reader", "rssi", "first_seen_us", "last_seen_us", "seen_count")
        ],
        "itemsize": 32,
    }
)
assert _PORT_AT % 4 == 0
assert _PORT_AT + _TAIL.itemsize <= _ITEM
assert _TAIL.fields is not None
assert all(_TAIL.fields[f][1] % 8 == 0 for f in ("first", "last"))
#: Each EPC word on its own (to find how many words a batch's EPCs use).
WORD_VIEWS: Final = tuple(
    np.dtype({"names": ["w"], "formats": ["u8"], "offsets": [_EPC_AT + 8 * k], "itemsize": _ITEM})
    for k in range(EPC_WORDS)
)
_TAIL_VIEW: Final = np.dtype(
    {"names": ["tail"], "formats": ["V32"], "offsets": [_PORT_AT], "itemsize": _ITEM}
)


@dataclass(slots=True)
class ReadColumns:
    """The columns of one batch of reads (or of a part of one)."""

    port: U32
    first: I64
    last: I64 | None  # None: every read's last_seen equals its first_seen
    rssi: F4
    count: U64 | None  # None: every read counts once
    known: Bool | None  # None: every RSSI is known

    def take(self, rows: Index) -> ReadColumns:
        return ReadColumns(
            port=np.take(self.port, rows),
            first=np.take(self.first, rows),
            last=None if self.last is None else np.take(self.last, rows),
            rssi=np.take(self.rssi, rows),
            count=None if self.count is None else np.take(self.count, rows),
            known=None if self.known is None else np.take(self.known, rows),
        )

    def weights(self) -> tuple[U64, F8, F8]:
        """Per read: read count, RSSI weight (0 when unknown), rssi * weight."""
        count = np.ones(len(self.first), dtype=np.uint64) if self.count is None else self.count
        weight = count.astype(np.float64)
        if self.known is not None:
            weight[~self.known] = 0.0
        return count, weight, np.where(weight > 0, self.rssi * weight, 0.0)


def read_columns(reads: ReadBatch, width: int) -> tuple[U64, ReadColumns]:
    """EPC words (n, ``width``) and the other columns, in two copies."""
    n = len(reads)
    words = reads.view(_KEY_VIEWS[width - 1])["key"].copy().view(np.uint64).reshape(n, width)
    tail = reads.view(_TAIL_VIEW)["tail"].copy().view(_TAIL)
    first: I64 = tail["first"].copy()
    last: I64 = tail["last"]
    rssi: F4 = tail["rssi"].copy()
    seen: U32 = tail["seen"]
    known = None
    if np.isnan(rssi.sum()):  # a NaN (unknown RSSI) somewhere, or infinities
        known = ~np.isnan(rssi)
        if known.all():
            known = None
    return words, ReadColumns(
        port=tail["port"].copy(),
        first=first,
        last=None if np.array_equal(first, last) else np.maximum(first, last),
        rssi=rssi,
        count=None if seen.max() <= 1 else np.maximum(seen, 1).astype(np.uint64),
        known=known,
    )
