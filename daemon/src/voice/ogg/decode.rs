//! Reading a voice message: [`info`] and [`duration_ms`] from the headers and granule
//! positions, [`decode`] to 48 kHz samples; every page and packet checked, nothing trusted.

use super::head::{OpusHead, parse_tags};
use super::*;

/// What [`info`] reads from a file without decoding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OggOpusInfo {
    /// The identification header.
    pub head: OpusHead,
    /// The `OpusTags` vendor string (lossily UTF-8).
    pub vendor: String,
    /// 48 kHz samples the file decodes to: the last granule position less the first audio
    /// page's starting position and the pre-skip.
    pub samples: u64,
}

impl OggOpusInfo {
    /// Length in milliseconds, rounded to the nearest.
    pub fn duration_ms(&self) -> u64 {
        samples_to_ms(self.samples)
    }
}

/// Reads the headers and the granule positions of an Ogg Opus file (checking every page's
/// CRC and every packet's table of contents, but decoding nothing).
pub fn info(bytes: &[u8]) -> Result<OggOpusInfo> {
    let mut demux = Demux::open(bytes)?;
    let mut timeline = Timeline::new(demux.head.pre_skip);
    while let Some(page) = demux.next_page()? {
        let samples = page_samples(&page, demux.packets_before(&page), |_, _| Ok(()))?;
        timeline.page(page.granule, samples, page.eos)?;
    }
    Ok(OggOpusInfo {
        samples: timeline.duration(),
        head: demux.head,
        vendor: demux.vendor,
    })
}

/// The length of an Ogg Opus file in milliseconds, from its last granule position.
pub fn duration_ms(bytes: &[u8]) -> Result<u64> {
    info(bytes).map(|i| i.duration_ms())
}

/// Decodes an Ogg Opus file to 48 kHz mono samples and its length in milliseconds, with at
/// most [`DEFAULT_MAX_SAMPLES`] samples.
pub fn decode(bytes: &[u8]) -> Result<(Vec<f32>, u64)> {
    decode_with_limit(bytes, DEFAULT_MAX_SAMPLES)
}

/// [`decode`] with a limit of `max_samples` output samples: a longer file is
/// [`VoiceError::TooLong`], found before its audio is decoded past the limit.
pub fn decode_with_limit(bytes: &[u8], max_samples: usize) -> Result<(Vec<f32>, u64)> {
    let mut demux = Demux::open(bytes)?;
    let head = demux.head.clone();
    let pre_skip = u64::from(head.pre_skip);
    let mut timeline = Timeline::new(head.pre_skip);
    let mut decoder: Option<VoiceDecoder> = None;
    let mut frame_samples = None;
    let mut out = Vec::new();
    let mut pcm = [0f32; FRAME];
    // Samples decoded so far, pre-skip included.
    let mut position = 0u64;
    while let Some(page) = demux.next_page()? {
        let first = demux.packets_before(&page);
        // Durations come from the packets' TOC bytes, so a bad page is refused before any
        // of it is decoded.
        let samples = page_samples(&page, first, |index, n| {
            if n != FrameDuration::Ms10.samples() && n != FrameDuration::Ms20.samples() {
                return Err(VoiceError::UnsupportedFrameDuration { index, samples: n });
            }
            match *frame_samples.get_or_insert(n) {
                expected if expected != n => Err(VoiceError::FrameDurationChanged {
                    index,
                    samples: n,
                    expected,
                }),
                _ => Ok(()),
            }
        })?;
        let keep = timeline.page(page.granule, samples, page.eos)?;
        let end = position.saturating_add(keep);
        if end.saturating_sub(pre_skip) > max_samples as u64 {
            return Err(VoiceError::TooLong { max_samples });
        }
        if decoder.is_none()
            && let Some(n) = frame_samples
        {
            let frame = if n == FrameDuration::Ms10.samples() {
                FrameDuration::Ms10
            } else {
                FrameDuration::Ms20
            };
            decoder = Some(VoiceDecoder::new(frame)?);
        }
        let Some(decoder) = decoder.as_mut() else {
            continue; // a page holds at least one packet, which set the frame length
        };
        for packet in &page.packets {
            let n = decoder.frame_samples();
            decoder.decode(packet, &mut pcm[..n])?;
            // Keep what lies after the pre-skip and before the end trimming.
            let from = pre_skip.saturating_sub(position).min(n as u64) as usize;
            let to = end.saturating_sub(position).min(n as u64) as usize;
            if from < to {
                out.extend_from_slice(&pcm[from..to]);
            }
            position += n as u64;
        }
    }
    if head.output_gain != 0 {
        let gain = 10f32.powf(f32::from(head.output_gain) / (20.0 * 256.0));
        out.iter_mut().for_each(|s| *s *= gain);
    }
    let ms = samples_to_ms(out.len() as u64);
    Ok((out, ms))
}

/// Total samples of a page's packets from their TOC bytes, each checked by `check(index,
/// samples)`; `first` is the index of the page's first packet.
fn page_samples(
    page: &Page,
    first: u64,
    mut check: impl FnMut(u64, usize) -> Result<()>,
) -> Result<u64> {
    let mut total = 0u64;
    for (i, packet) in page.packets.iter().enumerate() {
        let index = first + i as u64;
        let bad = |source| VoiceError::BadPacket { index, source };
        let toc = Packet::try_from(packet.as_slice()).map_err(bad)?;
        let n = opus_packet::nb_samples(toc, SampleRate::Hz48000).map_err(bad)?;
        check(index, n)?;
        total += n as u64;
    }
    Ok(total)
}

/// Follows the granule positions of a stream's audio pages (RFC 7845 §4): where the stream
/// starts, and how much of each page to keep.
struct Timeline {
    pre_skip: u64,
    /// Granule position before the first audio sample.
    start: Option<u64>,
    /// Granule position of the last audio page so far.
    last: Option<u64>,
}

impl Timeline {
    fn new(pre_skip: u16) -> Timeline {
        Timeline {
            pre_skip: u64::from(pre_skip),
            start: None,
            last: None,
        }
    }

    /// Takes the next audio page: its granule position, the samples its packets hold and
    /// whether it ends the stream. Returns how many of those samples to keep: all, except on
    /// the last page, whose granule position may trim the end.
    fn page(&mut self, granule: u64, samples: u64, eos: bool) -> Result<u64> {
        if granule > i64::MAX as u64 {
            // -1 belongs only on pages where no packet ends.
            return Err(VoiceError::BadGranule(
                "a page where packets end has a negative granule position",
            ));
        }
        let previous = match self.last {
            Some(previous) => previous,
            None => {
                // §4.5: the first audio page may start the stream later than 0, but not
                // earlier, unless it is also the last page.
                let start = match granule.checked_sub(samples) {
                    Some(start) => start,
                    None if eos => 0,
                    None => {
                        return Err(VoiceError::BadGranule(
                            "the first audio page ends before the samples it holds",
                        ));
                    }
                };
                if eos && granule < self.pre_skip {
                    return Err(VoiceError::BadGranule(
                        "the stream ends before its pre-skip",
                    ));
                }
                self.start = Some(start);
                start
            }
        };
        if granule < previous {
            return Err(VoiceError::BadGranule("granule positions go backwards"));
        }
        self.last = Some(granule);
        Ok(if eos {
            (granule - previous).min(samples)
        } else {
            samples
        })
    }

    /// Samples the stream decodes to, from the granule positions seen.
    fn duration(&self) -> u64 {
        match (self.start, self.last) {
            (Some(start), Some(last)) => (last - start).saturating_sub(self.pre_skip),
            _ => 0,
        }
    }
}

/// The completed packets of one audio page.
struct Page {
    packets: Vec<Vec<u8>>,
    granule: u64,
    eos: bool,
}

/// The Opus stream of an Ogg file, page by page, after its two headers.
struct Demux<'a> {
    reader: PacketReader<Cursor<&'a [u8]>>,
    serial: u32,
    head: OpusHead,
    vendor: String,
    ended: bool,
    /// Audio packets returned so far (for error messages).
    packets: u64,
}

impl<'a> Demux<'a> {
    /// Finds the first Opus stream (a beginning-of-stream page holding `OpusHead`) and reads
    /// its two headers.
    fn open(bytes: &'a [u8]) -> Result<Demux<'a>> {
        let mut reader = PacketReader::new(Cursor::new(bytes));
        let tags_missing = VoiceError::BadHeader {
            header: "OpusTags",
            reason: "missing",
        };
        let (serial, head, ended) = loop {
            let Some(packet) = read(&mut reader)? else {
                return Err(VoiceError::NoOpusStream);
            };
            if packet.first_in_stream() && packet.data.starts_with(OPUS_HEAD) {
                let head = OpusHead::parse(&packet.data)?;
                if !packet.last_in_page() {
                    return Err(VoiceError::BadHeader {
                        header: "OpusHead",
                        reason: "shares its page with another packet",
                    });
                }
                break (packet.stream_serial(), head, packet.last_in_stream());
            }
        };
        if ended {
            return Err(tags_missing);
        }
        let (vendor, ended) = loop {
            let Some(packet) = read(&mut reader)? else {
                return Err(tags_missing);
            };
            if packet.stream_serial() != serial {
                continue;
            }
            let vendor = parse_tags(&packet.data)?;
            if !packet.last_in_page() {
                return Err(VoiceError::BadHeader {
                    header: "OpusTags",
                    reason: "audio data shares its page",
                });
            }
            break (vendor, packet.last_in_stream());
        };
        Ok(Demux {
            reader,
            serial,
            head,
            vendor,
            ended,
            packets: 0,
        })
    }

    /// The next audio page with at least one completed packet, or `None` after the
    /// end-of-stream page or at the end of the bytes (a stream cut at a page boundary keeps
    /// what it has).
    fn next_page(&mut self) -> Result<Option<Page>> {
        let mut packets = Vec::new();
        while !self.ended {
            let Some(packet) = read(&mut self.reader)? else {
                self.ended = true;
                break;
            };
            if packet.stream_serial() != self.serial {
                continue;
            }
            let (last, eos, granule) = (
                packet.last_in_page(),
                packet.last_in_stream(),
                packet.absgp_page(),
            );
            packets.push(packet.data);
            if last {
                self.ended = eos;
                self.packets += packets.len() as u64;
                return Ok(Some(Page {
                    packets,
                    granule,
                    eos,
                }));
            }
        }
        // The reader hands out a page's packets together, so none are left over here.
        Ok(None)
    }

    /// Index of `page`'s first packet, `page` being the last one returned.
    fn packets_before(&self, page: &Page) -> u64 {
        self.packets - page.packets.len() as u64
    }
}

/// The next packet of any stream, with the ogg crate's errors made ours.
fn read(reader: &mut PacketReader<Cursor<&[u8]>>) -> Result<Option<::ogg::Packet>> {
    reader.read_packet().map_err(|e| match e {
        OggReadError::NoCapturePatternFound => VoiceError::NotOgg,
        OggReadError::InvalidStreamStructVer(v) => VoiceError::OggVersion(v),
        OggReadError::HashMismatch(stored, computed) => VoiceError::Checksum { stored, computed },
        OggReadError::ReadError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            VoiceError::Truncated
        }
        OggReadError::ReadError(e) => VoiceError::Read(e),
        OggReadError::InvalidData => VoiceError::Malformed,
    })
}
