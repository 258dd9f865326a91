//! AV1 sequence headers (pure): what a container needs to describe an AV1 track — the `av1C`
//! configuration record (Matroska's `CodecPrivate` for `V_AV1`, MP4's `av1C` box) and the
//! largest frame size — read from a keyframe in the low overhead format the depacketizer makes
//! (AV1 bitstream specification, sections 5.3 and 5.5; AV1 ISOBMFF binding, section 2.3).

/// OBU type of a sequence header.
const OBU_SEQUENCE_HEADER: u8 = 1;

/// A sequence header found in a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceHeader {
    /// The `av1C` record: four bytes, then the sequence header OBU itself.
    pub av1c: Vec<u8>,
    /// Largest frame width in pixels.
    pub width: u32,
    /// Largest frame height in pixels.
    pub height: u32,
}

/// The sequence header of `frame` (OBUs, each with its size field), if it has one that parses.
pub fn sequence_header(frame: &[u8]) -> Option<SequenceHeader> {
    let mut rest = frame;
    while !rest.is_empty() {
        let header = rest[0];
        let kind = (header >> 3) & 0x0f;
        let extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let head_len = 1 + usize::from(extension);
        let (size, leb_len) = if has_size {
            leb128(rest.get(head_len..)?)?
        } else {
            // Without a size field the OBU runs to the end of the frame.
            (rest.len().checked_sub(head_len)?, 0)
        };
        let start = head_len + leb_len;
        let end = start.checked_add(size)?;
        let payload = rest.get(start..end)?;
        if kind == OBU_SEQUENCE_HEADER {
            let obu = &rest[..end];
            return parse(payload).map(|(fields, width, height)| {
                let mut av1c = vec![0x81];
                av1c.extend_from_slice(&fields);
                av1c.push(0);
                av1c.extend_from_slice(obu);
                SequenceHeader {
                    av1c,
                    width,
                    height,
                }
            });
        }
        rest = &rest[end..];
    }
    None
}

/// An unsigned LEB128 value and its length in bytes (at most 8 bytes, as AV1 allows).
fn leb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, i + 1));
        }
    }
    None
}

/// Reads bits most significant first.
struct Bits<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn f(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.bytes.get(self.at / 8)?;
            let bit = (byte >> (7 - self.at % 8)) & 1;
            v = (v << 1) | u32::from(bit);
            self.at += 1;
        }
        Some(v)
    }

    fn flag(&mut self) -> Option<bool> {
        self.f(1).map(|b| b == 1)
    }

    fn uvlc(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros >= 32 {
                return None;
            }
        }
        Some(self.f(zeros)? + ((1u32 << zeros) - 1))
    }
}

/// From a sequence header OBU's payload: `av1C`'s second and third bytes, and the largest frame
/// size.
fn parse(payload: &[u8]) -> Option<([u8; 2], u32, u32)> {
    let mut b = Bits {
        bytes: payload,
        at: 0,
    };
    let profile = b.f(3)?;
    let _still_picture = b.flag()?;
    let reduced = b.flag()?;
    let (mut level, mut tier) = (0, 0);
    if reduced {
        level = b.f(5)?;
    } else {
        let mut decoder_model = false;
        let mut delay_len = 0;
        if b.flag()? {
            // timing_info
            b.f(32)?;
            b.f(32)?;
            if b.flag()? {
                b.uvlc()?;
            }
            decoder_model = b.flag()?;
            if decoder_model {
                delay_len = b.f(5)? + 1;
                b.f(32)?;
                b.f(5)?;
                b.f(5)?;
            }
        }
        let initial_display_delay = b.flag()?;
        let points = b.f(5)? + 1;
        for i in 0..points {
            b.f(12)?;
            let l = b.f(5)?;
            let t = if l > 7 { b.f(1)? } else { 0 };
            if decoder_model && b.flag()? {
                b.f(delay_len)?;
                b.f(delay_len)?;
                b.f(1)?;
            }
            if initial_display_delay && b.flag()? {
                b.f(4)?;
            }
            if i == 0 {
                (level, tier) = (l, t);
            }
        }
    }
    let width_bits = b.f(4)? + 1;
    let height_bits = b.f(4)? + 1;
    let width = b.f(width_bits)? + 1;
    let height = b.f(height_bits)? + 1;
    if !reduced && b.flag()? {
        // frame_id_numbers_present: delta_frame_id_length_minus_2, additional_frame_id_length_minus_1
        b.f(7)?;
    }
    // use_128x128_superblock, enable_filter_intra, enable_intra_edge
    b.f(3)?;
    if !reduced {
        // enable_interintra_compound, enable_masked_compound, enable_warped_motion,
        // enable_dual_filter
        b.f(4)?;
        let order_hint = b.flag()?;
        if order_hint {
            // enable_jnt_comp, enable_ref_frame_mvs
            b.f(2)?;
        }
        let force_screen_content = if b.flag()? { 2 } else { b.f(1)? };
        if force_screen_content > 0 && !b.flag()? {
            b.f(1)?;
        }
        if order_hint {
            b.f(3)?;
        }
    }
    // enable_superres, enable_cdef, enable_restoration
    b.f(3)?;
    // color_config
    let high_bitdepth = b.f(1)?;
    let twelve_bit = if profile == 2 && high_bitdepth == 1 {
        b.f(1)?
    } else {
        0
    };
    let mono = if profile == 1 { 0 } else { b.f(1)? };
    let (mut primaries, mut transfer, mut matrix) = (2, 2, 2);
    if b.flag()? {
        (primaries, transfer, matrix) = (b.f(8)?, b.f(8)?, b.f(8)?);
    }
    let (sub_x, sub_y, position) = if mono == 1 {
        (1, 1, 0)
    } else if primaries == 1 && transfer == 13 && matrix == 0 {
        (0, 0, 0)
    } else {
        let _color_range = b.f(1)?;
        let (x, y) = match profile {
            0 => (1, 1),
            1 => (0, 0),
            _ if twelve_bit == 1 => {
                let x = b.f(1)?;
                (x, if x == 1 { b.f(1)? } else { 0 })
            }
            _ => (1, 0),
        };
        let position = if x == 1 && y == 1 { b.f(2)? } else { 0 };
        (x, y, position)
    };
    let fields = [
        ((profile << 5) | level) as u8,
        ((tier << 7)
            | (high_bitdepth << 6)
            | (twelve_bit << 5)
            | (mono << 4)
            | (sub_x << 3)
            | (sub_y << 2)
            | position) as u8,
    ];
    Some((fields, width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes bits most significant first.
    #[derive(Default)]
    struct Out {
        bytes: Vec<u8>,
        at: usize,
    }

    impl Out {
        fn put(&mut self, n: u32, v: u32) {
            for i in (0..n).rev() {
                if self.at.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                let bit = ((v >> i) & 1) as u8;
                let last = self.bytes.len() - 1;
                self.bytes[last] |= bit << (7 - self.at % 8);
                self.at += 1;
            }
        }
    }

    /// A profile 0 sequence header for 640 × 480, level 8 (4.0) main tier, 8-bit 4:2:0.
    fn sequence_obu() -> Vec<u8> {
        let mut o = Out::default();
        o.put(3, 0); // seq_profile
        o.put(1, 0); // still_picture
        o.put(1, 0); // reduced_still_picture_header
        o.put(1, 0); // timing_info_present_flag
        o.put(1, 0); // initial_display_delay_present_flag
        o.put(5, 0); // operating_points_cnt_minus_1
        o.put(12, 0); // operating_point_idc
        o.put(5, 8); // seq_level_idx
        o.put(1, 0); // seq_tier
        o.put(4, 9); // frame_width_bits_minus_1
        o.put(4, 8); // frame_height_bits_minus_1
        o.put(10, 639);
        o.put(9, 479);
        o.put(1, 0); // frame_id_numbers_present_flag
        o.put(3, 0); // 128x128, filter intra, intra edge
        o.put(4, 0); // interintra, masked, warped, dual filter
        o.put(1, 1); // enable_order_hint
        o.put(2, 0); // jnt_comp, ref_frame_mvs
        o.put(1, 1); // seq_choose_screen_content_tools
        o.put(1, 1); // seq_choose_integer_mv
        o.put(3, 6); // order_hint_bits_minus_1
        o.put(3, 0); // superres, cdef, restoration
        o.put(1, 0); // high_bitdepth
        o.put(1, 0); // mono_chrome
        o.put(1, 0); // color_description_present_flag
        o.put(1, 0); // color_range
        o.put(2, 0); // chroma_sample_position
        o.put(1, 1); // trailing bit
        let mut obu = vec![(OBU_SEQUENCE_HEADER << 3) | 0x02, o.bytes.len() as u8];
        obu.extend_from_slice(&o.bytes);
        obu
    }

    #[test]
    fn a_keyframes_sequence_header_gives_the_record_and_the_size() {
        let seq = sequence_obu();
        // A temporal unit: the sequence header, then a frame OBU (type 6) of three bytes.
        let mut frame = seq.clone();
        frame.extend_from_slice(&[(6 << 3) | 0x02, 3, 1, 2, 3]);
        let h = sequence_header(&frame).expect("a sequence header");
        assert_eq!((h.width, h.height), (640, 480));
        assert_eq!(&h.av1c[..4], &[0x81, 8, 0b0000_1100, 0]);
        assert_eq!(&h.av1c[4..], &seq[..]);
    }

    #[test]
    fn frames_without_one_or_cut_short_give_none() {
        assert_eq!(sequence_header(&[(6 << 3) | 0x02, 3, 1, 2, 3]), None);
        let seq = sequence_obu();
        assert_eq!(sequence_header(&seq[..seq.len() - 2]), None);
        assert_eq!(sequence_header(&[]), None);
        assert_eq!(sequence_header(&[0x0a, 0xff, 0xff]), None);
    }
}
