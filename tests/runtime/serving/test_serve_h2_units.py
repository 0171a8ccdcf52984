"""HPACK against RFC 7541's examples, and the HTTP/2 connection driven frame by frame."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from modelship_runtime.serving import h2, hpack


def test_hpack_rfc7541_examples_without_and_with_huffman() -> None:
    for blocks in (
        ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865",
         "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"],
        ["828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf",
         "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"],
    ):
        d = hpack.Decoder()
        first, second, third = (d.decode(bytes.fromhex(b)) for b in blocks)
        assert first == [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
                         (b":authority", b"www.example.com")]
        assert second[-1] == (b"cache-control", b"no-cache")
        assert third == [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
                         (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")]
        assert d.size == 164 and [n for n, _ in d.table] == [b"custom-key", b"cache-control", b":authority"]


@pytest.mark.parametrize("block", [
    "ff",                    # an index whose integer never ends
    "be",                    # dynamic index 62 into an empty table
    "80",                    # index 0
    "0f",                    # a literal cut short
    "4085",                  # a string longer than the block
    "3fe21f",                # a table size update to 4097, above the 4096 advertised
    "4081ff0161",            # a Huffman string of EOS bits
    "ffffffffffff7f",        # an integer above 2^28
])
def test_hpack_refuses_malformed_blocks(block: str) -> None:
    with pytest.raises(hpack.HpackError):
        hpack.Decoder().decode(bytes.fromhex(block))


def test_hpack_huffman_round_trip_and_table_eviction() -> None:
    for text in (b"", b"a", b"application/grpc", bytes(range(256))):
        assert hpack.huffman_decode(hpack.huffman_encode(text)) == text
    d = hpack.Decoder(max_table_size=100)
    d.decode(hpack.encode_int(0, 6, 0x40) + b"\x01a" + b"\x40" + b"x" * 0x40)  # 1 + 64 + 32 = 97 bytes
    assert d.size == 97
    d.decode(b"\x40\x01b\x01c")  # 34 more: the first entry goes
    assert d.table == [(b"b", b"c")] and d.size == 34


class FakeTransport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return None


class Echo:
    """Answers every request with its body; remembers what was too large."""

    def __init__(self) -> None:
        self.large: list[int] = []

    def request(self, conn: h2.H2Connection, stream: h2.Stream) -> None:
        conn.respond(stream, hpack.encode_indexed(8), b"".join(stream.body), hpack.encode_literal(b"x", b"1"))

    def too_large(self, conn: h2.H2Connection, stream: h2.Stream) -> None:
        self.large.append(stream.id)
        conn.respond(stream, hpack.encode_literal(b":status", b"413"))


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    out = []
    pos = 0
    while pos < len(data):
        word, flags, sid = struct.unpack_from(">IBI", data, pos)
        n = word >> 8
        out.append((word & 0xFF, flags, sid, data[pos + 9 : pos + 9 + n]))
        pos += 9 + n
    return out


def connect(max_body: int = 1 << 20) -> tuple[h2.H2Connection, FakeTransport, Echo]:
    echo = Echo()
    conn = h2.H2Connection(echo, max_body, set())
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0))
    transport.out.clear()
    return conn, transport, echo


REQUEST = hpack.encode_indexed(3) + hpack.encode_literal(b":path", b"/x")


def test_a_request_split_anywhere_gets_one_answer() -> None:
    wire = h2.frame(h2.HEADERS, h2.END_HEADERS, 1, REQUEST) + h2.frame(h2.DATA, h2.END_STREAM, 1, b"hello")
    for cut in range(1, len(wire)):
        conn, transport, _ = connect()
        conn.data_received(wire[:cut])
        conn.data_received(wire[cut:])
        kinds = [(k, f, s) for k, f, s, _ in frames(bytes(transport.out))]
        assert kinds == [(h2.HEADERS, h2.END_HEADERS, 1), (h2.DATA, 0, 1),
                         (h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1)], cut
        assert frames(bytes(transport.out))[1][3] == b"hello" and not conn.streams


def test_responses_wait_for_the_peers_window() -> None:
    conn, transport, _ = connect()
    conn.data_received(h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, 10)))
    body = b"x" * 25
    conn.data_received(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, REQUEST) + h2.frame(h2.DATA, h2.END_STREAM, 1, body))
    sent = [f for f in frames(bytes(transport.out)) if f[0] == h2.DATA]
    assert b"".join(f[3] for f in sent) == body[:10] and 1 in conn.blocked
    for _ in range(2):
        conn.data_received(h2.frame(h2.WINDOW_UPDATE, 0, 1, struct.pack(">I", 10)))
    out = frames(bytes(transport.out))
    assert b"".join(f[3] for f in out if f[0] == h2.DATA) == body
    assert out[-1][:3] == (h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1) and not conn.blocked


def test_padding_continuation_ping_and_settings_ack() -> None:
    conn, transport, _ = connect()
    padded = h2.frame(h2.HEADERS, h2.PADDED, 1, bytes([3]) + REQUEST[:2] + b"\0\0\0")
    rest = h2.frame(h2.CONTINUATION, h2.END_HEADERS, 1, REQUEST[2:])
    data = h2.frame(h2.DATA, h2.END_STREAM | h2.PADDED, 1, bytes([2]) + b"ab" + b"\0\0")
    conn.data_received(padded + rest + data + h2.frame(h2.PING, 0, 0, b"12345678"))
    out = frames(bytes(transport.out))
    assert (h2.PING, h2.ACK, 0, b"12345678") in out
    assert [f[3] for f in out if f[0] == h2.DATA] == [b"ab"]


@pytest.mark.parametrize("wire, code", [
    (h2.frame(h2.DATA, 0, 0, b"x"), h2.PROTOCOL_ERROR),
    (h2.frame(h2.HEADERS, h2.END_HEADERS, 2, REQUEST), h2.PROTOCOL_ERROR),
    (h2.frame(h2.HEADERS, 0, 1, REQUEST) + h2.frame(h2.DATA, 0, 1, b"x"), h2.PROTOCOL_ERROR),
    (h2.frame(h2.HEADERS, h2.END_HEADERS, 1, b"\xbe"), h2.COMPRESSION_ERROR),
    (h2.frame(h2.PING, 0, 0, b"1234"), h2.FRAME_SIZE_ERROR),
    (h2.frame(h2.SETTINGS, 0, 0, b"12345"), h2.FRAME_SIZE_ERROR),
    (h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", h2.S_MAX_FRAME_SIZE, 5)), h2.PROTOCOL_ERROR),
    (h2.frame(h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)), h2.PROTOCOL_ERROR),
    (h2.frame(h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1)), h2.FLOW_CONTROL_ERROR),
    (h2.frame(h2.PUSH_PROMISE, 0, 1, b"\0\0\0\2"), h2.PROTOCOL_ERROR),
    (struct.pack(">I", (h2.MAX_FRAME + 1) << 8)[:3] + b"\0\0\0\0\0\1", h2.FRAME_SIZE_ERROR),
    (h2.frame(h2.HEADERS, h2.END_HEADERS | h2.PADDED, 1, b"\x09abc"), h2.PROTOCOL_ERROR),
])
def test_protocol_violations_end_the_connection_with_goaway(wire: bytes, code: int) -> None:
    conn, transport, _ = connect()
    conn.data_received(wire)
    goaway = [f for f in frames(bytes(transport.out)) if f[0] == h2.GOAWAY]
    assert goaway and struct.unpack(">I", goaway[0][3][4:8])[0] == code and transport.closed


def test_not_a_preface_is_refused() -> None:
    conn = h2.H2Connection(Echo(), 100, set())
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.closed


def test_a_body_over_the_limit_is_answered_early_and_the_stream_reset() -> None:
    conn, transport, echo = connect(max_body=8)
    conn.data_received(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, REQUEST) + h2.frame(h2.DATA, 0, 1, b"123456789"))
    assert echo.large == [1]
    kinds = [(k, s) for k, _, s, _ in frames(bytes(transport.out))]
    assert (h2.HEADERS, 1) in kinds and (h2.RST_STREAM, 1) in kinds
    conn.data_received(h2.frame(h2.DATA, h2.END_STREAM, 1, b"more"))  # late data is dropped, not an error
    assert not transport.closed


def test_streams_beyond_the_limit_are_refused_and_goaway_finishes_the_rest() -> None:
    class Hold(Echo):
        held: list[h2.Stream] = []

        def request(self, conn: h2.H2Connection, stream: h2.Stream) -> None:
            self.held.append(stream)

    conn = h2.H2Connection(Hold(), 100, set())
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    wire = h2.PREFACE + b"".join(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 2 * k + 1, REQUEST)
                                 for k in range(h2.MAX_STREAMS + 1))
    conn.data_received(wire)
    resets = [s for k, _, s, _ in frames(bytes(transport.out)[len(h2.SERVER_PREFACE):]) if k == h2.RST_STREAM]
    assert resets == [2 * h2.MAX_STREAMS + 1] and conn.busy
    conn.finish()
    assert not transport.closed
    for stream in Hold.held:
        conn.respond(stream, hpack.encode_indexed(8))
    assert transport.closed and conn.in_flight == 0
