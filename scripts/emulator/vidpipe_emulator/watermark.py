"""The development watermark the emulator seeds: processing fails without a watermark at the
stack's `WatermarkKey` (a configuration error, on purpose, in AWS), and a newcomer has no AWS CLI
to put one there. The image is drawn here, as a PNG written by hand with zlib: no imaging library
is needed, and the bytes are the same on every run."""

from __future__ import annotations

import struct
import zlib

from .common import log

WIDTH, HEIGHT = 160, 48


def development_watermark_png() -> bytes:
    """A white rounded bar with a darker inner band, fully opaque: bright enough to find in a
    rendition at the pipeline's 10 % opacity, and obviously not anyone's real brand."""
    rows = []
    for y in range(HEIGHT):
        row = bytearray([0])  # filter type None
        for x in range(WIDTH):
            inside = 4 <= y < HEIGHT - 4 and 4 <= x < WIDTH - 4
            band = 16 <= y < HEIGHT - 16 and 16 <= x < WIDTH - 16
            if band:
                row += bytes([40, 40, 40, 255])
            elif inside:
                row += bytes([255, 255, 255, 255])
            else:
                row += bytes([0, 0, 0, 0])
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def seed(s3, bucket: str, key: str) -> bool:
    """Puts the development watermark at `key` unless something is there already. True if seeded."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        log(f"watermark: s3://{bucket}/{key} already exists; left as it is")
        return False
    except Exception:  # noqa: BLE001 - any miss (404) means: not there yet
        pass
    s3.put_object(Bucket=bucket, Key=key, Body=development_watermark_png(), ContentType="image/png",
                  ServerSideEncryption="AES256")
    log(f"watermark: seeded a development watermark ({WIDTH}x{HEIGHT} PNG) at s3://{bucket}/{key}; "
        "uploads are processed with it. Replace it with your own PNG or JPEG at the same key, "
        "or pass --no-watermark to start without one.")
    return True
