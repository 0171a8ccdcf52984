"""HPACK (RFC 7541): the header compression of HTTP/2, decoding side, plus fixed encodings.

The server decodes every header block a client sends (the dynamic table must
stay in step with the client's encoder even for headers it ignores) and
encodes its own few response headers without the dynamic table (literals
"without indexing" and static-table references), so nothing on the encoding
side has state. gRPC clients index their request headers after the first
call, so a typical block is a handful of one-byte references; Huffman-coded
literals that repeat (user agents, paths) come from a small cache.
"""

from __future__ import annotations


class HpackError(ValueError):
    """A header block that cannot be decoded: a connection error (COMPRESSION_ERROR)."""


# RFC 7541 Appendix A.
STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = tuple(
    (n.encode(), v.encode())
    for n, v in [
        (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
        (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
        (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
        (":status", "404"), (":status", "500"), ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
        ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
        ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
        ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
        ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
        ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
        ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
        ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
        ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
        ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
        ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
        ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
    ]
)
_STATIC_COUNT = len(STATIC_TABLE)

# RFC 7541 Appendix B: the Huffman code's length in bits for symbols 0..255 and EOS
# (256). The code is canonical (codes assigned in order of length, then symbol), so
# the lengths determine it.
_HUFFMAN_LENGTHS = bytes([
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5,
    6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6,
    5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23,
    23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22,
    23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23,
    22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27,
    26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24,
    24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
])
EOS = 256


def huffman_codes() -> list[tuple[int, int]]:
    """(code, length) of each symbol, from the canonical assignment."""
    lengths = _HUFFMAN_LENGTHS
    order = sorted(range(257), key=lambda s: (lengths[s], s))
    codes = [(0, 0)] * 257
    code = 0
    previous = lengths[order[0]]
    for k, symbol in enumerate(order):
        if k:
            code = (code + 1) << (lengths[symbol] - previous)
            previous = lengths[symbol]
        codes[symbol] = (code, lengths[symbol])
    return codes


def _build_decoder() -> tuple[list[int], list[bool]]:
    """A state machine that eats four bits at a time.

    States are the inner nodes of the code tree. ``table[state * 16 + nibble]``
    packs the next state and the symbol the nibble completes (at most one: no
    code is shorter than 5 bits) as ``next << 9 | symbol + 1`` (0: none), or is
    -1 when the bits spell EOS, which must not appear inside a string.
    ``accepting[state]``: a string may end there (the padding was a prefix of
    EOS, all ones, shorter than 8 bits).
    """
    children: list[list[int]] = [[-1, -1]]
    leaf: list[int] = [-1]
    for symbol, (code, length) in enumerate(huffman_codes()):
        node = 0
        for shift in range(length - 1, -1, -1):
            bit = (code >> shift) & 1
            nxt = children[node][bit]
            if nxt < 0:
                nxt = len(children)
                children.append([-1, -1])
                leaf.append(-1)
                children[node][bit] = nxt
            node = nxt
        leaf[node] = symbol
    inner = [n for n in range(len(children)) if leaf[n] < 0]
    state_of = {n: i for i, n in enumerate(inner)}
    table = [-1] * (len(inner) * 16)
    for n in inner:
        for nibble in range(16):
            node = n
            emitted = -1
            bad = False
            for shift in (3, 2, 1, 0):
                node = children[node][(nibble >> shift) & 1]
                if leaf[node] >= 0:
                    if leaf[node] == EOS:
                        bad = True
                        break
                    emitted = leaf[node]
                    node = 0
            if not bad:
                table[state_of[n] * 16 + nibble] = state_of[node] << 9 | (emitted + 1)
    accepting = [False] * len(inner)
    node = 0
    accepting[state_of[0]] = True
    for _ in range(7):
        node = children[node][1]
        if leaf[node] >= 0:
            break
        accepting[state_of[node]] = True
    return table, accepting


_TABLE, _ACCEPTING = _build_decoder()


def huffman_decode(data: bytes) -> bytes:
    table = _TABLE
    state = 0
    out = bytearray()
    for byte in data:
        entry = table[state << 4 | byte >> 4]
        if entry < 0:
            raise HpackError("a Huffman string contains EOS")
        if entry & 0x1FF:
            out.append((entry & 0x1FF) - 1)
        entry = table[(entry >> 9) << 4 | byte & 15]
        if entry < 0:
            raise HpackError("a Huffman string contains EOS")
        if entry & 0x1FF:
            out.append((entry & 0x1FF) - 1)
        state = entry >> 9
    if not _ACCEPTING[state]:
        raise HpackError("a Huffman string ends in invalid padding")
    return bytes(out)


def huffman_encode(data: bytes) -> bytes:
    """For tests and clients: the Huffman form of ``data`` (padded with ones)."""
    codes = huffman_codes()
    acc = 0
    bits = 0
    for b in data:
        code, length = codes[b]
        acc = acc << length | code
        bits += length
    pad = -bits % 8
    acc = acc << pad | ((1 << pad) - 1)
    return (acc.to_bytes((bits + pad) // 8, "big")) if bits else b""


def encode_int(value: int, prefix: int, first: int = 0) -> bytes:
    """HPACK's prefixed integer; ``first`` holds the bits above the prefix."""
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_literal(name: bytes, value: bytes) -> bytes:
    """A header as a literal without indexing (no state on either side); the name from
    the static table when it is there."""
    index = next((i for i, (n, _) in enumerate(STATIC_TABLE, 1) if n == name), 0)
    head = encode_int(index, 4) if index else b"\x00" + encode_int(len(name), 7) + name
    return head + encode_int(len(value), 7) + value


def encode_indexed(index: int) -> bytes:
    return encode_int(index, 7, 0x80)


class Decoder:
    """One connection's decoding context: the dynamic table, newest entry first."""

    def __init__(self, max_table_size: int = 4096, max_cache: int = 256) -> None:
        self.limit = max_table_size  # what we advertised (SETTINGS_HEADER_TABLE_SIZE)
        self.max_size = max_table_size  # the encoder may lower it with a size update
        self.table: list[tuple[bytes, bytes]] = []
        self.size = 0
        self._huffman: dict[bytes, bytes] = {}
        self._max_cache = max_cache

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        i = 0
        n = len(block)
        static = STATIC_TABLE
        while i < n:
            b = block[i]
            if b & 0x80:  # indexed field
                if b != 0xFF:
                    index = b & 0x7F
                    i += 1
                else:
                    index, i = self._int(block, i, 7)
                if 0 < index <= _STATIC_COUNT:
                    out.append(static[index - 1])
                else:
                    out.append(self._entry(index))
                continue
            if b & 0x40:  # literal with incremental indexing
                index, i = self._int(block, i, 6)
                name, i = (self._entry(index)[0], i) if index else self._string(block, i)
                value, i = self._string(block, i)
                self._add(name, value)
                out.append((name, value))
                continue
            if b & 0x20:  # dynamic table size update
                size, i = self._int(block, i, 5)
                if size > self.limit:
                    raise HpackError(f"a table size update to {size} exceeds the {self.limit} advertised")
                self.max_size = size
                self._evict()
                continue
            # literal without indexing / never indexed (4-bit prefix)
            index, i = self._int(block, i, 4)
            name, i = (self._entry(index)[0], i) if index else self._string(block, i)
            value, i = self._string(block, i)
            out.append((name, value))
        return out

    @staticmethod
    def _int(block: bytes, i: int, prefix: int) -> tuple[int, int]:
        limit = (1 << prefix) - 1
        value = block[i] & limit
        i += 1
        if value < limit:
            return value, i
        shift = 0
        n = len(block)
        while True:
            if i >= n:
                raise HpackError("a header block ends inside an integer")
            b = block[i]
            i += 1
            value += (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value, i
            if shift > 28:
                raise HpackError("an integer in a header block is too large")

    def _string(self, block: bytes, i: int) -> tuple[bytes, int]:
        if i >= len(block):
            raise HpackError("a header block ends before a string")
        huffman = block[i] & 0x80
        length, i = self._int(block, i, 7)
        end = i + length
        if end > len(block):
            raise HpackError("a string runs past the end of its header block")
        raw = block[i:end]
        if not huffman:
            return raw, end
        cached = self._huffman.get(raw)
        if cached is None:
            cached = huffman_decode(raw)
            if len(self._huffman) >= self._max_cache:
                self._huffman.clear()
            self._huffman[raw] = cached
        return cached, end

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= _STATIC_COUNT:
            return STATIC_TABLE[index - 1]
        j = index - _STATIC_COUNT - 1
        if index <= 0 or j >= len(self.table):
            raise HpackError(f"header index {index} is not in the table")
        return self.table[j]

    def _add(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 32
        if size > self.max_size:
            self.table.clear()
            self.size = 0
            return
        self.table.insert(0, (name, value))
        self.size += size
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size:
            name, value = self.table.pop()
            self.size -= len(name) + len(value) + 32
