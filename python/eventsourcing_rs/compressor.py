"""Compression of stored event state."""

import zlib

from eventsourcing_rs.persistence import Compressor


class ZlibCompressor(Compressor):
    """Compresses with zlib (DEFLATE), as the reference does."""

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data)

    def decompress(self, data: bytes) -> bytes:
        return zlib.decompress(data)
