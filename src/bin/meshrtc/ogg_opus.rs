//! Ogg Opus files as Opus packets: any valid file, whatever its page layout (a page may hold
//! several packets and a packet may span pages; the `ogg` crate joins and splits them). Each
//! packet's duration comes from its own TOC byte (RFC 6716 sec. 3.1), so pacing does not depend
//! on how the muxer grouped packets into pages.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use ogg::PacketReader;

/// The longest an Opus packet may last (RFC 6716 sec. 3.2.5).
const MAX_PACKET: Duration = Duration::from_millis(120);

/// How long one Opus packet plays, from its TOC byte and frame count; `None` if it is not a
/// valid Opus packet.
pub fn packet_duration(packet: &[u8]) -> Option<Duration> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame sizes in units of 2.5 ms per configuration (RFC 6716 table 2).
    let frame_quarter_ms: u32 = match config {
        0..=11 => [4, 8, 16, 24][usize::from(config % 4)],
        12..=15 => [4, 8][usize::from(config % 2)],
        _ => [1, 2, 4, 8][usize::from(config % 4)],
    };
    let frames: u32 = match toc & 0b11 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    if frames == 0 {
        return None;
    }
    let d = Duration::from_micros(u64::from(frame_quarter_ms * frames) * 2_500);
    (d <= MAX_PACKET).then_some(d)
}

/// The audio packets of an Ogg Opus file with their durations, in order (its first Opus stream;
/// the `OpusHead` and `OpusTags` header packets left out).
pub fn read(path: &Path) -> anyhow::Result<Vec<(Vec<u8>, Duration)>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    read_from(BufReader::new(file)).with_context(|| path.display().to_string())
}

/// Whether `path` is an Ogg Opus file `read` can send: its headers and first audio packet,
/// without reading the rest.
pub fn check(path: &Path) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    packets(BufReader::new(file), 1)
        .map(drop)
        .with_context(|| path.display().to_string())
}

/// [`read`] from any seekable reader.
pub fn read_from<R: std::io::Read + std::io::Seek>(
    r: R,
) -> anyhow::Result<Vec<(Vec<u8>, Duration)>> {
    packets(r, usize::MAX)
}

/// Up to `max` audio packets of the first Opus stream of `r`.
fn packets<R: std::io::Read + std::io::Seek>(
    r: R,
    max: usize,
) -> anyhow::Result<Vec<(Vec<u8>, Duration)>> {
    let mut reader = PacketReader::new(r);
    let mut serial = None;
    let mut headers = 0;
    let mut out = Vec::new();
    while out.len() < max
        && let Some(packet) = reader.read_packet().context("not a valid Ogg file")?
    {
        match serial {
            None if packet.data.starts_with(b"OpusHead") => {
                serial = Some(packet.stream_serial());
                headers = 1;
                continue;
            }
            None => {
                let found =
                    String::from_utf8_lossy(&packet.data[..packet.data.len().min(8)]).into_owned();
                bail!("an Ogg file whose first stream is not Opus (it starts with {found:?})");
            }
            Some(s) if s != packet.stream_serial() => continue,
            Some(_) => {}
        }
        if headers == 1 {
            if !packet.data.starts_with(b"OpusTags") {
                bail!("an Ogg Opus stream without its OpusTags header");
            }
            headers = 2;
            continue;
        }
        let Some(duration) = packet_duration(&packet.data) else {
            bail!("packet {} is not a valid Opus packet", out.len());
        };
        out.push((packet.data, duration));
    }
    if serial.is_none() {
        bail!("no Opus stream in this Ogg file");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_the_toc() {
        // CELT 20 ms (config 31), one frame.
        assert_eq!(packet_duration(&[31 << 3]), Some(Duration::from_millis(20)));
        // SILK 60 ms (config 3), two frames: 120 ms.
        assert_eq!(
            packet_duration(&[(3 << 3) | 1]),
            Some(Duration::from_millis(120))
        );
        // CELT 2.5 ms (config 16), code 3 with 4 frames: 10 ms.
        assert_eq!(
            packet_duration(&[(16 << 3) | 3, 4]),
            Some(Duration::from_millis(10))
        );
        // Hybrid 10 ms (config 12).
        assert_eq!(packet_duration(&[12 << 3]), Some(Duration::from_millis(10)));
        // Longer than 120 ms, no frames, or empty: not Opus.
        assert_eq!(packet_duration(&[(3 << 3) | 3, 3]), None);
        assert_eq!(packet_duration(&[(31 << 3) | 3, 0]), None);
        assert_eq!(packet_duration(&[]), None);
    }

    /// An Ogg file built with the `ogg` crate's writer: the headers, then `packets` CELT 20 ms
    /// packets of `size` bytes, `per_page` to a page.
    fn ogg_file(packets: usize, size: usize, per_page: usize) -> Vec<u8> {
        use ogg::writing::{PacketWriteEndInfo, PacketWriter};
        let mut buf = Vec::new();
        {
            let mut w = PacketWriter::new(std::io::Cursor::new(&mut buf));
            let mut head = b"OpusHead".to_vec();
            head.extend_from_slice(&[1, 2, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 0]);
            w.write_packet(head, 7, PacketWriteEndInfo::EndPage, 0)
                .expect("head");
            w.write_packet(
                b"OpusTags\0\0\0\0\0\0\0\0".to_vec(),
                7,
                PacketWriteEndInfo::EndPage,
                0,
            )
            .expect("tags");
            for i in 0..packets {
                let mut p = vec![(i % 251) as u8; size];
                p[0] = 31 << 3;
                let end = if i + 1 == packets {
                    PacketWriteEndInfo::EndStream
                } else if (i + 1) % per_page == 0 {
                    PacketWriteEndInfo::EndPage
                } else {
                    PacketWriteEndInfo::NormalPacket
                };
                w.write_packet(p, 7, end, 960 * (i as u64 + 1))
                    .expect("packet");
            }
        }
        buf
    }

    #[test]
    fn several_packets_per_page_and_packets_across_pages_come_out_whole() {
        // 50 packets a page (as ffmpeg's libopus output has), and 70 KB packets that span pages
        // (a page holds at most 255 × 255 bytes).
        for (count, size, per_page) in [(150, 160, 50), (3, 70_000, 1)] {
            let packets =
                read_from(std::io::Cursor::new(ogg_file(count, size, per_page))).expect("read");
            assert_eq!(packets.len(), count);
            for (i, (p, d)) in packets.iter().enumerate() {
                assert_eq!(p.len(), size);
                assert_eq!(p[1], (i % 251) as u8);
                assert_eq!(*d, Duration::from_millis(20));
            }
        }
    }

    #[test]
    fn what_is_not_ogg_opus_is_named() {
        let err = read_from(std::io::Cursor::new(b"RIFF....WAVEfmt ".to_vec())).unwrap_err();
        assert!(
            format!("{err:#}").contains("not a valid Ogg file"),
            "{err:#}"
        );
        let mut vorbis = ogg_file(2, 100, 1);
        // Make the first packet something else than OpusHead (its bytes sit after the
        // 28-byte page header); the page checksum no longer matches, so the crate refuses it.
        vorbis[28..36].copy_from_slice(b"\x01vorbis\0");
        assert!(read_from(std::io::Cursor::new(vorbis)).is_err());
    }
}
