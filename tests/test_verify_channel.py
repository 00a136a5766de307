"""The channel of ``ddpm verify``.

What the child emits arrives intact, and nothing else is taken for a record.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import struct

import pytest
import torch

from ddpm.verify import channel
from ddpm.verify.channel import ChannelError, Reader, Recorder, decode, make_writer, new_key


def written(key: bytes, *records: tuple[str, dict], end: bool = True) -> bytes:
    out = bytearray()
    emit, finish = make_writer(out.extend, key)
    for kind, fields in records:
        emit(kind, **fields)
    if end:
        finish()
    return bytes(out)


def frame(key: bytes, seq: int, payload: dict, blobs: bytes = b"") -> bytes:
    """A frame built by hand, as a hostile file would (with or without the right key)."""
    header = json.dumps(payload).encode()
    body = struct.pack(">QI", seq, len(header)) + header + blobs
    return b"DDPM" + struct.pack(">I", len(body)) + body + hmac.new(key, body, hashlib.sha256).digest()


def test_values_and_tensors_round_trip() -> None:
    rec = Recorder()
    x = torch.randn(3, 4, dtype=torch.float64)
    fields = dict(
        none=None,
        yes=True,
        n=-7,
        big=2**70,
        f=0.25,
        nan=math.nan,
        inf=-math.inf,
        s="x_t ≠ x_0",
        seq=(1, [2.5, "a"]),
        d={"k": {"$t": 1}, "t": x},
        f32=x.float()[:, ::2],
        i64=torch.arange(5),
        b=torch.tensor([True, False]),
        scalar=torch.tensor(3.0),
        empty=torch.zeros(0, 2),
        neg=-torch.ones(2),
        stride0=torch.ones(1, dtype=torch.float64).expand(5).reshape(-1)[:1],
        transposed=torch.arange(6).reshape(2, 3).T,
    )
    rec("probe", **fields)
    (r,) = rec.records
    assert r.kind == "probe" and r.seq == 0 and r["n"] == -7 and r["big"] == 2**70 and r["s"] == "x_t ≠ x_0"
    assert r["none"] is None and r["yes"] is True and math.isnan(r["nan"]) and r["inf"] == -math.inf
    assert r["seq"] == [1, [2.5, "a"]]
    assert r["d"]["k"] == {"$t": 1}  # a user's dict that looks like a tag stays a dict
    assert torch.equal(r["d"]["t"], x) and r["d"]["t"].dtype == torch.float64
    assert torch.equal(r["f32"], x.float()[:, ::2]) and r["f32"].shape == (3, 2)
    assert torch.equal(r["i64"], torch.arange(5)) and torch.equal(r["b"], torch.tensor([True, False]))
    assert r["scalar"].shape == () and float(r["scalar"]) == 3.0
    assert r["empty"].shape == (0, 2) and torch.equal(r["neg"], -torch.ones(2))
    assert torch.equal(r["stride0"], torch.ones(1, dtype=torch.float64))  # torch calls it contiguous; stride 0
    assert torch.equal(r["transposed"], torch.arange(6).reshape(2, 3).T)
    stream = rec.end()
    assert stream.complete and stream.problem is None and len(stream.records) == 1


def test_values_that_cannot_travel_are_refused_at_emit() -> None:
    rec = Recorder()
    for bad in (
        object(),
        torch.zeros(2, dtype=torch.complex64),
        torch.zeros(2, device="meta"),
        {1: 2},
        torch.zeros([1] * 9),
        b"bytes",
    ):
        with pytest.raises(ChannelError):
            rec("x", v=bad)
    for kind in ("", "__end__", "k" * 201):
        with pytest.raises(ChannelError):
            rec(kind)
    with pytest.raises(ChannelError):
        rec(3)  # type: ignore[arg-type]  # a kind that is not a string, on purpose: the recorder refuses it
    assert rec.records == []


def test_an_intact_stream_decodes_in_order() -> None:
    key = new_key()
    data = written(key, ("a", {"i": 0}), ("b", {"i": 1}), ("c", {"i": 2}))
    s = decode(data, key)
    assert s.problem is None and [r.kind for r in s.records] == ["a", "b", "c"]
    # fed in pieces of any size, the same
    reader = Reader(key)
    for i in range(0, len(data), 7):
        reader.feed(data[i : i + 7])
    assert [r.fields for r in reader.close().records] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_a_stream_without_its_end_record_is_truncated() -> None:
    key = new_key()
    s = decode(written(key, ("a", {}), end=False), key)
    assert not s.complete and "without its end record" in (s.problem or "") and len(s.records) == 1
    whole = written(key, ("a", {"t": torch.ones(100)}))
    cut = decode(whole[:-10], key)
    assert "truncated" in (cut.problem or "")
    assert decode(b"", key).problem is not None


def test_frames_under_another_key_are_forged() -> None:
    key = new_key()
    forged = frame(new_key(), 0, {"kind": "outcome", "fields": {"$d": {"status": "pass"}}})
    s = decode(forged + written(key), key)
    assert "authentication fails" in (s.problem or "") and s.records == []
    # a forged frame in the middle spoils the rest too
    good = written(key, ("a", {}), end=False)
    s = decode(good + forged, key)
    assert "authentication fails" in (s.problem or "")


def test_replayed_reordered_or_dropped_frames_are_detected() -> None:
    key = new_key()
    out: list[bytes] = []
    emit, finish = make_writer(out.append, key)
    emit("a")
    emit("b")
    finish()
    a, b, end = out
    assert decode(a + b + end, key).problem is None
    for data in (a + a + b + end, b + a + end, a + end, a + b + b + end):
        s = decode(data, key)
        assert s.problem and "frame number" in s.problem, data
    assert "after the end record" in (decode(a + b + end + a, key).problem or "")


def test_frames_with_the_right_key_but_a_bad_body_are_malformed() -> None:
    key = new_key()
    cases: list[tuple[dict, bytes]] = [
        ({"kind": "a"}, b""),
        ({"kind": "a", "fields": {"x": 1}}, b""),
        ({"kind": "a", "fields": {"$d": {"t": {"$t": ["float32", [4], 0, 16]}}}}, b"\0" * 8),
        ({"kind": "a", "fields": {"$d": {"t": {"$t": ["object", [1], 0, 8]}}}}, b"\0" * 8),
        ({"kind": "a", "fields": {"$d": {"t": {"$t": ["float32", [3], 0, 16]}}}}, b"\0" * 16),
        ({"kind": "a", "fields": {"$d": {"t": {"$t": ["float32", [-4], 0, 16]}}}}, b"\0" * 16),
    ]
    for payload, blobs in cases:
        s = decode(
            frame(key, 0, payload, blobs) + frame(key, 1, {"kind": "__end__", "fields": {"$d": {"records": 1}}}), key
        )
        assert s.problem and "malformed" in s.problem, payload
    # an end record that miscounts
    s = decode(frame(key, 0, {"kind": "__end__", "fields": {"$d": {"records": 5}}}), key)
    assert "does not count" in (s.problem or "")


def test_bytes_not_from_the_channel_and_oversized_frames_are_refused() -> None:
    key = new_key()
    assert "mark" in (decode(b'{"stage": "done", "outcomes": []}' * 4, key).problem or "")
    huge = b"DDPM" + struct.pack(">I", channel.MAX_FRAME_BYTES + 1)
    assert "at most" in (decode(huge, key).problem or "")


def test_reader_holds_nothing_after_a_fault(monkeypatch) -> None:
    monkeypatch.setattr(channel, "MAX_STREAM_BYTES", 1000)
    key = new_key()
    reader = Reader(key)
    reader.feed(b"x" * 10)
    for _ in range(100):
        reader.feed(b"y" * 100)
    s = reader.close()
    assert s.problem and s.bytes_read == 10010 and len(reader._buf) == 0


def test_the_writer_survives_a_later_monkeypatch_of_json_and_hmac(monkeypatch) -> None:
    key = new_key()
    out = bytearray()
    emit, finish = make_writer(out.extend, key)
    monkeypatch.setattr(json.JSONEncoder, "encode", lambda *a, **k: '{"kind":"x","fields":{"$d":{}}}')
    monkeypatch.setattr(hmac, "new", lambda *a, **k: None)
    emit("a", v=1)
    finish()
    monkeypatch.undo()
    s = decode(bytes(out), key)
    assert s.problem is None and s.records[0].fields == {"v": 1}


def test_emit_after_end_raises() -> None:
    rec = Recorder()
    rec.end()
    with pytest.raises(ChannelError):
        rec("a")
