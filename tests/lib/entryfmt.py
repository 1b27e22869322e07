"""entryfmt.py - the stored entry format (agent/core/entry.h), written
independently of the agent so tests can put entries of their own making
into memcached: hostile ones, ones for another key, forged signatures.

encode() takes every field as the format has it, with no check of its own:
that is the point (a status of 100, a header block with CR LF inside it).
"""
import hashlib
import hmac
import struct

VERSION = 3
TAG_CRC32C = 0
TAG_HMAC = 1


def _crc32c_table():
    tab = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        tab.append(c)
    return tab


_TAB = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _TAB[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def encode(key, status=200, headers=b"", body=b"", stored_at=None, lifetime=300, age0=0,
           flags=0, vary=b"", secret=None, version=VERSION, tag_kind=None, swr=0, sie=0):
    """The bytes of one entry. key, headers, body, vary: bytes (str is
    encoded as latin-1); headers is the replay text "Name: value\\r\\n"...
    secret: sign with HMAC-SHA-256 (else a CRC-32C). stored_at defaults
    to now."""
    import time
    b = lambda x: x.encode("latin-1") if isinstance(x, str) else x  # noqa: E731
    key, headers, body, vary = b(key), b(headers), b(body), b(vary)
    if stored_at is None:
        stored_at = int(time.time())
    if tag_kind is None:
        tag_kind = TAG_HMAC if secret is not None else TAG_CRC32C
    out = b"SCE" + bytes([version, tag_kind])
    out += struct.pack(">qqqHIII", stored_at, lifetime, age0, status, flags, swr, sie)
    out += bytes([len(key)]) + key
    for blk in (headers, vary, body):
        out += struct.pack(">I", len(blk)) + blk
    if tag_kind == TAG_HMAC:
        return out + hmac.new(b(secret), out, hashlib.sha256).digest()
    return out + struct.pack(">I", crc32c(out))
