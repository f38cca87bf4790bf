#!/usr/bin/env python3
"""Write a dm-log-writes log (shared/spec/trace-formats.md section 6).

dmlog_gen.py OUT [VARIANT]: VARIANT 'sample' (default) is the log bundled
as traces/dm-log-writes/sample.log (the tests check it is byte-identical);
the others are malformed on purpose, each for one reader error.
"""
import struct
import sys

FLUSH, FUA, DISCARD, MARK, META = 1, 2, 4, 8, 16
MAGIC = 0x6a736677736872


def entry(ss, sector, nr, flags, text=b"", data=None, data_len=None):
    head = struct.pack("<QQQQ", sector, nr, flags, len(text) if data_len is None else data_len)
    head = (head + text).ljust(ss, b"\0")
    if flags & (DISCARD | MARK) or nr == 0:
        return head
    if data is None:  # a recognisable, non-uniform payload
        data = bytes((sector * 7 + i) & 0xFF for i in range(nr * ss))
    return head + data


def log(ss, entries, nr_entries=None):
    n = len(entries) if nr_entries is None else nr_entries
    sup = struct.pack("<QQQI", MAGIC, 1, n, ss).ljust(ss, b"\0")
    return sup + b"".join(entries)


def sample():
    ss = 512
    e = [
        entry(ss, 0, 8, 0),                                # superblock-ish data
        entry(ss, 64, 8, META),                            # metadata write
        entry(ss, 0, 0, MARK, b"mkfs"),
        entry(ss, 2048, 16, 0),                            # file data
        entry(ss, 2064, 8, 0, data=b"\0" * (8 * ss)),      # a zeroed block
        entry(ss, 0, 0, FLUSH),                            # empty flush
        entry(ss, 128, 8, FLUSH | FUA),                    # journal commit block
        entry(ss, 0, 0, MARK, b"commit-1"),
        entry(ss, 4096, 2048, DISCARD),                    # fstrim
        entry(ss, 2048, 8, FUA, data=b"\x5a" * (8 * ss)),  # overwrite in place
        entry(ss, 0, 0, MARK, b"dm-log-writes-end"),
    ]
    return log(ss, e)


def bad(kind):
    ss = 512
    good = [entry(ss, 0, 8, 0), entry(ss, 0, 0, MARK, b"m")]
    if kind == "magic":
        return b"x" + log(ss, good)[1:]
    if kind == "version":
        b = bytearray(log(ss, good))
        b[8] = 2
        return bytes(b)
    if kind == "sectorsize":
        return log(1000, [])
    if kind == "flags":
        return log(ss, [good[0], entry(ss, 0, 1, 64)])
    if kind == "datalen":
        return log(ss, [good[0], entry(ss, 8, 1, 0, data_len=3)])
    if kind == "markrange":
        return log(ss, [good[0], entry(ss, 0, 1, MARK, b"m")])
    if kind == "short":
        return log(ss, good, nr_entries=3)
    if kind == "truncated":
        return log(ss, good)[:ss + ss + 100]
    if kind == "garbage":
        b = bytearray(log(ss, good))
        b[ss + ss + 8 * ss + 32 + 2] = 1  # entry 1's header, behind its mark text
        return bytes(b)
    if kind == "unaligned":
        return log(64, [entry(64, 1, 8, 0)])
    raise SystemExit("unknown variant " + kind)


if __name__ == "__main__":
    kind = sys.argv[2] if len(sys.argv) > 2 else "sample"
    with open(sys.argv[1], "wb") as f:
        f.write(sample() if kind == "sample" else bad(kind))
