//! Making a voice message: [`OggOpusEncoder`] for a recording that grows, [`encode_pcm`]
//! and [`encode_wav`] for audio at hand.

use super::head::{OpusHead, tags_bytes};
use super::*;

/// An encoded voice message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OggOpus {
    /// The complete Ogg Opus file.
    pub bytes: Vec<u8>,
    /// 48 kHz samples it decodes to: the input's length at 48 kHz, to the nearest sample.
    pub samples: u64,
    /// The input's sample rate (also in the header).
    pub input_rate: u32,
    /// The header's pre-skip: encoder look-ahead plus resampler delay, 48 kHz samples.
    pub pre_skip: u16,
}

impl OggOpus {
    /// Length in milliseconds, rounded to the nearest.
    pub fn duration_ms(&self) -> u64 {
        samples_to_ms(self.samples)
    }
}

/// The encoder settings of a voice message.
fn message_config() -> EncoderConfig {
    EncoderConfig {
        frame: FrameDuration::Ms20,
        bitrate_bps: BITRATE_BPS,
        complexity: COMPLEXITY,
        expected_loss_percent: 0,
        fec: false,
        dtx: false,
        max_bandwidth: MaxBandwidth::Fullband,
    }
}

/// Encodes a recording as it arrives: [`Self::push`] mono samples at the input rate, then
/// [`Self::finish`] for the file. Memory stays at the file itself plus a frame or two.
pub struct OggOpusEncoder {
    encoder: VoiceEncoder,
    resampler: ToNetwork,
    writer: PacketWriter<'static, Vec<u8>>,
    serial: u32,
    input_rate: u32,
    pre_skip: u16,
    /// Input samples pushed so far.
    input_samples: u64,
    /// 48 kHz samples from the resampler not yet encoded.
    staged: Vec<f32>,
    /// Frames encoded so far.
    frames: u64,
    /// The latest packet and its granule position: written when the next one comes, or by
    /// `finish` as the last of the stream.
    held: Option<(Vec<u8>, u64)>,
    packets_in_page: usize,
    packet: Vec<u8>,
}

impl OggOpusEncoder {
    /// Starts a voice message of mono samples at `input_rate` Hz (8 k, 16 k, 44.1 k, 48 k…:
    /// any rate [`ToNetwork`] takes).
    pub fn new(input_rate: u32) -> Result<OggOpusEncoder> {
        let resampler = ToNetwork::new(input_rate)?;
        let encoder = VoiceEncoder::new(&message_config())?;
        let delay = encoder.lookahead_samples()? as usize + resampler.delay();
        let pre_skip = u16::try_from(delay).map_err(|_| VoiceError::Delay { samples: delay })?;
        let serial = getrandom::u32().map_err(VoiceError::Random)?;
        let mut writer = PacketWriter::new(Vec::with_capacity(8 * 1024));
        let head = OpusHead::mono(pre_skip, input_rate).to_bytes();
        // Each header alone on its page, granule position 0 (RFC 7845 §3).
        for header in [head, tags_bytes()] {
            writer
                .write_packet(header, serial, PacketWriteEndInfo::EndPage, 0)
                .map_err(VoiceError::Write)?;
        }
        Ok(OggOpusEncoder {
            encoder,
            resampler,
            writer,
            serial,
            input_rate,
            pre_skip,
            input_samples: 0,
            staged: Vec::with_capacity(4 * FRAME),
            frames: 0,
            held: None,
            packets_in_page: 0,
            packet: vec![0; MAX_PACKET_BYTES],
        })
    }

    /// The header's pre-skip (48 kHz samples).
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// Adds mono samples (full scale ±1.0) at the input rate; encodes every frame it can.
    pub fn push(&mut self, samples: &[f32]) -> Result<()> {
        for chunk in samples.chunks(PUSH_CHUNK) {
            self.input_samples += chunk.len() as u64;
            self.resampler.push(chunk);
            self.pull_frames()?;
            // Never encode past what the input so far fills: the stream then ends with at
            // most one frame of padding, which the last granule position trims.
            let filled = u64::from(self.pre_skip) + self.output_len();
            self.encode_staged(filled / FRAME as u64)?;
        }
        Ok(())
    }

    /// Ends the stream: flushes the resampler, pads the last frame and writes the last page
    /// with end trimming.
    pub fn finish(mut self) -> Result<OggOpus> {
        let samples = self.output_len();
        let end = u64::from(self.pre_skip) + samples;
        let frames = end.div_ceil(FRAME as u64).max(1);
        // Silence pushes the input's tail out of the resampler. Each round yields at least
        // half a frame at any supported rate (up to 192 kHz); the bound is only a backstop.
        let silence = [0f32; PUSH_CHUNK];
        for _ in 0..64 {
            if self.frames + (self.staged.len() / FRAME) as u64 >= frames {
                break;
            }
            self.resampler.push(&silence);
            self.pull_frames()?;
        }
        let missing = (frames.saturating_sub(self.frames) as usize) * FRAME;
        if self.staged.len() < missing {
            self.staged.resize(missing, 0.0);
        }
        self.encode_staged(frames)?;
        if let Some((packet, _)) = self.held.take() {
            self.write_audio(packet, end, true)?;
        }
        Ok(OggOpus {
            bytes: self.writer.into_inner(),
            samples,
            input_rate: self.input_rate,
            pre_skip: self.pre_skip,
        })
    }

    /// The input so far at 48 kHz.
    fn output_len(&self) -> u64 {
        network_len(self.input_samples, self.input_rate)
    }

    fn pull_frames(&mut self) -> Result<()> {
        let mut frame = [0f32; FRAME];
        while self.resampler.pop_frame(&mut frame)? {
            self.staged.extend_from_slice(&frame);
        }
        Ok(())
    }

    /// Encodes staged frames until `max_frames` have been encoded in all.
    fn encode_staged(&mut self, max_frames: u64) -> Result<()> {
        let mut used = 0;
        let mut frame = [0f32; FRAME];
        while self.frames < max_frames && self.staged.len() - used >= FRAME {
            frame.copy_from_slice(&self.staged[used..used + FRAME]);
            used += FRAME;
            self.encode_frame(&frame)?;
        }
        self.staged.drain(..used);
        Ok(())
    }

    fn encode_frame(&mut self, frame: &[f32; FRAME]) -> Result<()> {
        let len = match self.encoder.encode(frame, &mut self.packet)? {
            Some(len) => len,
            // VoiceEncoder withholds 1–2 byte (DTX) packets. Without DTX libopus does not make
            // them (digital silence is 3 bytes), but should one come, its TOC byte alone (code
            // 0, no frame data) keeps the timing: decoders conceal it as a lost frame.
            None => {
                self.packet[0] &= 0xfc;
                1
            }
        };
        self.frames += 1;
        let packet = self.packet[..len].to_vec();
        let granule = self.frames * FRAME as u64;
        if let Some((previous, granule)) = self.held.replace((packet, granule)) {
            self.write_audio(previous, granule, false)?;
        }
        Ok(())
    }

    fn write_audio(&mut self, packet: Vec<u8>, granule: u64, last: bool) -> Result<()> {
        self.packets_in_page += 1;
        let end = if last {
            PacketWriteEndInfo::EndStream
        } else if self.packets_in_page >= PACKETS_PER_PAGE {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        if end != PacketWriteEndInfo::NormalPacket {
            self.packets_in_page = 0;
        }
        self.writer
            .write_packet(packet, self.serial, end, granule)
            .map_err(VoiceError::Write)
    }
}

/// Encodes mono samples at `rate` Hz (full scale ±1.0) as an Ogg Opus file.
pub fn encode_pcm(samples: &[f32], rate: u32) -> Result<Vec<u8>> {
    let mut encoder = OggOpusEncoder::new(rate)?;
    encoder.push(samples)?;
    Ok(encoder.finish()?.bytes)
}

/// Encodes a WAV file (8–32 bit PCM or 32-bit float, any channel count, any rate
/// [`ToNetwork`] takes) as an Ogg Opus file. Channels are averaged; the file is read in
/// pieces, so its length costs no memory beyond the (much smaller) result.
pub fn encode_wav(path: &Path) -> Result<OggOpus> {
    let file = std::fs::File::open(path).map_err(|e| VoiceError::Wav {
        path: path.to_owned(),
        source: hound::Error::IoError(e),
    })?;
    encode_wav_file(file, path)
}

/// [`encode_wav`] of a file already open (`path` names it in errors).
pub fn encode_wav_file(file: std::fs::File, path: &Path) -> Result<OggOpus> {
    let wav_error = |source| VoiceError::Wav {
        path: path.to_owned(),
        source,
    };
    let mut reader = WavReader::new(std::io::BufReader::new(file)).map_err(wav_error)?;
    let spec = reader.spec();
    let bad = |message: String| VoiceError::WavFormat {
        path: path.to_owned(),
        message,
    };
    if spec.sample_rate == 0 || spec.channels == 0 {
        return Err(bad(format!(
            "invalid header: {} Hz, {} channels",
            spec.sample_rate, spec.channels
        )));
    }
    let mut encoder = OggOpusEncoder::new(spec.sample_rate)?;
    let channels = usize::from(spec.channels);
    match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Int, bits @ 1..=32) => downmix_into(
            reader.samples::<i32>(),
            channels,
            |v| int_to_f32(v, bits),
            &mut encoder,
        ),
        (SampleFormat::Float, 32) => {
            downmix_into(reader.samples::<f32>(), channels, |v| v, &mut encoder)
        }
        (format, bits) => {
            return Err(bad(format!(
                "{bits}-bit {format:?} samples are not supported (use 8-32 bit PCM or 32-bit float)"
            )));
        }
    }
    .map_err(|e| match e {
        DownmixError::Wav(source) => wav_error(source),
        DownmixError::Voice(e) => e,
    })?;
    encoder.finish()
}

enum DownmixError {
    Wav(hound::Error),
    Voice(VoiceError),
}

/// Averages each interleaved frame of `samples` into one mono sample and pushes them to
/// `encoder` in pieces. A trailing partial frame is dropped.
fn downmix_into<S>(
    samples: impl Iterator<Item = hound::Result<S>>,
    channels: usize,
    convert: impl Fn(S) -> f32,
    encoder: &mut OggOpusEncoder,
) -> std::result::Result<(), DownmixError> {
    let mut block = Vec::with_capacity(PUSH_CHUNK);
    let (mut sum, mut n) = (0.0f32, 0);
    for sample in samples {
        sum += convert(sample.map_err(DownmixError::Wav)?);
        n += 1;
        if n == channels {
            block.push(sum / channels as f32);
            (sum, n) = (0.0, 0);
            if block.len() == PUSH_CHUNK {
                encoder.push(&block).map_err(DownmixError::Voice)?;
                block.clear();
            }
        }
    }
    encoder.push(&block).map_err(DownmixError::Voice)
}
