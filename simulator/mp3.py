"""Silent MPEG Layer III audio for the simulated TTS, and a pure-python MP3 frame walker.

``mp3_frame_count(data)`` is the checker other tests reuse: it walks every frame header of
an MP3 stream (MPEG-1, 2 and 2.5 Layer III; an ID3v2 tag at the start and an ID3v1 tag at
the end are skipped) and raises ValueError on anything that is not a whole, valid stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

# version bits -> name; 1 is reserved
_VERSIONS = {3: "MPEG-1", 2: "MPEG-2", 0: "MPEG-2.5"}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
# Layer III bitrates in kbit/s by bitrate index (0 = free format, 15 = bad: both refused)
_BITRATES_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0)
_BITRATES_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0)


@dataclass(frozen=True, slots=True)
class Mp3Info:
    frames: int
    version: str
    sample_rate: int
    channels: int
    duration_ms: float


def _header_fields(b1: int, b2: int, b3: int) -> tuple[int, int, int, int, int]:
    """(version bits, sample rate, bitrate bit/s, frame length, channels) or ValueError."""
    version = (b1 >> 3) & 3
    if version == 1:
        raise ValueError("reserved MPEG version")
    if (b1 >> 1) & 3 != 1:
        raise ValueError("not a Layer III frame")
    bitrate_index = b2 >> 4
    table = _BITRATES_V1 if version == 3 else _BITRATES_V2
    kbps = table[bitrate_index]
    if kbps == 0:
        raise ValueError(f"unsupported bitrate index {bitrate_index}")
    rate_index = (b2 >> 2) & 3
    if rate_index == 3:
        raise ValueError("reserved sample rate index")
    if b3 & 3 == 2:
        raise ValueError("reserved emphasis")
    sample_rate = _SAMPLE_RATES[version][rate_index]
    padding = (b2 >> 1) & 1
    coefficient = 144 if version == 3 else 72
    length = coefficient * kbps * 1000 // sample_rate + padding
    channels = 1 if b3 >> 6 == 3 else 2
    return version, sample_rate, kbps * 1000, length, channels


def _skip_id3v2(data: bytes) -> int:
    if len(data) < 10 or data[:3] != b"ID3":
        return 0
    size_bytes = data[6:10]
    if any(b & 0x80 for b in size_bytes):
        raise ValueError("malformed ID3v2 tag size")
    size = 0
    for b in size_bytes:
        size = (size << 7) | b
    footer = 10 if data[5] & 0x10 else 0
    end = 10 + size + footer
    if end > len(data):
        raise ValueError("truncated ID3v2 tag")
    return end


def mp3_info(data: bytes) -> Mp3Info:
    """Walk every frame; raise ValueError unless ``data`` is a complete Layer III stream."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError("MP3 data must be bytes")
    data = bytes(data)
    pos = _skip_id3v2(data)
    end = len(data)
    if end - pos >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    frames = 0
    first: tuple[int, int, int] | None = None
    while pos < end:
        if end - pos < 4:
            raise ValueError(f"truncated frame header at offset {pos}")
        if data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
            raise ValueError(f"no frame sync at offset {pos}")
        try:
            version, rate, _, length, channels = _header_fields(
                data[pos + 1], data[pos + 2], data[pos + 3]
            )
        except ValueError as exc:
            raise ValueError(f"bad frame header at offset {pos}: {exc}") from None
        if first is None:
            first = (version, rate, channels)
        elif first[:2] != (version, rate):
            raise ValueError(f"frame at offset {pos} changes MPEG version or sample rate")
        if pos + length > end:
            raise ValueError(f"truncated frame at offset {pos}")
        frames += 1
        pos += length
    if first is None:
        raise ValueError("no MPEG audio frames")
    samples_per_frame = 1152 if first[0] == 3 else 576
    return Mp3Info(
        frames=frames,
        version=_VERSIONS[first[0]],
        sample_rate=first[1],
        channels=first[2],
        duration_ms=frames * samples_per_frame * 1000 / first[1],
    )


def mp3_frame_count(data: bytes) -> int:
    """Number of MPEG Layer III frames in ``data``; ValueError when it is not valid MP3."""
    return mp3_info(data).frames


def _layout(sample_rate: int) -> tuple[int, int]:
    for version, rates in _SAMPLE_RATES.items():
        if sample_rate in rates:
            return version, rates.index(sample_rate)
    raise ValueError(f"sample rate {sample_rate} has no MPEG layout")


def samples_per_frame(sample_rate: int) -> int:
    return 1152 if _layout(sample_rate)[0] == 3 else 576


@lru_cache(maxsize=64)
def silent_frame(sample_rate: int, bitrate: int, channels: int) -> bytes:
    """One Layer III frame of silence: a valid header, zeroed side info and main data.

    ``bitrate`` (bit/s) is snapped to the nearest value the MPEG version allows.
    """
    version, rate_index = _layout(sample_rate)
    table = _BITRATES_V1 if version == 3 else _BITRATES_V2
    kbps = bitrate / 1000
    bitrate_index = min(range(1, 15), key=lambda i: (abs(table[i] - kbps), -table[i]))
    b1 = 0xE0 | (version << 3) | (1 << 1) | 1  # Layer III, no CRC
    b2 = (bitrate_index << 4) | (rate_index << 2)  # no padding, private bit clear
    b3 = (3 << 6) if channels == 1 else 0  # mono, or stereo
    _, _, _, length, _ = _header_fields(b1, b2, b3)
    return bytes((0xFF, b1, b2, b3)) + bytes(length - 4)


def frame_bitrate(frame: bytes) -> int:
    """The bit rate (bit/s) in a frame header."""
    return _header_fields(frame[1], frame[2], frame[3])[2]
