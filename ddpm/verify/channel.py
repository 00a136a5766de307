"""The channel from the child of ``ddpm verify`` to its parent.

authenticated, numbered frames of raw records.

The child only observes (it runs the file under test and emits what it saw); the parent, which loads
none of the student's code, decides. So that nothing but the observer's own ``emit`` can put a record
in the stream, each frame carries an HMAC-SHA256 under a key the parent draws fresh for every run and
hands to the child over stdin before the student's file is imported. The key lives only in the
closure of the writer (never in a module global, argv or the environment). Each frame is numbered, so
a replayed, reordered or dropped frame is detected, and the stream must end with the end frame the
child main writes after the observer returns: a stream without it was truncated.

Frame layout (all integers big-endian)::

    b"DDPM" | u32 body length | body | HMAC-SHA256(key, body)    body = u64 seq | u32 header length | header | blobs

``header`` is UTF-8 JSON ``{"kind": str, "fields": value}`` in a tagged form that no value can imitate:
every JSON object is a tag, ``{"$d": {...}}`` for a dict and ``{"$t": [dtype, shape, offset, nbytes]}``
for a tensor whose raw little-endian bytes lie in ``blobs``. Decoding never unpickles, and every size
(frame, header, nesting, tensor dimensions, the stream as a whole) is bounded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

__all__ = [
    "ChannelError",
    "Record",
    "Reader",
    "Recorder",
    "Stream",
    "decode",
    "make_channel",
    "make_writer",
    "new_key",
    "END_KIND",
    "MAX_FRAME_BYTES",
    "MAX_STREAM_BYTES",
]

MAGIC = b"DDPM"
END_KIND = "__end__"  # the child main's last frame; never handed to decide
KEY_BYTES = 32
MAC_BYTES = 32
MAX_FRAME_BYTES = 64 * 2**20  # one record: a few large tensors; what the parent may buffer before the MAC is checked
MAX_STREAM_BYTES = 512 * 2**20  # the whole run; the parent stops keeping records beyond it
MAX_HEADER_BYTES = 8 * 2**20
MAX_RECORDS = 200_000
MAX_DEPTH = 32
MAX_NDIM = 8
MAX_KIND_CHARS = 200

# dtype name <-> torch dtype: only plain numeric types travel (no object, no complex, no quantized).
DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_NAMES = {v: k for k, v in DTYPES.items()}
_HEAD = struct.Struct(">4sI")
_BODY = struct.Struct(">QI")


class ChannelError(ValueError):
    """A value that cannot travel (emit), or a stream that is forged, malformed or cut (decode)."""


@dataclass(frozen=True)
class Record:
    """One observation of the child: ``kind`` names it, ``fields`` holds its values (tensors on the CPU)."""

    kind: str
    fields: dict
    seq: int = -1

    def __getitem__(self, name: str):
        return self.fields[name]


def new_key() -> bytes:
    """A fresh random key for one run."""
    return os.urandom(KEY_BYTES)


# ---------------------------------------------------------------------------------------------------------
# Encoding (the child side)


def _encode_value(value, blobs: list, size: list, depth: int):
    if depth > MAX_DEPTH:
        raise ChannelError(f"values nest deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, torch.Tensor):
        return _encode_tensor(value, blobs, size)
    if isinstance(value, (list, tuple)):
        return [_encode_value(v, blobs, size, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ChannelError(f"dict keys must be str, got {type(k).__name__}")
            out[k] = _encode_value(v, blobs, size, depth + 1)
        return {"$d": out}
    raise ChannelError(
        f"a {type(value).__name__} cannot travel on the channel (None, bool, int, float, str, "
        "list, tuple, dict and torch.Tensor can)"
    )


def _encode_tensor(t: torch.Tensor, blobs: list, size: list):
    if t.dtype not in _NAMES:
        raise ChannelError(f"a tensor of dtype {t.dtype} cannot travel (one of {', '.join(DTYPES)} can)")
    if t.device.type == "meta":
        raise ChannelError("a tensor on the meta device has no values to send")
    if t.dim() > MAX_NDIM:
        raise ChannelError(f"a tensor of {t.dim()} dimensions cannot travel (at most {MAX_NDIM})")
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if flat.is_conj() or flat.is_neg():
        flat = flat.resolve_conj().resolve_neg()
    data = flat.numpy().tobytes()  # numpy copes with the strides torch calls contiguous (a stride-0 element)
    if sys.byteorder != "little":  # pragma: no cover - every platform torch ships for is little-endian
        raise ChannelError("the channel sends little-endian bytes only")
    offset = size[0]
    blobs.append(data)
    size[0] += len(data)
    return {"$t": [_NAMES[t.dtype], list(t.shape), offset, len(data)]}


def make_writer(write: Callable[[bytes], None], key: bytes) -> tuple[Callable[..., None], Callable[[], None]]:
    """``(emit, end)`` writing authenticated frames through ``write(bytes)``.

    This is the child side of the channel.

    ``emit(kind, **fields)`` sends one record; ``end()`` sends the end frame (after it, emit raises). The
    key and the sequence number live in this closure only; the functions it needs are bound now, so that
    a file that later replaces ``json.dumps`` or ``hmac.new`` in their modules does not reach the frames.
    """
    emit, _, end = make_channel(write, key)
    return emit, end


def make_channel(write: Callable[[bytes], None], key: bytes):
    """``(emit, system, end)``.

    :func:`make_writer`'s two and ``system(kind, **fields)`` for the child main's own
    frames (kinds starting with ``__``), which the parent keeps apart in ``Stream.system``, never in records."""
    if not isinstance(key, bytes) or len(key) < 16:
        raise ChannelError("the channel key must be at least 16 random bytes")
    dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=True, separators=(",", ":")).encode
    mac = hmac.new
    sha256 = hashlib.sha256
    pack_head, pack_body = _HEAD.pack, _BODY.pack
    state = {"seq": 0, "ended": False}

    def send(kind: str, fields: dict) -> None:
        if state["ended"]:
            raise ChannelError("the channel is closed: the end frame was sent")
        blobs: list[bytes] = []
        size = [0]
        payload = {"kind": kind, "fields": {"$d": {k: _encode_value(v, blobs, size, 1) for k, v in fields.items()}}}
        header = dumps(payload).encode("utf-8")
        body = b"".join([pack_body(state["seq"], len(header)), header, *blobs])
        if len(header) > MAX_HEADER_BYTES or len(body) > MAX_FRAME_BYTES:
            raise ChannelError(
                f"record {kind!r} is {len(body)} bytes; one record may hold at most "
                f"{MAX_FRAME_BYTES} bytes ({MAX_HEADER_BYTES} outside tensors)"
            )
        state["seq"] += 1
        write(b"".join([pack_head(MAGIC, len(body)), body, mac(key, body, sha256).digest()]))

    def emit(kind: str, **fields) -> None:
        if not isinstance(kind, str) or not kind or len(kind) > MAX_KIND_CHARS or kind.startswith("__"):
            raise ChannelError(
                f"a record kind is a non-empty str of at most {MAX_KIND_CHARS} characters not "
                f"starting with '__', got {kind!r}"
            )
        send(kind, fields)

    def system(kind: str, **fields) -> None:
        if not (isinstance(kind, str) and kind.startswith("__") and kind != END_KIND):
            raise ChannelError(f"a system frame's kind starts with '__' and is not {END_KIND}, got {kind!r}")
        send(kind, fields)

    def end() -> None:
        send(END_KIND, {"records": state["seq"]})
        state["ended"] = True

    return emit, system, end


def fd_writer(fd: int) -> Callable[[bytes], None]:
    """``write(bytes)`` on a file descriptor, whole frames, retried on short writes."""
    os_write = os.write

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os_write(fd, view) :]

    return write


# ---------------------------------------------------------------------------------------------------------
# Decoding (the parent side)


@dataclass
class Stream:
    """What the parent read: the records in order, whether the end frame came, and what went wrong."""

    records: list[Record] = field(default_factory=list)
    system: dict = field(default_factory=dict)  # the child main's own frames by kind (``__sandbox__``)
    complete: bool = False
    error: str | None = None
    bytes_read: int = 0

    @property
    def problem(self) -> str | None:
        """Why the stream cannot be trusted as a whole, or None when it can."""
        if self.error:
            return self.error
        if not self.complete:
            return "the record stream ended without its end record (the child stopped or was stopped early)"
        return None


def _decode_value(value, blob: memoryview, depth: int):
    if depth > MAX_DEPTH:
        raise ChannelError("values nest too deep")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_decode_value(v, blob, depth + 1) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "$d" and isinstance(inner, dict):
            return {k: _decode_value(v, blob, depth + 1) for k, v in inner.items()}
        if tag == "$t":
            return _decode_tensor(inner, blob)
    raise ChannelError("a value of unknown form")


def _decode_tensor(spec, blob: memoryview) -> torch.Tensor:
    if not (isinstance(spec, list) and len(spec) == 4):
        raise ChannelError("a malformed tensor")
    dtype_name, shape, offset, nbytes = spec
    if dtype_name not in DTYPES:
        raise ChannelError(f"a tensor of unknown dtype {dtype_name!r}")
    ok = (
        isinstance(shape, list)
        and len(shape) <= MAX_NDIM
        and all(type(n) is int and 0 <= n <= MAX_FRAME_BYTES for n in shape)
        and type(offset) is int
        and type(nbytes) is int
        and 0 <= offset
        and 0 <= nbytes
        and offset + nbytes <= len(blob)
    )
    if not ok:
        raise ChannelError("a tensor whose shape or bytes are out of bounds")
    dtype = DTYPES[dtype_name]
    itemsize = torch.empty((), dtype=dtype).element_size()
    if math.prod(shape) * itemsize != nbytes:
        raise ChannelError(f"a tensor of shape {shape} and dtype {dtype_name} with {nbytes} bytes")
    if nbytes == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(blob[offset : offset + nbytes]), dtype=dtype).reshape(shape)


class Reader:
    """Feeds on the bytes of the channel as they come [parent side].

    Keeps the records of an intact stream.

    After the first fault (a bad MAC, a frame out of order, a malformed record, bytes past a bound or
    after the end frame) it records the error, drops what it holds of the frame and ignores the rest,
    so that a hostile child cannot make the parent hold more than the bounds.
    """

    def __init__(self, key: bytes):
        self._key = key
        self._buf = bytearray()
        self.stream = Stream()

    def _fail(self, why: str) -> None:
        if self.stream.error is None:
            self.stream.error = why
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        s = self.stream
        s.bytes_read += len(data)
        if s.error is not None:
            return
        if s.bytes_read > MAX_STREAM_BYTES:
            return self._fail(f"the record stream exceeds {MAX_STREAM_BYTES} bytes")
        if s.complete:
            if data:
                self._fail("bytes after the end record")
            return
        self._buf += data
        while s.error is None and len(self._buf) >= _HEAD.size:
            magic, length = _HEAD.unpack_from(self._buf)
            if magic != MAGIC:
                return self._fail("a frame without the channel's mark (bytes not written by the channel)")
            if length > MAX_FRAME_BYTES:
                return self._fail(f"a frame of {length} bytes (at most {MAX_FRAME_BYTES})")
            total = _HEAD.size + length + MAC_BYTES
            if len(self._buf) < total:
                return
            body = bytes(self._buf[_HEAD.size : _HEAD.size + length])
            tag = bytes(self._buf[_HEAD.size + length : total])
            del self._buf[:total]
            self._frame(body, tag)
            if s.complete and self._buf:
                self._fail("bytes after the end record")

    def _frame(self, body: bytes, tag: bytes) -> None:
        s = self.stream
        if not hmac.compare_digest(hmac.new(self._key, body, hashlib.sha256).digest(), tag):
            return self._fail("a frame whose authentication fails (forged, or not from this run)")
        if len(body) < _BODY.size:
            return self._fail("a frame too short for its header")
        seq, hlen = _BODY.unpack_from(body)
        expected = len(s.records) + len(s.system)
        if seq != expected:
            return self._fail(f"frame number {seq} where {expected} was due (a frame replayed, dropped or reordered)")
        if hlen > MAX_HEADER_BYTES or _BODY.size + hlen > len(body):
            return self._fail("a frame whose header is out of bounds")
        try:
            payload = json.loads(body[_BODY.size : _BODY.size + hlen].decode("utf-8"))
            if not (
                isinstance(payload, dict) and set(payload) == {"kind", "fields"} and isinstance(payload["kind"], str)
            ):
                raise ChannelError("a record without kind and fields")
            fields = _decode_value(payload["fields"], memoryview(body)[_BODY.size + hlen :], 0)
            if not isinstance(fields, dict):
                raise ChannelError("record fields that are not a dict")
        except (ValueError, RecursionError) as exc:  # json, utf-8 and ChannelError are ValueErrors
            return self._fail(f"a malformed record: {exc}")
        kind = payload["kind"]
        if kind == END_KIND:
            if fields != {"records": expected}:
                return self._fail("an end record that does not count the records before it")
            s.complete = True
            return
        if kind.startswith("__"):
            if kind in s.system:
                return self._fail(f"a second {kind} frame")
            s.system[kind] = fields
            return
        if len(s.records) >= MAX_RECORDS:
            return self._fail(f"more than {MAX_RECORDS} records")
        s.records.append(Record(kind, fields, seq))

    def close(self) -> Stream:
        """The stream as read; bytes left of an unfinished frame make it truncated."""
        if self._buf and self.stream.error is None:
            self._fail("the record stream stops inside a frame (truncated)")
        return self.stream


def decode(data: bytes, key: bytes) -> Stream:
    """The records in ``data``, a whole stream as the child wrote it."""
    reader = Reader(key)
    reader.feed(data)
    return reader.close()


class Recorder:
    """An ``emit``-compatible callable for in-process tests.

    Each record is encoded and decoded as the channel would.

    ``Recorder()(kind, **fields)``; the decoded :class:`Record` objects accumulate in ``.records``. A value
    that cannot travel raises :class:`ChannelError` here exactly as in the child.
    """

    def __init__(self):
        key = new_key()
        self._reader = Reader(key)
        self._emit, self._end = make_writer(self._reader.feed, key)

    def __call__(self, kind: str, **fields) -> None:
        self._emit(kind, **fields)
        if self._reader.stream.error:
            raise ChannelError(self._reader.stream.error)

    @property
    def records(self) -> list[Record]:
        return self._reader.stream.records

    def end(self) -> Stream:
        """Send the end frame (as the child main does) and return the whole decoded stream."""
        self._end()
        return self._reader.close()
