//! MPEG audio frame arithmetic for narrators that synthesize long text in pieces: how long an MP3
//! lasts, read from its frame headers alone, and one MP3 made of several by joining their audio
//! frames. No decoding: every frame header states its own length and sample count.

use std::ops::Range;

/// Why bytes are not an MP3 this module can measure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp3Error {
    #[error("no MPEG audio frame in {0} bytes")]
    NoFrames(usize),
}

/// MPEG-1, MPEG-2 or the unofficial MPEG-2.5 (low sample rates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpegVersion {
    Mpeg1,
    Mpeg2,
    Mpeg25,
}

/// One decoded 4-byte frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub version: MpegVersion,
    /// 1, 2 or 3.
    pub layer: u8,
    pub bitrate_kbps: u32,
    pub sample_rate: u32,
    pub padding: bool,
    pub mono: bool,
    /// A 16-bit CRC follows the header.
    pub crc: bool,
}

const BITRATES_V1: [[u32; 15]; 3] = [
    [
        0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ],
    [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ],
    [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ],
];
const BITRATES_V2_L1: [u32; 15] = [
    0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
];
const BITRATES_V2_L23: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

impl FrameHeader {
    /// The header at the start of `bytes`, if those four bytes are one. Free-format bitrates
    /// (index 0) are refused: their frame length is not in the header, and no TTS service
    /// writes them.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let &[b0, b1, b2, b3, ..] = bytes else {
            return None;
        };
        if b0 != 0xFF || b1 & 0xE0 != 0xE0 {
            return None;
        }
        let version = match (b1 >> 3) & 0b11 {
            0b00 => MpegVersion::Mpeg25,
            0b10 => MpegVersion::Mpeg2,
            0b11 => MpegVersion::Mpeg1,
            _ => return None,
        };
        let layer = match (b1 >> 1) & 0b11 {
            0b11 => 1,
            0b10 => 2,
            0b01 => 3,
            _ => return None,
        };
        let bitrate_index = usize::from(b2 >> 4);
        if bitrate_index == 0 || bitrate_index == 15 {
            return None;
        }
        let bitrate_kbps = match (version, layer) {
            (MpegVersion::Mpeg1, l) => BITRATES_V1[usize::from(l - 1)][bitrate_index],
            (_, 1) => BITRATES_V2_L1[bitrate_index],
            _ => BITRATES_V2_L23[bitrate_index],
        };
        let base_rate = match (b2 >> 2) & 0b11 {
            0 => 44_100,
            1 => 48_000,
            2 => 32_000,
            _ => return None,
        };
        let sample_rate = match version {
            MpegVersion::Mpeg1 => base_rate,
            MpegVersion::Mpeg2 => base_rate / 2,
            MpegVersion::Mpeg25 => base_rate / 4,
        };
        Some(Self {
            version,
            layer,
            bitrate_kbps,
            sample_rate,
            padding: b2 & 0b10 != 0,
            mono: b3 >> 6 == 0b11,
            crc: b1 & 1 == 0,
        })
    }

    /// Audio samples per channel in the frame.
    pub fn samples(&self) -> u32 {
        match (self.layer, self.version) {
            (1, _) => 384,
            (2, _) | (3, MpegVersion::Mpeg1) => 1152,
            _ => 576,
        }
    }

    /// The frame's length in bytes, header included.
    pub fn frame_len(&self) -> usize {
        let bitrate = self.bitrate_kbps as usize * 1000;
        let rate = self.sample_rate as usize;
        if self.layer == 1 {
            (12 * bitrate / rate + usize::from(self.padding)) * 4
        } else {
            self.samples() as usize / 8 * bitrate / rate + usize::from(self.padding)
        }
    }

    /// Where a Xing/Info tag would start in a Layer III frame: after the header, the CRC and
    /// the side information, whose size depends on the version and channel count.
    fn side_info_end(&self) -> usize {
        let side = match (self.version, self.mono) {
            (MpegVersion::Mpeg1, false) => 32,
            (MpegVersion::Mpeg1, true) | (_, false) => 17,
            (_, true) => 9,
        };
        4 + if self.crc { 2 } else { 0 } + side
    }
}

/// The length of an ID3v2 tag at the start of `bytes` (0 when there is none).
fn id3v2_len(bytes: &[u8]) -> usize {
    if bytes.len() < 10 || &bytes[..3] != b"ID3" {
        return 0;
    }
    // A syncsafe integer: seven bits per byte, so the size never looks like a frame sync.
    let size = bytes[6..10]
        .iter()
        .fold(0usize, |acc, &b| (acc << 7) | usize::from(b & 0x7F));
    let footer = if bytes[5] & 0x10 != 0 { 10 } else { 0 };
    (10 + size + footer).min(bytes.len())
}

/// Trailing metadata that ends the audio: ID3v1 and APE tags.
fn is_tag(bytes: &[u8]) -> bool {
    bytes.starts_with(b"TAG") || bytes.starts_with(b"APETAGEX")
}

/// Whether a Layer III frame is an encoder's Xing/Info/VBRI header: a frame of silence that
/// carries the file's frame count. Decoders skip it, and in a joined file its count would be
/// wrong, so it is neither measured nor kept.
fn is_info_frame(header: &FrameHeader, frame: &[u8]) -> bool {
    if header.layer != 3 {
        return false;
    }
    let at = header.side_info_end();
    let xing = frame
        .get(at..at + 4)
        .is_some_and(|t| t == b"Xing" || t == b"Info");
    xing || frame.get(36..40) == Some(b"VBRI")
}

/// A frame starts at `at` when its header parses and the frame fits. Found while searching
/// (at the start, after junk) it must also be followed by another header, a tag or the end:
/// one lone match in junk or in a tag's payload is not enough. Right after a frame, the next
/// header is trusted as it is, so the last frame before junk is kept.
fn frame_at(bytes: &[u8], at: usize, synced: bool) -> Option<FrameHeader> {
    let header = FrameHeader::parse(&bytes[at..])?;
    let end = at + header.frame_len();
    if end > bytes.len() {
        return None;
    }
    let rest = &bytes[end..];
    let confirmed = synced
        || rest.is_empty()
        || is_tag(rest)
        || rest.starts_with(b"ID3")
        || FrameHeader::parse(rest).is_some();
    confirmed.then_some(header)
}

/// The byte ranges of the audio frames in `bytes`, with their headers: tags, encoder info
/// frames and junk between frames are left out.
pub fn audio_frames(bytes: &[u8]) -> Result<Vec<(Range<usize>, FrameHeader)>, Mp3Error> {
    let mut frames = Vec::new();
    let mut at = 0;
    let mut synced = false;
    while at + 4 <= bytes.len() {
        let rest = &bytes[at..];
        if rest.starts_with(b"ID3") {
            at += id3v2_len(rest).max(3);
            synced = false;
            continue;
        }
        if synced && is_tag(rest) {
            break;
        }
        match frame_at(bytes, at, synced) {
            Some(header) => {
                let end = at + header.frame_len();
                if !is_info_frame(&header, &bytes[at..end]) {
                    frames.push((at..end, header));
                }
                at = end;
                synced = true;
            }
            // Junk (or a truncated last frame): search for the next sync.
            None => {
                at += 1;
                synced = false;
            }
        }
    }
    if frames.is_empty() {
        return Err(Mp3Error::NoFrames(bytes.len()));
    }
    Ok(frames)
}

/// How long the MP3 plays, in milliseconds (rounded), from its frames' sample counts.
pub fn duration_ms(bytes: &[u8]) -> Result<u32, Mp3Error> {
    let seconds: f64 = audio_frames(bytes)?
        .iter()
        .map(|(_, h)| f64::from(h.samples()) / f64::from(h.sample_rate))
        .sum();
    Ok((seconds * 1000.0).round() as u32)
}

/// One MP3 that plays `pieces` one after another. MPEG audio frames are self-contained, so
/// joining is copying each piece's audio frames in order; tags and encoder info frames are
/// dropped because their sizes and frame counts describe one piece, not the whole.
pub fn concat<B: AsRef<[u8]>>(pieces: &[B]) -> Result<Vec<u8>, Mp3Error> {
    let mut out = Vec::with_capacity(pieces.iter().map(|p| p.as_ref().len()).sum());
    for piece in pieces {
        let bytes = piece.as_ref();
        for (range, _) in audio_frames(bytes)? {
            out.extend_from_slice(&bytes[range]);
        }
    }
    if out.is_empty() {
        return Err(Mp3Error::NoFrames(0));
    }
    Ok(out)
}

/// Whether `bytes` start like an MP3 file: an ID3v2 tag or a frame header.
pub fn looks_like_mp3(bytes: &[u8]) -> bool {
    bytes.starts_with(b"ID3") || FrameHeader::parse(bytes).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MPEG-2 Layer III, 48 kb/s, 24 kHz, mono: 144-byte frames of 576 samples, 24 ms each
    /// (the shape of Polly's neural output).
    fn mpeg2_frame(fill: u8) -> Vec<u8> {
        let mut f = vec![0xFF, 0xF3, 0x64, 0xC4];
        f.resize(144, fill);
        f
    }

    /// MPEG-1 Layer III, 128 kb/s, 44.1 kHz, stereo, padded: 418 bytes, 1152 samples.
    fn mpeg1_frame() -> Vec<u8> {
        let mut f = vec![0xFF, 0xFB, 0x92, 0x00];
        f.resize(418, 0x55);
        f
    }

    fn frames(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| mpeg2_frame(i as u8)).collect()
    }

    #[test]
    fn headers_decode_lengths_and_samples() {
        let h = FrameHeader::parse(&mpeg2_frame(0)).unwrap();
        assert_eq!(h.version, MpegVersion::Mpeg2);
        assert_eq!((h.layer, h.bitrate_kbps, h.sample_rate), (3, 48, 24_000));
        assert!(h.mono && !h.padding && !h.crc);
        assert_eq!((h.frame_len(), h.samples()), (144, 576));

        let h = FrameHeader::parse(&mpeg1_frame()).unwrap();
        assert_eq!(
            (h.bitrate_kbps, h.sample_rate, h.padding),
            (128, 44_100, true)
        );
        assert_eq!((h.frame_len(), h.samples()), (418, 1152));

        // Layer I: (12 * 32000 / 32000) * 4 = 48 bytes.
        let h = FrameHeader::parse(&[0xFF, 0xFF, 0x18, 0x00]).unwrap();
        assert_eq!((h.layer, h.frame_len(), h.samples()), (1, 48, 384));

        for bad in [
            [0xFF, 0xF3, 0x04, 0x00], // free format
            [0xFF, 0xF3, 0xF4, 0x00], // bitrate index 15
            [0xFF, 0xF3, 0x6C, 0x00], // sample rate index 3
            [0xFF, 0xF1, 0x64, 0x00], // reserved layer
            [0xFF, 0xEB, 0x64, 0x00], // reserved version
            [0xFE, 0xF3, 0x64, 0x00], // no sync
        ] {
            assert_eq!(FrameHeader::parse(&bad), None, "{bad:02X?}");
        }
    }

    #[test]
    fn duration_counts_every_audio_frame() {
        assert_eq!(duration_ms(&frames(50)), Ok(1200));
        let cd: Vec<u8> = (0..38).flat_map(|_| mpeg1_frame()).collect();
        // 38 * 1152 / 44100 s = 992.65 ms.
        assert_eq!(duration_ms(&cd), Ok(993));
    }

    #[test]
    fn tags_info_frames_and_junk_are_not_audio() {
        let mut bytes = b"ID3\x04\x00\x00\x00\x00\x00\x05abcde".to_vec();
        let mut info = mpeg2_frame(0);
        info[4 + 9..4 + 13].copy_from_slice(b"Info");
        bytes.extend(&info);
        bytes.extend(frames(10));
        bytes.extend(b"junk!");
        bytes.extend(frames(5));
        let mut v1 = b"TAG".to_vec();
        v1.resize(128, 0xFF);
        bytes.extend(&v1);

        let found = audio_frames(&bytes).unwrap();
        assert_eq!(found.len(), 15);
        assert_eq!(found[0].0.start, 15 + 144);
        assert_eq!(duration_ms(&bytes), Ok(15 * 24));
    }

    #[test]
    fn non_mp3_bytes_are_an_error() {
        assert_eq!(
            duration_ms(b"RIFF\x00\x00\x00\x00WAVEfmt "),
            Err(Mp3Error::NoFrames(16))
        );
        assert_eq!(duration_ms(&[]), Err(Mp3Error::NoFrames(0)));
        // A lone header whose frame runs past the end is not a frame.
        assert!(duration_ms(&mpeg2_frame(0)[..100]).is_err());
        assert!(!looks_like_mp3(b"<html>"));
        assert!(looks_like_mp3(&frames(1)) && looks_like_mp3(b"ID3\x04"));
    }

    #[test]
    fn concat_keeps_only_audio_frames_in_order() {
        let mut first = b"ID3\x04\x00\x00\x00\x00\x00\x02xy".to_vec();
        first.extend(frames(3));
        let second = frames(2);
        let joined = concat(&[first.clone(), second.clone()]).unwrap();
        assert_eq!(joined.len(), 5 * 144);
        assert_eq!(&joined[..3 * 144], &first[12..]);
        assert_eq!(&joined[3 * 144..], &second[..]);
        assert_eq!(duration_ms(&joined), Ok(120));
        assert!(concat(&[frames(1), b"not audio".to_vec()]).is_err());
    }
}
