"""spopclient.py - a small scripted SPOP 2.0 peer (the HAProxy side), in
pure Python (stdlib only), for the wire tests (doc: /tmp/SPOE.txt section 3).

It can speak correctly (HELLO, NOTIFY, fragments, DISCONNECT) and it can be
made to lie on purpose: every builder returns plain bytes, so a test can cut,
corrupt or reorder them before sending. Decoders are strict and raise
ValueError on anything malformed, so a bug in what the agent sends fails the
test instead of being papered over.

Layers, bottom up:
  varint_encode / varint_decode        HAProxy's varint (agent/core/varint.c)
  encode_data / decode_data            TYPED-DATA, all 10 types
  encode_kvlist / decode_kvlist        KV-LIST
  build_frame / parse_frame            frames, with the 4-byte length prefix
  haproxy_hello / notify_payload ...   payloads HAProxy sends
  decode_agent_hello / decode_ack ...  payloads the agent sends
  hdrs_bin                             req.hdrs_bin / res.hdrs_bin blocks
  Client                               a socket, send_frame / recv_frame, and
                                       hello(), lookup(), store()
"""
import ipaddress
import select
import socket
import struct
import time

# ---------------------------------------------------------------- constants

# Frame types (3.2.2)
FRM_UNSET = 0
FRM_HAPROXY_HELLO = 1
FRM_HAPROXY_DISCONNECT = 2
FRM_NOTIFY = 3
FRM_AGENT_HELLO = 101
FRM_AGENT_DISCONNECT = 102
FRM_ACK = 103

# Frame flags (3.2)
FL_FIN = 0x1
FL_ABORT = 0x2

# Typed data (3.1)
T_NULL, T_BOOL, T_INT32, T_UINT32, T_INT64, T_UINT64, T_IPV4, T_IPV6, T_STR, T_BIN = range(10)
T_FL_TRUE = 0x10

# Scopes and actions (3.4)
SCOPE_PROC, SCOPE_SESS, SCOPE_TXN, SCOPE_REQ, SCOPE_RES = range(5)
ACT_SET_VAR = 1
ACT_UNSET_VAR = 2

# DISCONNECT status codes (3.5)
ST_NORMAL = 0
ST_IO = 1
ST_TIMEOUT = 2
ST_TOO_BIG = 3
ST_INVALID = 4
ST_NO_VSN = 5
ST_NO_FRAME_SIZE = 6
ST_NO_CAP = 7
ST_BAD_VSN = 8
ST_BAD_FRAME_SIZE = 9
ST_FRAG_NOT_SUPPORTED = 10
ST_INTERLACED = 11
ST_FRAMEID_NOTFOUND = 12
ST_RES = 13
ST_UNKNOWN = 99

HAPROXY_CAPS = "pipelining,async,fragmentation"


class Incomplete(ValueError):
    """Ran out of bytes (inside a whole frame, that is malformed)."""


# ------------------------------------------------------------------- varint

def varint_encode(v):
    """HAProxy's varint: < 240 in one byte; else the low 4 bits | 0xF0, then
    7 bits per byte, high bit set on all but the last."""
    if v < 0 or v >= 1 << 64:
        raise ValueError("varint out of range: %r" % (v,))
    if v < 240:
        return bytes([v])
    out = bytearray([(v | 0xF0) & 0xFF])
    v = (v - 240) >> 4
    while v >= 128:
        out.append((v | 0x80) & 0xFF)
        v = (v - 128) >> 7
    out.append(v)
    return bytes(out)


def varint_decode(buf, pos=0, end=None):
    """(value, new pos). Incomplete if it runs past end, ValueError if it
    overflows 64 bits."""
    end = len(buf) if end is None else end
    if pos >= end:
        raise Incomplete("varint: no byte")
    v = buf[pos]
    pos += 1
    if v < 240:
        return v, pos
    shift = 4
    while True:
        if pos >= end:
            raise Incomplete("varint runs past the end")
        b = buf[pos]
        pos += 1
        v += b << shift
        shift += 7
        if b < 128:
            break
        if shift > 70:
            raise ValueError("varint too long")
    if v >= 1 << 64:
        raise ValueError("varint overflows 64 bits")
    return v, pos


# --------------------------------------------------------------- typed data

class Typed:
    """A value with an explicit SPOP type, where the Python type is not
    enough (UINT32 vs INT64, STR vs BIN, an IP address given as bytes)."""
    __slots__ = ("type", "value")

    def __init__(self, t, value=None):
        self.type = t
        self.value = value

    def __repr__(self):
        return "Typed(%d, %r)" % (self.type, self.value)

    def __eq__(self, o):
        return isinstance(o, Typed) and (self.type, self.value) == (o.type, o.value)


def u32(v):
    return Typed(T_UINT32, v)


def i32(v):
    return Typed(T_INT32, v)


def u64(v):
    return Typed(T_UINT64, v)


def i64(v):
    return Typed(T_INT64, v)


def binary(b):
    return Typed(T_BIN, bytes(b))


def raw_data(b):
    """Bytes written as they are in place of a TYPED-DATA (malformed on purpose)."""
    return Typed(-1, bytes(b))


def _enc_str(b):
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogateescape")
    return varint_encode(len(b)) + bytes(b)


def encode_data(v):
    """Python value -> TYPED-DATA: None NULL, bool BOOL, int INT64 (or UINT64
    when above INT64_MAX), str STR, bytes BIN, IPv4Address/IPv6Address, or a
    Typed for anything explicit."""
    if isinstance(v, Typed):
        t, x = v.type, v.value
        if t == -1:
            return x
    elif v is None:
        t, x = T_NULL, None
    elif isinstance(v, bool):
        t, x = T_BOOL, v
    elif isinstance(v, int):
        t, x = (T_INT64 if v < 1 << 63 else T_UINT64), v
    elif isinstance(v, str):
        t, x = T_STR, v
    elif isinstance(v, (bytes, bytearray, memoryview)):
        t, x = T_BIN, bytes(v)
    elif isinstance(v, ipaddress.IPv4Address):
        t, x = T_IPV4, v.packed
    elif isinstance(v, ipaddress.IPv6Address):
        t, x = T_IPV6, v.packed
    else:
        raise TypeError("cannot encode %r" % (v,))
    if t == T_NULL:
        return bytes([T_NULL])
    if t == T_BOOL:
        return bytes([T_BOOL | (T_FL_TRUE if x else 0)])
    if t in (T_INT32, T_INT64):
        lo, hi = (-(1 << 31), (1 << 31) - 1) if t == T_INT32 else (-(1 << 63), (1 << 63) - 1)
        if not lo <= x <= hi:
            raise ValueError("integer out of range for type %d: %d" % (t, x))
        return bytes([t]) + varint_encode(x & ((1 << 64) - 1))  # two's complement
    if t in (T_UINT32, T_UINT64):
        hi = (1 << 32) - 1 if t == T_UINT32 else (1 << 64) - 1
        if not 0 <= x <= hi:
            raise ValueError("integer out of range for type %d: %d" % (t, x))
        return bytes([t]) + varint_encode(x)
    if t in (T_IPV4, T_IPV6):
        if isinstance(x, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            x = x.packed
        if len(x) != (4 if t == T_IPV4 else 16):
            raise ValueError("bad address length")
        return bytes([t]) + bytes(x)
    if t in (T_STR, T_BIN):
        return bytes([t]) + _enc_str(x)
    raise ValueError("unknown type %r" % (t,))


def decode_typed(buf, pos=0, end=None):
    """((type, value), new pos). STR -> str (utf-8, surrogateescape), BIN ->
    bytes, integers -> int, BOOL -> bool, NULL -> None, IPs -> ipaddress."""
    end = len(buf) if end is None else end
    if pos >= end:
        raise Incomplete("typed data: no type byte")
    tb = buf[pos]
    pos += 1
    t = tb & 0x0F
    if t == T_NULL:
        return (t, None), pos
    if t == T_BOOL:
        return (t, bool(tb & T_FL_TRUE)), pos
    if t in (T_INT32, T_INT64):
        u, pos = varint_decode(buf, pos, end)
        i = u - (1 << 64) if u >= 1 << 63 else u
        if t == T_INT32 and not -(1 << 31) <= i < 1 << 31:
            raise ValueError("INT32 out of range")
        return (t, i), pos
    if t in (T_UINT32, T_UINT64):
        u, pos = varint_decode(buf, pos, end)
        if t == T_UINT32 and u >= 1 << 32:
            raise ValueError("UINT32 out of range")
        return (t, u), pos
    if t in (T_IPV4, T_IPV6):
        n = 4 if t == T_IPV4 else 16
        if end - pos < n:
            raise Incomplete("address truncated")
        b = bytes(buf[pos:pos + n])
        return (t, ipaddress.ip_address(b)), pos + n
    if t in (T_STR, T_BIN):
        s, pos = decode_str(buf, pos, end)
        return (t, s.decode("utf-8", "surrogateescape") if t == T_STR else s), pos
    raise ValueError("unknown data type %d" % t)


def decode_data(buf, pos=0, end=None):
    (t, v), pos = decode_typed(buf, pos, end)
    return v, pos


def decode_str(buf, pos=0, end=None):
    """<STRING>: (bytes, new pos)."""
    end = len(buf) if end is None else end
    n, pos = varint_decode(buf, pos, end)
    if n > end - pos:
        raise Incomplete("string of %d bytes, %d left" % (n, end - pos))
    return bytes(buf[pos:pos + n]), pos + n


# ------------------------------------------------------------------ KV list

def encode_kvlist(items):
    """items: iterable of (name, value) (a dict works too)."""
    if isinstance(items, dict):
        items = items.items()
    return b"".join(_enc_str(k) + encode_data(v) for k, v in items)


def decode_kvlist(payload):
    """KV-LIST -> dict (last one wins for a repeated name)."""
    out = {}
    pos, end = 0, len(payload)
    while pos < end:
        k, pos = decode_str(payload, pos, end)
        v, pos = decode_data(payload, pos, end)
        out[k.decode("utf-8", "surrogateescape")] = v
    return out


# ------------------------------------------------------------------- frames

class Frame:
    __slots__ = ("type", "flags", "sid", "fid", "payload", "size")

    def __init__(self, t, flags, sid, fid, payload, size):
        self.type, self.flags, self.sid, self.fid = t, flags, sid, fid
        self.payload = payload
        self.size = size  # FRAME-LENGTH: without the 4-byte prefix

    def __repr__(self):
        return "Frame(type=%d flags=%#x sid=%d fid=%d size=%d payload=%r)" % (
            self.type, self.flags, self.sid, self.fid, self.size, self.payload[:64])


def frame_body(t, flags, sid, fid, payload=b""):
    """A frame without its length prefix."""
    return (bytes([t]) + struct.pack(">I", flags) + varint_encode(sid) +
            varint_encode(fid) + bytes(payload))


def build_frame(t, flags, sid, fid, payload=b""):
    """A whole frame, with its 4-byte big-endian length prefix."""
    body = frame_body(t, flags, sid, fid, payload)
    return struct.pack(">I", len(body)) + body


def parse_frame(body):
    """A frame without its prefix -> Frame. ValueError if malformed."""
    if len(body) < 7:
        raise ValueError("frame shorter than 7 bytes")
    t = body[0]
    flags = struct.unpack(">I", body[1:5])[0]
    sid, pos = varint_decode(body, 5)
    fid, pos = varint_decode(body, pos)
    return Frame(t, flags, sid, fid, bytes(body[pos:]), len(body))


# ------------------------------------------------------ what HAProxy sends

def haproxy_hello(versions="2.0", max_frame_size=16380, capabilities=HAPROXY_CAPS,
                  healthcheck=None, engine_id="spopclient-engine", extra=()):
    """HAPROXY-HELLO payload. None leaves an item out (to build incomplete
    HELLOs on purpose); an int max_frame_size is sent as UINT32, anything
    else (a Typed, a str) as encode_data() makes it."""
    items = []
    if versions is not None:
        items.append(("supported-versions", versions))
    if max_frame_size is not None:
        items.append(("max-frame-size", u32(max_frame_size)
                      if isinstance(max_frame_size, int) and not isinstance(max_frame_size, bool)
                      else max_frame_size))
    if capabilities is not None:
        items.append(("capabilities", capabilities))
    if engine_id is not None:
        items.append(("engine-id", engine_id))
    if healthcheck is not None:
        items.append(("healthcheck", bool(healthcheck)))
    items.extend(extra)
    return encode_kvlist(items)


def hello_frame(**kw):
    return build_frame(FRM_HAPROXY_HELLO, FL_FIN, 0, 0, haproxy_hello(**kw))


def haproxy_disconnect(status=ST_NORMAL, message="bye"):
    return encode_kvlist([("status-code", u32(status)), ("message", message)])


def disconnect_frame(status=ST_NORMAL, message="bye"):
    return build_frame(FRM_HAPROXY_DISCONNECT, FL_FIN, 0, 0, haproxy_disconnect(status, message))


def notify_payload(messages):
    """LIST-OF-MESSAGES. messages: [(name, args)] where args is a list of
    (name, value) or a dict; (name, args, nb_args) lies about NB-ARGS."""
    out = bytearray()
    for m in messages:
        name, args = m[0], m[1]
        if isinstance(args, dict):
            args = list(args.items())
        nargs = m[2] if len(m) > 2 else len(args)
        out += _enc_str(name) + bytes([nargs])
        for k, v in args:
            out += _enc_str(k) + encode_data(v)
    return bytes(out)


def notify_frame(sid, fid, messages, flags=FL_FIN):
    return build_frame(FRM_NOTIFY, flags, sid, fid, notify_payload(messages))


def fragments(t, sid, fid, payload, cuts):
    """Split payload at the offsets in cuts: the first frame has type t, the
    others UNSET; only the last one has FIN. Returns a list of frames."""
    bounds = [0] + sorted(cuts) + [len(payload)]
    out = []
    for i in range(len(bounds) - 1):
        last = i == len(bounds) - 2
        out.append(build_frame(t if i == 0 else FRM_UNSET, FL_FIN if last else 0, sid, fid,
                               payload[bounds[i]:bounds[i + 1]]))
    return out


def hdrs_bin(headers):
    """req.hdrs_bin / res.hdrs_bin: (name, value) pairs (or a dict), each as
    varint-length name + varint-length value, ended by two empty strings."""
    if isinstance(headers, dict):
        headers = headers.items()
    out = bytearray()
    for k, v in headers:
        out += _enc_str(k) + _enc_str(v)
    out += b"\x00\x00"
    return bytes(out)


def lookup_message(policy, method, url, headers, tls=False, consumer=None, body=None):
    args = [("policy", policy), ("method", method), ("url", url), ("tls", bool(tls)),
            ("hdrs", binary(hdrs_bin(headers)))]
    if consumer is not None:
        args.append(("consumer", consumer))
    if body is not None:
        args.append(("body", binary(body)))
    return ("cache-lookup", args)


def store_message(ctx, status, headers, body):
    body = bytes(body)
    return ("cache-store", [("ctx", binary(ctx)), ("status", status),
                            ("hdrs", binary(hdrs_bin(headers))), ("body", binary(body)),
                            ("body_len", len(body))])


# ----------------------------------------------------- what the agent sends

def decode_agent_hello(payload):
    return decode_kvlist(payload)


def decode_disconnect(payload):
    return decode_kvlist(payload)


def decode_actions(payload):
    """LIST-OF-ACTIONS -> list of (action, scope, name, value)."""
    out = []
    pos, end = 0, len(payload)
    while pos < end:
        if end - pos < 3:
            raise Incomplete("action header truncated")
        act, nargs, scope = payload[pos], payload[pos + 1], payload[pos + 2]
        pos += 3
        if act == ACT_SET_VAR and nargs != 3 or act == ACT_UNSET_VAR and nargs != 2 \
                or act not in (ACT_SET_VAR, ACT_UNSET_VAR) or scope > SCOPE_RES:
            raise ValueError("bad action %d/%d/%d" % (act, nargs, scope))
        name, pos = decode_str(payload, pos, end)
        val = None
        if act == ACT_SET_VAR:
            val, pos = decode_data(payload, pos, end)
        out.append((act, scope, name.decode("utf-8", "surrogateescape"), val))
    return out


class Ack:
    """An ACK: ids, flags, size, and vars = {set-var name: value}."""

    def __init__(self, frame):
        self.frame = frame
        self.sid, self.fid, self.flags, self.size = frame.sid, frame.fid, frame.flags, frame.size
        self.actions = decode_actions(frame.payload)
        self.vars = {n: v for a, s, n, v in self.actions if a == ACT_SET_VAR}
        self.aborted = bool(frame.flags & FL_ABORT)

    def get(self, k, d=None):
        return self.vars.get(k, d)

    def __getitem__(self, k):
        return self.vars[k]

    def __contains__(self, k):
        return k in self.vars

    def __repr__(self):
        short = {k: (v[:40] if isinstance(v, (bytes, str)) else v) for k, v in self.vars.items()}
        return "Ack(sid=%d fid=%d flags=%#x size=%d %r)" % (self.sid, self.fid, self.flags,
                                                           self.size, short)


def parse_headers_block(b):
    """The agent's "name: value\\r\\n" headers variable -> list of (name, value)."""
    if isinstance(b, str):
        b = b.encode("latin-1")
    out = []
    for line in b.split(b"\r\n"):
        if not line:
            continue
        k, _, v = line.partition(b":")
        out.append((k.decode("latin-1").lower(), v.strip().decode("latin-1")))
    return out


# ------------------------------------------------------------------- client

class Closed(Exception):
    """The peer closed the connection."""


class ProtocolError(AssertionError):
    pass


class Client:
    """One SPOP connection from the HAProxy side.

    Every frame received is checked against the negotiated max-frame-size
    (an ACK must never be longer than max - 1 bytes, HAProxy 3.2+ drops one
    of exactly the max), and every ACK is decoded strictly."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, connect=True):
        self.host, self.port = host, port
        self.timeout = timeout
        self.buf = bytearray()
        self.max_frame = None
        self.agent_hello = None
        self.eof = False
        self.received = []  # every frame, for inspection
        self.sock = None
        if connect:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ---- raw I/O
    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, t, flags, sid, fid, payload=b""):
        self.send_raw(build_frame(t, flags, sid, fid, payload))

    def _fill(self, deadline):
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout("no frame from the agent in time")
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            try:
                d = self.sock.recv(1 << 20)
            except ConnectionResetError:
                d = b""
            if not d:
                self.eof = True
                raise Closed("connection closed by the agent")
            self.buf += d
            return

    def recv_frame(self, timeout=None):
        """The next frame, or socket.timeout, or Closed."""
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if self.max_frame is not None and n > self.max_frame:
                    raise ProtocolError("agent frame of %d bytes above max-frame-size %d"
                                        % (n, self.max_frame))
                if len(self.buf) >= 4 + n:
                    body = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    f = parse_frame(body)
                    self.received.append(f)
                    if f.type == FRM_ACK and self.max_frame is not None \
                            and f.size > self.max_frame - 1:
                        raise ProtocolError("ACK of %d bytes, negotiated max-frame-size %d "
                                            "(must be <= max - 1)" % (f.size, self.max_frame))
                    return f
            if self.eof:
                raise Closed("connection closed by the agent")
            self._fill(deadline)

    def recv_ack(self, timeout=None):
        f = self.recv_frame(timeout)
        if f.type != FRM_ACK:
            raise ProtocolError("expected an ACK, got %r" % (f,))
        return Ack(f)

    def recv_acks(self, n, timeout=None):
        """n ACKs in arrival order, within timeout overall."""
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        out = []
        while len(out) < n:
            out.append(self.recv_ack(max(0.001, deadline - time.time())))
        return out

    def expect_disconnect(self, timeout=None):
        """Wait for AGENT-DISCONNECT and then the close; returns its KV dict.
        Frames before it (late ACKs) are skipped."""
        while True:
            f = self.recv_frame(timeout)
            if f.type == FRM_AGENT_DISCONNECT:
                d = decode_disconnect(f.payload)
                d["_frame"] = f
                self.expect_closed(timeout)
                return d

    def expect_closed(self, timeout=None):
        """Wait until the agent closes; nothing more than frames may come."""
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        try:
            while True:
                self.recv_frame(max(0.001, deadline - time.time()))
        except Closed:
            return True

    def no_frame(self, wait):
        """True if nothing at all arrives within wait seconds."""
        try:
            f = self.recv_frame(wait)
        except socket.timeout:
            return True
        raise ProtocolError("unexpected frame %r" % (f,))

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # ---- protocol
    def hello(self, max_frame_size=16380, capabilities=HAPROXY_CAPS, versions="2.0",
              healthcheck=None, engine_id="spopclient-engine", check=True):
        self.send_raw(hello_frame(versions=versions, max_frame_size=max_frame_size,
                                  capabilities=capabilities, healthcheck=healthcheck,
                                  engine_id=engine_id))
        f = self.recv_frame()
        if f.type != FRM_AGENT_HELLO:
            raise ProtocolError("expected AGENT-HELLO, got %r (%r)" % (
                f, decode_kvlist(f.payload) if f.type == FRM_AGENT_DISCONNECT else None))
        h = decode_agent_hello(f.payload)
        if check:
            if h.get("version") is None or "max-frame-size" not in h \
                    or "capabilities" not in h:
                raise ProtocolError("incomplete AGENT-HELLO %r" % (h,))
            if h["max-frame-size"] > max_frame_size:
                raise ProtocolError("AGENT-HELLO max-frame-size %d above ours %d"
                                    % (h["max-frame-size"], max_frame_size))
            if f.sid != 0 or f.fid != 0 or not f.flags & FL_FIN:
                raise ProtocolError("AGENT-HELLO ids/flags %r" % (f,))
        self.max_frame = h["max-frame-size"]
        self.agent_hello = h
        return h

    def disconnect(self, status=ST_NORMAL, message="bye"):
        self.send_raw(disconnect_frame(status, message))

    def notify(self, sid, fid, messages, flags=FL_FIN):
        self.send_raw(notify_frame(sid, fid, messages, flags))

    def wait_ack(self, sid, fid, timeout=None):
        """The ACK for (sid, fid); any other frame is an error."""
        a = self.recv_ack(timeout)
        if (a.sid, a.fid) != (sid, fid):
            raise ProtocolError("ACK for %d/%d, expected %d/%d" % (a.sid, a.fid, sid, fid))
        return a

    @staticmethod
    def lookup_frame(sid, fid, policy, method, url, headers, tls=False, consumer=None,
                     body=None):
        return notify_frame(sid, fid, [lookup_message(policy, method, url, headers, tls,
                                                      consumer, body)])

    @staticmethod
    def store_frame(sid, fid, ctx, status, headers, body):
        return notify_frame(sid, fid, [store_message(ctx, status, headers, body)])

    def lookup(self, sid, fid, policy, method, url, headers, tls=False, consumer=None,
               body=None, wait=True, timeout=None):
        self.send_raw(self.lookup_frame(sid, fid, policy, method, url, headers, tls,
                                        consumer, body))
        return self.wait_ack(sid, fid, timeout) if wait else None

    def store(self, sid, fid, ctx, status, headers, body, wait=True, timeout=None):
        self.send_raw(self.store_frame(sid, fid, ctx, status, headers, body))
        return self.wait_ack(sid, fid, timeout) if wait else None
