//! What media is (pure): codecs, audio or video, and what a local track is.

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// An audio track.
    Audio,
    /// A video track.
    Video,
}

impl MediaKind {
    /// The kind's name, as the API and the wire spell it.
    pub fn name(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }

    /// The kind a name ("audio", "video") stands for.
    pub fn from_name(name: &str) -> Option<MediaKind> {
        match name {
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            _ => None,
        }
    }
}

/// The encoded formats meshrtc forwards (whatever the two ends negotiate among them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// VP8 video.
    Vp8,
    /// VP9 video.
    Vp9,
    /// H.264 video.
    H264,
    /// AV1 video.
    Av1,
    /// Opus audio.
    Opus,
}

impl Codec {
    /// Every codec, for parsing and listing.
    pub const ALL: [Codec; 5] = [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus];

    /// The MIME type SDP and the API use.
    pub fn mime(self) -> &'static str {
        match self {
            Codec::Vp8 => "video/VP8",
            Codec::Vp9 => "video/VP9",
            Codec::H264 => "video/H264",
            Codec::Av1 => "video/AV1",
            Codec::Opus => "audio/opus",
        }
    }

    /// The codec of a MIME type (case-insensitive, as SDP allows).
    pub fn from_mime(mime: &str) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.mime().eq_ignore_ascii_case(mime))
    }

    /// Audio or video.
    pub fn kind(self) -> MediaKind {
        match self {
            Codec::Opus => MediaKind::Audio,
            _ => MediaKind::Video,
        }
    }

    /// RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 90_000,
        }
    }
}

/// What a local track is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSpec {
    /// Its codec (and so its kind).
    pub codec: Codec,
    /// The media stream it belongs to.
    pub stream_id: String,
    /// Its id.
    pub track_id: String,
}
