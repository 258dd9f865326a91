//! WebM and Matroska files as tracks of frames (the `matroska-demuxer` crate): the first video
//! track (VP8, VP9 or AV1) and the first audio track (Opus), each frame with how long it lasts,
//! so `publish` sends both as one stream, paced by the file's own timestamps.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use matroska_demuxer::{Frame, MatroskaFile, TrackType};

/// A track `publish` can send.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// The track's number in the file.
    pub number: u64,
    /// The codec as the daemon names it (`video/VP8`, `audio/opus`, …).
    pub codec: &'static str,
    /// "video" or "audio": the published track's id.
    pub kind: &'static str,
}

/// One track's frames: when the first starts (from the file's start) and each with its duration.
#[derive(Debug, Default)]
pub struct Frames {
    /// When the track's first frame is due.
    pub start: Duration,
    /// Each frame's bytes and how long it lasts.
    pub frames: Vec<(Vec<u8>, Duration)>,
}

/// The daemon's name for a Matroska codec id that `publish` can send.
fn codec(id: &str) -> Option<(&'static str, &'static str)> {
    Some(match id {
        "V_VP8" => ("video/VP8", "video"),
        "V_VP9" => ("video/VP9", "video"),
        "V_AV1" => ("video/AV1", "video"),
        "A_OPUS" => ("audio/opus", "audio"),
        _ => return None,
    })
}

fn open(path: &Path) -> anyhow::Result<MatroskaFile<BufReader<File>>> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    if is_mp4(&mut file) {
        anyhow::bail!(
            "{}: an MP4 file; publish sends WebM or Matroska (VP8, VP9 or AV1 with Opus), IVF and \
             Ogg Opus (MP4's usual AAC audio cannot go over WebRTC): \
             ffmpeg -i IN.mp4 -c:v libvpx -c:a libopus OUT.webm",
            path.display()
        );
    }
    MatroskaFile::open(BufReader::new(file))
        .map_err(|e| anyhow::anyhow!("{}: not a WebM or Matroska file ({e})", path.display()))
}

/// Whether `file` starts with an ISO BMFF `ftyp` box (MP4, MOV); leaves it at its start.
fn is_mp4(file: &mut File) -> bool {
    use std::io::{Read as _, Seek as _};
    let mut head = [0u8; 8];
    let read = file.read_exact(&mut head).is_ok();
    let rewound = file.rewind().is_ok();
    read && rewound && &head[4..8] == b"ftyp"
}

/// The tracks of `path` to publish: its first video and first audio track. A video or audio
/// track in a codec the daemon cannot send is an error naming it; other tracks (subtitles) are
/// left out.
pub fn tracks(path: &Path) -> anyhow::Result<Vec<Track>> {
    let mkv = open(path)?;
    let mut out: Vec<Track> = Vec::new();
    for t in mkv.tracks() {
        let kind = match t.track_type() {
            TrackType::Video => "video",
            TrackType::Audio => "audio",
            _ => continue,
        };
        if out.iter().any(|o| o.kind == kind) {
            continue;
        }
        let Some((codec, kind)) = codec(t.codec_id()) else {
            bail!(
                "{}: its {kind} track {} is {}; publish sends V_VP8, V_VP9, V_AV1 and A_OPUS \
                 (re-encode it, e.g. ffmpeg -i IN -c:v libvpx-vp9 -c:a libopus OUT.webm)",
                path.display(),
                t.track_number(),
                t.codec_id()
            );
        };
        out.push(Track {
            number: t.track_number().get(),
            codec,
            kind,
        });
    }
    if out.is_empty() {
        bail!("{}: no video or audio track", path.display());
    }
    Ok(out)
}

/// The frames of track `number`, timed by the file's timestamps (the last frame lasts as long
/// as the one before it, or the track's default duration).
pub fn frames(path: &Path, number: u64) -> anyhow::Result<Frames> {
    let mut mkv = open(path)?;
    let scale_ns = mkv.info().timestamp_scale().get();
    let default = mkv
        .tracks()
        .iter()
        .find(|t| t.track_number().get() == number)
        .and_then(|t| t.default_duration())
        .map(|d| Duration::from_nanos(d.get()));
    let mut timed: Vec<(Vec<u8>, Duration)> = Vec::new();
    let mut frame = Frame::default();
    while mkv
        .next_frame(&mut frame)
        .with_context(|| format!("{}: reading frames", path.display()))?
    {
        if frame.track == number {
            let at = Duration::from_nanos(frame.timestamp.saturating_mul(scale_ns));
            timed.push((std::mem::take(&mut frame.data), at));
        }
    }
    Ok(pace(timed, default))
}

/// Frames at absolute times into frames with durations (out-of-order times count as zero).
fn pace(timed: Vec<(Vec<u8>, Duration)>, default: Option<Duration>) -> Frames {
    let start = timed.first().map_or(Duration::ZERO, |f| f.1);
    let times: Vec<Duration> = timed.iter().map(|f| f.1).collect();
    let mut last = default.unwrap_or(Duration::from_millis(20));
    let frames = timed
        .into_iter()
        .enumerate()
        .map(|(i, (data, at))| {
            let d = match times.get(i + 1) {
                Some(next) => next.saturating_sub(at),
                None => default.unwrap_or(last),
            };
            last = d;
            (data, d)
        })
        .collect();
    Frames { start, frames }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_the_daemon_sends_and_those_it_does_not() {
        assert_eq!(codec("V_VP9"), Some(("video/VP9", "video")));
        assert_eq!(codec("A_OPUS"), Some(("audio/opus", "audio")));
        assert_eq!(codec("V_MPEG4/ISO/AVC"), None);
        assert_eq!(codec("A_VORBIS"), None);
    }

    #[test]
    fn durations_come_from_the_next_timestamp() {
        let ms = Duration::from_millis;
        let f = pace(
            vec![
                (vec![1], ms(40)),
                (vec![2], ms(80)),
                (vec![3], ms(120)),
                (vec![4], ms(110)),
            ],
            None,
        );
        assert_eq!(f.start, ms(40));
        let d: Vec<Duration> = f.frames.iter().map(|x| x.1).collect();
        assert_eq!(d, vec![ms(40), ms(40), ms(0), ms(0)]);
        let f = pace(vec![(vec![1], ms(0)), (vec![2], ms(20))], Some(ms(20)));
        assert_eq!(f.frames[1].1, ms(20));
    }
}
