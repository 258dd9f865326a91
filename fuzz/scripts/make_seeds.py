#!/usr/bin/env python3
"""Writes the hand-made seed corpora into fuzz/corpus/<target>/ (one-off; re-runnable).

Formats follow src/wire/{frame,chunk,sdp_crypto}.rs, src/signal/content.rs and
proto/meshrtc/v1/meshrtc.proto. Needs the `cryptography` package for the SDP seeds.
"""
import hashlib
import json
import os
import struct
import base64

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")
TAG_LAST, TAG_META, TAG_BINARY, TAG_JSON = 1, 2, 4, 8
CHUNK_PAYLOAD = 16384 - 36


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def header(action, nonce, tag, progress):
    a = action.encode()
    return a + b"\0" * (32 - len(a)) + struct.pack(">HBB", nonce, tag, progress)


def progress_byte(i, total):
    return int((i + 1) / total * 255 + 0.5)


def encode_message(action, nonce, payload, type_bits, meta=None):
    """Mirror of chunk::encode_message."""
    meta_b = None if meta is None else json.dumps(meta, separators=(",", ":")).encode()
    pieces = [payload[i:i + CHUNK_PAYLOAD] for i in range(0, len(payload), CHUNK_PAYLOAD)]
    total = max(1, len(pieces)) + (1 if meta_b is not None else 0)
    out, index = [], 0
    if meta_b is not None:
        out.append(header(action, nonce, type_bits | TAG_META, progress_byte(0, total)) + meta_b)
        index = 1
    if not pieces:
        out.append(header(action, nonce, type_bits | TAG_LAST, 255))
        return out
    for n, p in enumerate(pieces):
        last = TAG_LAST if n == len(pieces) - 1 else 0
        out.append(header(action, nonce, type_bits | last, progress_byte(index, total)) + p)
        index += 1
    return out


def encode_data(token, chunk):
    t = token.encode()
    return b"\x01" + struct.pack(">H", len(t)) + t + chunk


def encode_presence(token, joined):
    t = token.encode()
    return b"\x02" + bytes([1 if joined else 0]) + struct.pack(">H", len(t)) + t


def sdp_encrypt(key, iv, plain):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    sealed = AESGCM(key).encrypt(iv, plain.encode(), None)
    return ",".join(str(b) for b in iv) + "$" + base64.b64encode(sealed).decode()


def pb_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_field(num, wire, value):
    key = pb_varint(num << 3 | wire)
    if wire == 0:
        return key + pb_varint(value)
    return key + pb_varint(len(value)) + value


def pb_str(num, s):
    return pb_field(num, 2, s.encode() if isinstance(s, str) else s)


def main():
    token = hashlib.sha256(b"app:room").hexdigest()
    # --- chunks made like the encoder does
    text = encode_message("chat", 0, "héllo".encode(), 0)
    js = encode_message("chat", 1, b'{"a":[1,2]}', TAG_JSON)
    hsready = encode_message("@_hsready", 0, b"", 0)
    binmeta = encode_message("file", 7, bytes(range(200)), TAG_BINARY | TAG_JSON, {"name": "a"})
    big = encode_message("big", 2, bytes(i % 251 for i in range(CHUNK_PAYLOAD + 100)), TAG_BINARY | TAG_JSON)

    for name, chunks in [("text", text), ("json", js), ("hsready", hsready), ("binmeta", binmeta), ("big", big)]:
        for i, c in enumerate(chunks):
            put("action_chunk", f"{name}-{i}", c)
        put("outer_frame", f"data-{name}", encode_data(token, chunks[0]))
    put("outer_frame", "presence-join", encode_presence(token, True))
    put("outer_frame", "presence-leave", encode_presence(token, False))
    put("outer_frame", "data-empty", encode_data("", b""))

    # --- reassembly records: [flags, repeat, len_hi, len_lo, chunk]; see fuzz_targets/reassembly.rs
    def rec(flags, repeat, c):
        return bytes([flags, repeat]) + struct.pack(">H", len(c)) + c

    PAD, BUMP, EXPIRE, FORGET = 32, 16, 4, 8
    bin_part = lambda n: header("big", n, TAG_BINARY | TAG_JSON, 85)  # non-last, padded to 16 KiB
    bin_last = header("big", 0, TAG_BINARY | TAG_JSON | TAG_LAST, 255)
    put("reassembly", "text", rec(0, 0, text[0]))
    put("reassembly", "binmeta", b"".join(rec(1, 0, c) for c in binmeta))
    put("reassembly", "big", b"".join(rec(2, 0, c) for c in big))
    put("reassembly", "interleaved", rec(0, 0, binmeta[0]) + rec(1, 0, js[0]) + rec(0, 0, binmeta[1]))
    put("reassembly", "padded-complete", rec(PAD, 3, bin_part(0)) + rec(PAD, 0, bin_last))
    put("reassembly", "toolarge", rec(PAD, 70, bin_part(0)))
    put("reassembly", "manypartials", rec(PAD | BUMP | 1, 20, bin_part(0)))
    # ~1 MiB messages (63 padded chunks), 3 per peer: hits max_per_peer, then max_total.
    put("reassembly", "bufferfull", b"".join(rec(PAD | p, 62, bin_part(n)) for p in range(4) for n in range(3)))
    put("reassembly", "expire", rec(PAD, 3, bin_part(0)) + rec(EXPIRE, 0, js[0]) + rec(FORGET | PAD, 0, bin_part(1)))

    # --- signaling content
    P = "AAAAAAAAAAAAAAAAAAAA"
    for name, obj in [
        ("announce", {"peerId": P}),
        ("passive", {"peerId": P, "passive": True}),
        ("offer", {"peerId": P, "offerId": "o1", "offer": "x"}),
        ("answer", {"peerId": P, "answer": "x", "offerId": "o1"}),
        ("candidate", {"peerId": P, "offerId": "o1", "candidate": "c"}),
        ("missing-id", {"peerId": P, "offer": "x"}),
        ("bad-peer", {"peerId": "short"}),
    ]:
        put("signal_content", name, json.dumps(obj, separators=(",", ":")))
    put("signal_content", "escapes", '{"peerId":"AAAAAAAAAAAAAAAAAAAA","offerId":"\\u00e9\\n","offer":"1,2$\\ud83d\\ude00"}')

    # --- encrypted SDP (key = SHA-256("pw:app:room"), 16-byte IV like Trystero)
    key = hashlib.sha256(b"pw:app:room").digest()
    iv = bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 255])
    put("sdp_decrypt", "short", sdp_encrypt(key, iv, "v=0\r\n"))
    sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n"
    put("sdp_decrypt", "sdp", sdp_encrypt(key, bytes(16), sdp))
    put("sdp_decrypt", "candidate", sdp_encrypt(key, bytes(range(16)), '{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host","sdpMid":"0"}'))
    put("sdp_decrypt", "wrong-key", sdp_encrypt(hashlib.sha256(b"nope:app:room").digest(), iv, "v=0\r\n"))
    put("sdp_decrypt", "spaces", " 1, 2,3,4,5,6,7,8,9,10,11,12,13,14,15,255$AAAA")
    put("sdp_decrypt", "malformed", "1,2$AAAA")

    # --- WS bridge requests: JSON text frames and binary protobuf frames
    for name, obj in [
        ("join", {"requestId": "1", "join": {"app": "a", "room": "r"}}),
        ("join-pw", {"requestId": 2, "join": {"app": "a", "room": "r", "password": "pw", "channels": ["chat"]}}),
        ("leave", {"requestId": "3", "leave": {"room": 1}}),
        ("send-text", {"requestId": "4", "send": {"room": 1, "channel": "chat", "payload": {"text": "hi"}, "targets": [P]}}),
        ("send-bin", {"requestId": "5", "send": {"room": 1, "channel": "file", "payload": {"binary": "AAEC", "metaJson": "{\"n\":1}"}}}),
        ("subscribe", {"requestId": "6", "subscribe": {"room": 1, "channels": []}}),
        ("ping", {"requestId": "7", "ping": {"room": 1, "peer": P}}),
        ("peers", {"requestId": "18446744073709551615", "peers": {"room": 4294967295}}),
    ]:
        put("ws_request", "json-" + name, json.dumps(obj, separators=(",", ":")))
    join = pb_str(1, "a") + pb_str(2, "r") + pb_str(3, "pw") + pb_str(4, "chat")
    put("ws_request", "pb-join", pb_field(1, 0, 1) + pb_str(2, join))
    payload = pb_str(3, b"\x00\x01\x02") + pb_str(4, '{"n":1}')
    send = pb_field(1, 0, 1) + pb_str(2, "file") + pb_str(3, payload) + pb_str(4, P)
    put("ws_request", "pb-send", pb_field(1, 0, 5) + pb_str(4, send))
    put("ws_request", "pb-ping", pb_field(1, 0, 2**64 - 1) + pb_str(6, pb_field(1, 0, 1) + pb_str(2, P)))
    put("ws_request", "pb-peers", pb_field(1, 0, 9) + pb_str(7, pb_field(1, 0, 1)))

    # --- e2e envelopes: mode byte, then (0) a sealed envelope, (1) raw plaintext, (2) channel\0text
    def plain(kind, channel, meta, body):
        c = channel.encode()
        return bytes([kind, len(c)]) + c + struct.pack(">I", len(meta)) + meta + body

    samples = [
        ("text", plain(0, "chat", b"", "héllo".encode())),
        ("json", plain(1, "chat", b"", b'{"a":[1,2.5e3]}')),
        ("binary-meta", plain(2, "file", b'{"name":"f"}', bytes([0, 1, 255]))),
    ]
    e2e_key = hashlib.pbkdf2_hmac("sha256", b"pw", b"meshrtc/e2e/v1\0app\0room", 600_000)
    for name, p in samples:
        put("e2e_envelope", "plain-" + name, b"\x01" + p)
        put("e2e_envelope", "sealed-" + name, b"\x00" + xchacha_seal(e2e_key, bytes(range(24)), p, b"meshrtc-e2e-v1"))
    put("e2e_envelope", "seal-chat", b"\x02chat\0hello")
    put("e2e_envelope", "seal-empty", b"\x02")
    put("e2e_envelope", "bad-version", b"\x00\x09" + bytes(64))

    cell_frame_seeds()


def _rotl(v, n):
    return ((v << n) & 0xFFFFFFFF) | (v >> (32 - n))


def hchacha20(key, nonce16):
    """HChaCha20 subkey (draft-irtf-cfrg-xchacha), for XChaCha20-Poly1305 seeds."""
    st = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    st += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def qr(a, b, c, d):
        st[a] = (st[a] + st[b]) & 0xFFFFFFFF; st[d] = _rotl(st[d] ^ st[a], 16)
        st[c] = (st[c] + st[d]) & 0xFFFFFFFF; st[b] = _rotl(st[b] ^ st[c], 12)
        st[a] = (st[a] + st[b]) & 0xFFFFFFFF; st[d] = _rotl(st[d] ^ st[a], 8)
        st[c] = (st[c] + st[d]) & 0xFFFFFFFF; st[b] = _rotl(st[b] ^ st[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack("<8I", *(st[0:4] + st[12:16]))


def xchacha_seal(key, nonce24, msg, aad):
    """Envelope as e2e::seal writes it: version 1, nonce, XChaCha20-Poly1305(msg, aad)."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    sub = hchacha20(key, nonce24[:16])
    ct = ChaCha20Poly1305(sub).encrypt(b"\0" * 4 + nonce24[16:], msg, aad)
    return b"\x01" + nonce24 + ct


# --- BIP-340 Schnorr signatures (the scheme of cell frames), written out for seed frames only.
_P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_G = (0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
      0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8)


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and a[1] != b[1]:
        return None
    if a == b:
        lam = 3 * a[0] * a[0] * pow(2 * a[1], _P - 2, _P) % _P
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], _P - 2, _P) % _P
    x = (lam * lam - a[0] - b[0]) % _P
    return (x, (lam * (a[0] - x) - a[1]) % _P)


def _mul(k, pt=_G):
    out = None
    while k:
        if k & 1:
            out = _add(out, pt)
        pt = _add(pt, pt)
        k >>= 1
    return out


def _tagged(tag, msg):
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(t + t + msg).digest()


def bip340_sign(secret, msg, aux=bytes(32)):
    """(x-only public key, signature) of `msg` (32 bytes) under `secret` (an int)."""
    pub = _mul(secret)
    d = secret if pub[1] % 2 == 0 else _N - secret
    px = pub[0].to_bytes(32, "big")
    t = (d ^ int.from_bytes(_tagged("BIP0340/aux", aux), "big")).to_bytes(32, "big")
    k0 = int.from_bytes(_tagged("BIP0340/nonce", t + px + msg), "big") % _N
    r = _mul(k0)
    k = k0 if r[1] % 2 == 0 else _N - k0
    rx = r[0].to_bytes(32, "big")
    e = int.from_bytes(_tagged("BIP0340/challenge", rx + px + msg), "big") % _N
    return px, rx + ((k + e * d) % _N).to_bytes(32, "big")


def cell_frame(secret, salt, seq, max_hops, targets, payload, flags=1, hops=0):
    """A signed cell frame (version 2) as src/wire/cell.rs lays it out."""
    origin = bip340_sign(secret, bytes(32))[0]
    h = hashlib.sha256(b"meshrtc/cellframe/v2" + struct.pack(">I", len(salt)) + salt + origin
                       + struct.pack(">Q", seq) + bytes([max_hops])
                       + bytes([len(targets)]) + b"".join(t.encode() for t in targets)
                       + struct.pack(">I", len(payload)) + payload).digest()
    _, sig = bip340_sign(secret, h)
    return (bytes([2, flags, max_hops, hops]) + origin + struct.pack(">Q", seq) + bytes([len(targets)])
            + b"".join(t.encode() for t in targets) + struct.pack(">I", len(payload)) + payload + sig)


def cell_frame_seeds():
    salt = b"fuzz-room-salt"  # the salt fuzz_targets/cell_frame.rs verifies against
    secret = 0x1F2E3D4C5B6A798800112233445566778899AABBCCDDEEFF0011223344556677
    ok = cell_frame(secret, salt, 1_700_000_000_000_000, 5, [], b"\x00chat message")
    put("cell_frame", "signed", ok)
    put("cell_frame", "signed-targets", cell_frame(secret, salt, 7, 3, ["A" * 20, "b" * 20], b"dm"))
    put("cell_frame", "signed-empty", cell_frame(secret, salt, 0, 0, [], b"", flags=0, hops=9))
    put("cell_frame", "other-room", cell_frame(secret, b"another room", 8, 5, [], b"x"))
    put("cell_frame", "bad-sig", ok[:-1] + bytes([ok[-1] ^ 1]))
    # The same frame with its signed hop limit raised: it must not verify.
    put("cell_frame", "raised-hops", ok[:2] + bytes([ok[2] + 1]) + ok[3:])
    put("cell_frame", "truncated", ok[:50])
    put("cell_frame", "bad-version", b"\x01" + ok[1:])
    put("cell_frame", "long-len", ok[:45] + struct.pack(">I", 0xFFFFFFFF) + ok[49:])


if __name__ == "__main__":
    main()
