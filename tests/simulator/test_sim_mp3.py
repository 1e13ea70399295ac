"""The pure-python MP3 frame walker and the silent frames the simulator builds."""

import pytest

from simulator.mp3 import frame_bitrate, mp3_frame_count, mp3_info, silent_frame


def test_it_counts_frames_of_silence():
    frame = silent_frame(32000, 128000, 1)

    assert len(frame) == 576  # 144 * 128000 / 32000
    assert mp3_frame_count(frame * 7) == 7


@pytest.mark.parametrize(
    ("rate", "version", "spf"),
    [
        (44100, "MPEG-1", 1152),
        (48000, "MPEG-1", 1152),
        (32000, "MPEG-1", 1152),
        (24000, "MPEG-2", 576),
        (22050, "MPEG-2", 576),
        (16000, "MPEG-2", 576),
        (8000, "MPEG-2.5", 576),
    ],
)
def test_every_sample_rate_makes_valid_frames(rate, version, spf):
    info = mp3_info(silent_frame(rate, 64000, 2) * 10)

    assert info.frames == 10
    assert info.version == version
    assert info.sample_rate == rate
    assert info.channels == 2
    assert info.duration_ms == pytest.approx(10 * spf * 1000 / rate)


def test_bitrates_snap_to_what_the_version_allows():
    assert frame_bitrate(silent_frame(32000, 256000, 1)) == 256000
    assert frame_bitrate(silent_frame(24000, 256000, 1)) == 160000  # MPEG-2 tops out at 160k


def test_it_skips_id3_tags():
    frames = silent_frame(44100, 128000, 1) * 3
    id3v2 = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)  # 10-byte body
    id3v1 = b"TAG" + bytes(125)

    assert mp3_frame_count(id3v2 + frames + id3v1) == 3


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an mp3 at all",
        bytes(1000),
        b"\xff\xfb",
        b"ID3\x04\x00\x00\x00\x00\x00\x0a",  # tag only, and truncated
    ],
)
def test_it_refuses_data_that_is_not_mp3(data):
    with pytest.raises(ValueError):
        mp3_frame_count(data)


def test_it_refuses_a_truncated_last_frame():
    frames = silent_frame(32000, 128000, 1) * 3

    with pytest.raises(ValueError, match="truncated frame"):
        mp3_frame_count(frames[:-1])


def test_it_refuses_garbage_between_frames():
    frame = silent_frame(32000, 128000, 1)

    with pytest.raises(ValueError, match="no frame sync"):
        mp3_frame_count(frame + b"junk" + frame)


def test_it_refuses_layer_ii_frames():
    frame = bytearray(silent_frame(44100, 128000, 1))
    frame[1] = 0xFD  # MPEG-1, Layer II, no CRC

    with pytest.raises(ValueError, match="Layer III"):
        mp3_frame_count(bytes(frame))


def test_it_refuses_a_change_of_sample_rate():
    with pytest.raises(ValueError, match="sample rate"):
        mp3_frame_count(silent_frame(32000, 128000, 1) + silent_frame(44100, 128000, 1))
