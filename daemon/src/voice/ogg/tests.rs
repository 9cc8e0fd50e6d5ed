use std::f32::consts::TAU;
use std::sync::OnceLock;

use ::ogg::{PacketWriteEndInfo, PacketWriter};
use audiopus::coder::Encoder as OpusEncoder;
use audiopus::{Application, Channels};
use hound::{SampleFormat, WavSpec, WavWriter};
use proptest::prelude::*;

use super::*;
use crate::audio::analysis::{goertzel_power, rms};

fn tone(freq: f32, amp: f32, rate: u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (TAU * freq * i as f32 / rate as f32).sin())
        .collect()
}

/// Ogg's CRC-32 written independently of the `ogg` crate: polynomial 0x04c11db7, MSB first,
/// initial value 0, no final xor; bit by bit, no table.
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One Ogg page as parsed by [`pages`].
#[derive(Debug)]
struct RawPage {
    flags: u8,
    granule: u64,
    serial: u32,
    sequence: u32,
    lacing: Vec<u8>,
    body: Vec<u8>,
}

/// Splits `bytes` into pages by hand (RFC 3533), checking the capture pattern, the version
/// and every CRC along the way.
fn pages(bytes: &[u8]) -> Vec<RawPage> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let h = &bytes[at..];
        assert_eq!(&h[..4], b"OggS", "capture pattern at byte {at}");
        assert_eq!(h[4], 0, "stream structure version");
        let segments = usize::from(h[26]);
        let lacing = h[27..27 + segments].to_vec();
        let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        let len = 27 + segments + body_len;
        let mut page = h[..len].to_vec();
        let stored = u32::from_le_bytes(page[22..26].try_into().unwrap());
        page[22..26].fill(0);
        assert_eq!(ogg_crc(&page), stored, "CRC of the page at byte {at}");
        out.push(RawPage {
            flags: h[5],
            granule: u64::from_le_bytes(h[6..14].try_into().unwrap()),
            serial: u32::from_le_bytes(h[14..18].try_into().unwrap()),
            sequence: u32::from_le_bytes(h[18..22].try_into().unwrap()),
            lacing,
            body: h[27 + segments..len].to_vec(),
        });
        at += len;
    }
    out
}

fn write_wav(path: &Path, spec: WavSpec, samples: &[i16]) {
    let mut w = WavWriter::create(path, spec).expect("create test WAV");
    for &s in samples {
        w.write_sample(s).expect("write test sample");
    }
    w.finalize().expect("finalize test WAV");
}

/// 1.23 s of a 1 kHz tone at 44.1 kHz in stereo (a little louder on the left), as 16-bit PCM.
fn tone_wav(dir: &Path) -> (PathBuf, usize) {
    let path = dir.join("tone.wav");
    let frames = 54_243; // 1.23 s: not a whole number of 20 ms frames at either rate
    let mono = tone(1000.0, 0.5, 44_100, frames);
    let interleaved: Vec<i16> = mono
        .iter()
        .flat_map(|&s| [(s * 1.2 * 32767.0) as i16, (s * 0.8 * 32767.0) as i16])
        .collect();
    let spec = WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    write_wav(&path, spec, &interleaved);
    (path, frames)
}

#[test]
fn crc_matches_the_published_check_value() {
    // CRC-32/CKSUM of "123456789" is 0x765e7680 with the final xor Ogg does not do.
    assert_eq!(ogg_crc(b"123456789"), 0x765e_7680 ^ 0xffff_ffff);
}

#[test]
fn a_44k1_stereo_tone_wav_round_trips_with_its_tone_and_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, frames) = tone_wav(dir.path());
    let file = encode_wav(&path).expect("encode");
    let expected = (frames as u64 * 48_000 + 22_050) / 44_100;
    assert_eq!(file.samples, expected);
    assert_eq!(file.duration_ms(), 1230);
    assert_eq!(file.input_rate, 44_100);
    // Opus' 312-sample look-ahead (VoIP) plus the 44.1 kHz resampler's 160.
    assert_eq!(file.pre_skip, 312 + 160);
    // 32 kbit/s for 1.23 s is about 4.9 kB, plus headers and paging.
    assert!(
        (3_000..8_000).contains(&file.bytes.len()),
        "{} bytes",
        file.bytes.len()
    );

    let (samples, ms) = decode(&file.bytes).expect("decode");
    assert_eq!(samples.len() as u64, expected, "end trimming is exact");
    assert!(ms.abs_diff(1230) <= 20, "{ms} ms");
    assert_eq!(ms, 1230);
    assert_eq!(duration_ms(&file.bytes).expect("duration"), 1230);

    // Past the codec's start-up and before the end.
    let steady = &samples[4_800..samples.len() - 4_800];
    let on = goertzel_power(steady, 48_000.0, 1000.0);
    // The downmix averages 0.6 and 0.4: amplitude 0.5, power 0.0625.
    assert!((on - 0.0625).abs() < 0.01, "1 kHz power {on}");
    for off in [500.0, 918.75, 1088.4, 1500.0, 2000.0, 3000.0, 5000.0] {
        let p = goertzel_power(steady, 48_000.0, off);
        assert!(on > 1000.0 * p, "1 kHz {on} vs {off} Hz {p}");
    }
}

#[test]
fn pages_headers_and_granules_follow_rfc_7845() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = tone_wav(dir.path());
    let file = encode_wav(&path).expect("encode");
    assert!(file.bytes.starts_with(b"OggS"));
    let pages = pages(&file.bytes);
    assert!(pages.len() >= 4, "{} pages", pages.len());

    let serial = pages[0].serial;
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(page.serial, serial, "one logical stream");
        assert_eq!(
            page.sequence, i as u32,
            "page sequence numbers count from 0"
        );
        let bos = page.flags & 0x02 != 0;
        let eos = page.flags & 0x04 != 0;
        assert_eq!(bos, i == 0, "only the first page begins the stream");
        assert_eq!(eos, i == pages.len() - 1, "only the last page ends it");
        assert_eq!(page.flags & 0x01, 0, "no packet spans pages");
    }

    // Page 0: OpusHead alone.
    let head = &pages[0];
    assert_eq!(head.lacing, [19], "OpusHead alone on the first page");
    assert_eq!(head.granule, 0);
    let b = &head.body;
    assert_eq!(&b[..8], b"OpusHead");
    assert_eq!(b[8], 1, "version");
    assert_eq!(b[9], 1, "channel count");
    assert_eq!(u16::from_le_bytes([b[10], b[11]]), 472, "pre-skip");
    assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 44_100);
    assert_eq!(i16::from_le_bytes([b[16], b[17]]), 0, "output gain");
    assert_eq!(b[18], 0, "mapping family");

    // Page 1: OpusTags alone, vendor "phoned", no comments.
    let tags = &pages[1];
    assert_eq!(tags.granule, 0);
    assert_eq!(tags.lacing.len(), 1, "OpusTags alone on the second page");
    let mut expected_tags = b"OpusTags".to_vec();
    expected_tags.extend_from_slice(&6u32.to_le_bytes());
    expected_tags.extend_from_slice(b"phoned");
    expected_tags.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(tags.body, expected_tags);

    // Audio pages: every packet one 20 ms frame, granule positions counting them, the last
    // one trimming the padding.
    let mut granule = 0u64;
    let audio = &pages[2..];
    for (i, page) in audio.iter().enumerate() {
        let mut packets = 0;
        let mut at = 0;
        let mut len = 0;
        for &l in &page.lacing {
            len += usize::from(l);
            if l < 255 {
                let packet = &page.body[at..at + len];
                let n = opus_packet::nb_samples(
                    Packet::try_from(packet).expect("non-empty"),
                    SampleRate::Hz48000,
                )
                .expect("valid TOC");
                assert_eq!(n, 960);
                packets += 1;
                at += len;
                len = 0;
            }
        }
        assert!(packets > 0);
        assert!(packets <= 50, "at most a second per page");
        let full = granule + packets * 960;
        if i + 1 < audio.len() {
            assert_eq!(page.granule, full, "audio page {i}");
            granule = full;
        } else {
            assert_eq!(
                page.granule,
                472 + file.samples,
                "last granule: pre-skip + length"
            );
            let trimmed = full - page.granule;
            assert!(
                trimmed < 960,
                "end trimming {trimmed} is within the last frame"
            );
        }
    }

    // The ogg crate's reader agrees on the packet layout.
    let mut reader = ::ogg::PacketReader::new(Cursor::new(&file.bytes[..]));
    let mut count = 0;
    while let Some(p) = reader.read_packet().expect("ogg crate reads it") {
        assert_eq!(p.stream_serial(), serial);
        count += 1;
    }
    assert!(count > 60, "{count} packets");
}

#[test]
fn serial_numbers_are_random() {
    let a = pages(&encode_pcm(&[0.0; 480], 48_000).expect("encode"))[0].serial;
    let b = pages(&encode_pcm(&[0.0; 480], 48_000).expect("encode"))[0].serial;
    let c = pages(&encode_pcm(&[0.0; 480], 48_000).expect("encode"))[0].serial;
    assert!(a != b || b != c, "three equal serials: {a:#x}");
}

#[test]
fn decoded_audio_lines_up_with_the_input() {
    // 200 ms of silence, then a tone: the pre-skip (codec and resampler delay) must put the
    // onset back at 200 ms.
    for rate in [8_000u32, 16_000, 44_100, 48_000] {
        let mut input = vec![0.0f32; rate as usize / 5];
        input.extend(tone(440.0, 0.5, rate, rate as usize / 2));
        let file = encode_pcm(&input, rate).expect("encode");
        let (out, ms) = decode(&file).expect("decode");
        assert_eq!(ms, 700, "{rate} Hz");
        assert_eq!(out.len(), 33_600, "{rate} Hz");
        let onset = out
            .iter()
            .position(|s| s.abs() > 0.05)
            .expect("the tone is there");
        assert!(
            onset.abs_diff(9_600) <= 96,
            "{rate} Hz: onset at sample {onset}, expected 9600"
        );
    }
}

#[test]
fn lengths_are_exact_at_every_rate_and_for_empty_and_tiny_inputs() {
    for (rate, n) in [
        (8_000u32, 8_000usize),
        (11_025, 5_000),
        (16_000, 1),
        (22_050, 22_050 * 3),
        (32_000, 31_999),
        (48_000, 960),
        (48_000, 961),
        (96_000, 12_345),
        (44_100, 0),
    ] {
        let input = tone(300.0, 0.3, rate, n);
        let mut encoder = OggOpusEncoder::new(rate).expect("encoder");
        // In uneven pieces, as a recording arrives.
        for piece in input.chunks(777) {
            encoder.push(piece).expect("push");
        }
        let file = encoder.finish().expect("finish");
        let expected = (n as u64 * 48_000 + u64::from(rate) / 2) / u64::from(rate);
        assert_eq!(file.samples, expected, "{rate} Hz, {n} samples");
        let (out, _) = decode(&file.bytes).expect("decode");
        assert_eq!(out.len() as u64, expected, "{rate} Hz, {n} samples");
        let info = info(&file.bytes).expect("info");
        assert_eq!(info.samples, expected);
        assert_eq!(info.vendor, "phoned");
        assert_eq!(info.head.input_rate, rate);
        pages(&file.bytes); // CRCs check
    }
}

#[test]
fn digital_silence_encodes_every_frame() {
    let file = encode_pcm(&vec![0.0; 48_000 * 2], 48_000).expect("encode");
    let (out, ms) = decode(&file).expect("decode");
    assert_eq!((out.len(), ms), (96_000, 2000));
    assert!(rms(&out) < 1e-3);
    // Each 20 ms frame is its own packet of at least 3 bytes (no DTX).
    let packets: usize = pages(&file)[2..]
        .iter()
        .map(|p| p.lacing.iter().filter(|&&l| l < 255).count())
        .sum();
    assert_eq!(packets, (96_000 + 312usize).div_ceil(960));
}

#[test]
fn unsupported_rates_and_bad_wavs_are_typed_errors() {
    assert!(matches!(
        encode_pcm(&[0.0; 100], 44_101),
        Err(VoiceError::Resample(ResampleError::UnsupportedRate {
            rate: 44_101
        }))
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        encode_wav(&dir.path().join("missing.wav")),
        Err(VoiceError::Wav { .. })
    ));
    let not_wav = dir.path().join("not.wav");
    std::fs::write(&not_wav, b"RIFF nonsense").expect("write");
    assert!(matches!(encode_wav(&not_wav), Err(VoiceError::Wav { .. })));
}

#[test]
fn float_and_8_bit_mono_wavs_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("f.wav");
    let spec = WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: SampleFormat::Float,
    };
    let mut w = WavWriter::create(&f, spec).expect("create");
    for s in tone(1000.0, 0.5, 16_000, 8_000) {
        w.write_sample(s).expect("write");
    }
    w.finalize().expect("finalize");
    let file = encode_wav(&f).expect("float WAV");
    assert_eq!(file.duration_ms(), 500);

    let i8 = dir.path().join("i8.wav");
    let spec = WavSpec {
        bits_per_sample: 8,
        sample_format: SampleFormat::Int,
        ..spec
    };
    let mut w = WavWriter::create(&i8, spec).expect("create");
    for s in tone(1000.0, 0.5, 16_000, 8_000) {
        w.write_sample((s * 127.0) as i8).expect("write");
    }
    w.finalize().expect("finalize");
    let (out, ms) = decode(&encode_wav(&i8).expect("8-bit WAV").bytes).expect("decode");
    assert_eq!(ms, 500);
    let on = goertzel_power(&out[4_800..20_000], 48_000.0, 1000.0);
    assert!((on - 0.0625).abs() < 0.01, "{on}");
}

// ----- Streams built by hand, as other encoders might write them -----

/// `OpusHead` with the given fields (mapping family 0 unless `table` is given).
fn head_bytes(channels: u8, pre_skip: u16, gain: i16, family: u8, table: &[u8]) -> Vec<u8> {
    let mut b = b"OpusHead".to_vec();
    b.push(1);
    b.push(channels);
    b.extend_from_slice(&pre_skip.to_le_bytes());
    b.extend_from_slice(&48_000u32.to_le_bytes());
    b.extend_from_slice(&gain.to_le_bytes());
    b.push(family);
    b.extend_from_slice(table);
    b
}

/// Writes headers and then `pages` of packets, each with its granule position; the last page
/// ends the stream. `other` adds a second logical stream (BOS first, one data page) around
/// ours, as a multiplexed file would.
fn build(head: &[u8], tags: &[u8], pages: &[(Vec<Vec<u8>>, u64)], other: bool) -> Vec<u8> {
    let serial = 0x1234_5678;
    let mut w = PacketWriter::new(Vec::new());
    let end_page = PacketWriteEndInfo::EndPage;
    if other {
        w.write_packet(b"fishead\0xyz".to_vec(), 7, end_page, 0)
            .unwrap();
    }
    w.write_packet(head.to_vec(), serial, end_page, 0).unwrap();
    if other {
        w.write_packet(b"other data".to_vec(), 7, PacketWriteEndInfo::EndStream, 0)
            .unwrap();
    }
    w.write_packet(tags.to_vec(), serial, end_page, 0).unwrap();
    for (i, (packets, granule)) in pages.iter().enumerate() {
        for (j, p) in packets.iter().enumerate() {
            let end = match (j + 1 == packets.len(), i + 1 == pages.len()) {
                (true, true) => PacketWriteEndInfo::EndStream,
                (true, false) => end_page,
                _ => PacketWriteEndInfo::NormalPacket,
            };
            w.write_packet(p.clone(), serial, end, *granule).unwrap();
        }
    }
    w.into_inner()
}

/// Opus packets of `input` (48 kHz mono) from a call-style encoder with `frame`-long
/// frames, and the encoder's look-ahead.
fn packets(input: &[f32], frame: FrameDuration) -> (Vec<Vec<u8>>, u16) {
    let config = EncoderConfig {
        frame,
        dtx: false,
        ..EncoderConfig::default()
    };
    let mut enc = VoiceEncoder::new(&config).expect("encoder");
    let lookahead = enc.lookahead_samples().expect("lookahead") as u16;
    let mut buf = [0u8; MAX_PACKET_BYTES];
    let out = input
        .chunks_exact(frame.samples())
        .map(|f| {
            let len = enc.encode(f, &mut buf).expect("encode").expect("no DTX");
            buf[..len].to_vec()
        })
        .collect();
    (out, lookahead)
}

/// Pages of `per_page` packets of `samples` each, with granule positions counted from
/// `start`; the last page's granule position is `last` if given.
fn paged(
    packets: Vec<Vec<u8>>,
    per_page: usize,
    samples: u64,
    start: u64,
    last: Option<u64>,
) -> Vec<(Vec<Vec<u8>>, u64)> {
    let mut granule = start;
    let mut out: Vec<(Vec<Vec<u8>>, u64)> = packets
        .chunks(per_page)
        .map(|c| {
            granule += c.len() as u64 * samples;
            (c.to_vec(), granule)
        })
        .collect();
    if let (Some(last), Some(page)) = (last, out.last_mut()) {
        page.1 = last;
    }
    out
}

fn tags() -> Vec<u8> {
    let mut b = b"OpusTags".to_vec();
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(b"libopus!");
    b.extend_from_slice(&2u32.to_le_bytes());
    for c in ["TITLE=hi", "ARTIST=me"] {
        b.extend_from_slice(&(c.len() as u32).to_le_bytes());
        b.extend_from_slice(c.as_bytes());
    }
    b
}

#[test]
fn ten_ms_streams_decode() {
    let input = tone(1000.0, 0.5, 48_000, 48_000);
    let (p, lookahead) = packets(&input, FrameDuration::Ms10);
    assert_eq!(p.len(), 100);
    let head = head_bytes(1, lookahead, 0, 0, &[]);
    // 1 s minus the look-ahead, so that the decoded length is 1 s less 2 × look-ahead.
    let end = 48_000 - u64::from(lookahead);
    let file = build(&head, &tags(), &paged(p, 30, 480, 0, Some(end)), false);
    let (out, ms) = decode(&file).expect("decode 10 ms stream");
    assert_eq!(out.len() as u64, end - u64::from(lookahead));
    assert_eq!(ms, samples_to_ms(end - u64::from(lookahead)));
    assert_eq!(duration_ms(&file).expect("duration"), ms);
    let on = goertzel_power(&out[4_800..40_000], 48_000.0, 1000.0);
    assert!((on - 0.0625).abs() < 0.01, "{on}");
    let info = info(&file).expect("info");
    assert_eq!(info.vendor, "libopus!");
}

#[test]
fn other_frame_durations_are_refused_with_a_typed_error() {
    let (p, lookahead) = packets(&tone(500.0, 0.3, 48_000, 9_600), FrameDuration::Ms20);
    let head = head_bytes(1, lookahead, 0, 0, &[]);

    // A code 1 packet: two 20 ms frames of equal size, 40 ms.
    let mut forty = vec![(p[3][0] & 0xfc) | 1];
    forty.extend_from_slice(&p[3][1..]);
    forty.extend_from_slice(&p[3][1..]);
    let mut stream = p.clone();
    stream[4] = forty;
    let mut pages = paged(stream, 5, 960, 0, None);
    for page in &mut pages {
        page.1 += 960; // the 40 ms packet on the first page
    }
    let file = build(&head, &tags(), &pages, false);
    assert!(matches!(
        decode(&file),
        Err(VoiceError::UnsupportedFrameDuration {
            index: 4,
            samples: 1920
        })
    ));
    // info does not decode: any valid Opus duration is counted from the granules.
    assert_eq!(
        info(&file).expect("info").samples,
        11 * 960 - u64::from(lookahead)
    );

    // A 60 ms SILK packet (configuration 3) as the first packet.
    let sixty = vec![3 << 3, 0xff, 0x00, 0x12];
    let file = build(&head, &tags(), &[(vec![sixty], 2880)], false);
    assert!(matches!(
        decode(&file),
        Err(VoiceError::UnsupportedFrameDuration {
            index: 0,
            samples: 2880
        })
    ));

    // 20 ms packets, then a 10 ms one.
    let (ten, _) = packets(&tone(500.0, 0.3, 48_000, 480), FrameDuration::Ms10);
    let mut stream = p.clone();
    stream.push(ten[0].clone());
    let file = build(&head, &tags(), &[(stream, 10 * 960 + 480)], false);
    assert!(matches!(
        decode(&file),
        Err(VoiceError::FrameDurationChanged {
            index: 10,
            samples: 480,
            expected: 960
        })
    ));

    // An empty packet has no duration at all.
    let mut stream = p;
    stream[1] = Vec::new();
    let file = build(&head, &tags(), &paged(stream, 10, 960, 0, None), false);
    assert!(matches!(
        decode(&file),
        Err(VoiceError::BadPacket { index: 1, .. })
    ));
}

#[test]
fn standard_stereo_files_with_gain_and_a_late_start_decode_to_mono() {
    // A stereo stream from libopus itself (as opusenc would make), tone on the left only,
    // output gain −6.02 dB (half amplitude), first granule position 10 s into a live stream.
    let enc = OpusEncoder::new(SampleRate::Hz48000, Channels::Stereo, Application::Audio)
        .expect("stereo encoder");
    let lookahead = enc.lookahead().expect("lookahead") as u16;
    let left = tone(1000.0, 0.8, 48_000, 48_000);
    let mut p = Vec::new();
    let mut buf = [0u8; 4000];
    for chunk in left.chunks_exact(960) {
        let interleaved: Vec<f32> = chunk.iter().flat_map(|&l| [l, 0.0]).collect();
        let len = enc.encode_float(&interleaved, &mut buf).expect("encode");
        p.push(buf[..len].to_vec());
    }
    let head = head_bytes(2, lookahead, -1541, 0, &[]);
    let start = 480_000;
    let file = build(&head, &tags(), &paged(p, 20, 960, start, None), true);

    let (out, ms) = decode(&file).expect("decode stereo");
    assert_eq!(out.len(), 48_000 - usize::from(lookahead));
    assert_eq!(ms, samples_to_ms(48_000 - u64::from(lookahead)));
    assert_eq!(
        duration_ms(&file).expect("duration"),
        ms,
        "the late start does not count"
    );
    // Mono is the mean of left (0.8) and silence: 0.4, then halved by the gain: 0.2.
    let on = goertzel_power(&out[4_800..40_000], 48_000.0, 1000.0);
    assert!((on - 0.01).abs() < 0.002, "{on}");
    assert_eq!(info(&file).expect("info").head.channels, 2);

    // Family 1 with one coupled stream is the same thing.
    let head = head_bytes(2, lookahead, 0, 1, &[1, 1, 0, 1]);
    let (p, _) = packets(&tone(1000.0, 0.5, 48_000, 9_600), FrameDuration::Ms20);
    let file = build(&head, &tags(), &paged(p, 5, 960, 0, None), false);
    assert!(decode(&file).is_ok());
}

#[test]
fn granule_positions_that_break_the_rules_are_refused() {
    let (p, lookahead) = packets(&tone(500.0, 0.3, 48_000, 9_600), FrameDuration::Ms20);
    let head = head_bytes(1, lookahead, 0, 0, &[]);
    let bad = |pages: Vec<(Vec<Vec<u8>>, u64)>| {
        matches!(
            decode(&build(&head, &tags(), &pages, false)),
            Err(VoiceError::BadGranule(_))
        )
    };
    // The first page claims fewer samples than it holds, and does not end the stream.
    let mut pages = paged(p.clone(), 5, 960, 0, None);
    pages[0].1 = 100;
    assert!(bad(pages));
    // A single-page stream that ends before its pre-skip.
    assert!(bad(vec![(p[..2].to_vec(), u64::from(lookahead) - 1)]));
    // Going backwards.
    let mut pages = paged(p.clone(), 3, 960, 0, None);
    pages[2].1 = 960;
    assert!(bad(pages));
    // -1 on a page where packets end.
    assert!(bad(paged(p.clone(), 5, 960, 0, Some(u64::MAX))));

    // A single page that is also the last may trim its end: granule < samples means start 0.
    let file = build(&head, &tags(), &[(p[..3].to_vec(), 1_000)], false);
    let (out, _) = decode(&file).expect("short single-page stream");
    assert_eq!(out.len(), 1_000 - usize::from(lookahead));
    assert_eq!(info(&file).expect("info").samples, out.len() as u64);
}

#[test]
fn bad_headers_are_typed_errors() {
    let (p, lookahead) = packets(&tone(500.0, 0.3, 48_000, 1_920), FrameDuration::Ms20);
    let pages = paged(p, 2, 960, 0, None);
    let good = head_bytes(1, lookahead, 0, 0, &[]);
    let decode_head = |head: &[u8]| decode(&build(head, &tags(), &pages, false));

    let mut v16 = good.clone();
    v16[8] = 16;
    assert!(matches!(
        decode_head(&v16),
        Err(VoiceError::UnsupportedVersion(16))
    ));
    let mut v15 = good.clone();
    v15[8] = 15;
    assert!(decode_head(&v15).is_ok(), "minor versions are compatible");
    let header = |r: Result<(Vec<f32>, u64)>, which: &str| matches!(r, Err(VoiceError::BadHeader { header, .. }) if header == which);
    assert!(header(
        decode_head(&head_bytes(0, 312, 0, 0, &[])),
        "OpusHead"
    ));
    assert!(header(
        decode_head(&head_bytes(3, 312, 0, 0, &[])),
        "OpusHead"
    ));
    assert!(header(decode_head(&good[..18]), "OpusHead"));
    assert!(header(
        decode_head(&head_bytes(2, 312, 0, 1, &[1, 1, 0])),
        "OpusHead"
    ));
    assert!(header(
        decode_head(&head_bytes(2, 312, 0, 1, &[1, 1, 0, 2])),
        "OpusHead"
    ));
    assert!(matches!(
        decode_head(&head_bytes(6, 312, 0, 1, &[4, 2, 0, 4, 1, 2, 3, 5])),
        Err(VoiceError::UnsupportedMapping {
            family: 1,
            channels: 6,
            streams: 4
        })
    ));

    // Tags: wrong magic, a vendor length past the end, a comment count with no comments.
    let bad_tags = |tags: &[u8]| {
        matches!(
            decode(&build(&good, tags, &pages, false)),
            Err(VoiceError::BadHeader {
                header: "OpusTags",
                ..
            })
        )
    };
    assert!(bad_tags(b"OpusTagz\0\0\0\0\0\0\0\0"));
    let mut long_vendor = b"OpusTags".to_vec();
    long_vendor.extend_from_slice(&u32::MAX.to_le_bytes());
    long_vendor.extend_from_slice(b"abc");
    assert!(bad_tags(&long_vendor));
    let mut many = b"OpusTags".to_vec();
    many.extend_from_slice(&0u32.to_le_bytes());
    many.extend_from_slice(&u32::MAX.to_le_bytes());
    many.extend_from_slice(&[1, 0, 0, 0, b'x']);
    assert!(bad_tags(&many));

    // No OpusTags: the stream ends after OpusHead.
    let mut w = PacketWriter::new(Vec::new());
    w.write_packet(good.clone(), 1, PacketWriteEndInfo::EndStream, 0)
        .unwrap();
    assert!(matches!(
        decode(&w.into_inner()),
        Err(VoiceError::BadHeader {
            header: "OpusTags",
            reason: "missing"
        })
    ));

    // Audio on the OpusTags page.
    let mut w = PacketWriter::new(Vec::new());
    w.write_packet(good.clone(), 1, PacketWriteEndInfo::EndPage, 0)
        .unwrap();
    w.write_packet(tags(), 1, PacketWriteEndInfo::NormalPacket, 0)
        .unwrap();
    w.write_packet(pages[0].0[0].clone(), 1, PacketWriteEndInfo::EndStream, 960)
        .unwrap();
    assert!(matches!(
        decode(&w.into_inner()),
        Err(VoiceError::BadHeader {
            header: "OpusTags",
            reason: "audio data shares its page"
        })
    ));

    // Not Ogg, and Ogg without Opus.
    assert!(matches!(decode(b"RIFF....WAVE"), Err(VoiceError::NotOgg)));
    assert!(matches!(decode(b""), Err(VoiceError::NotOgg)));
    let mut w = PacketWriter::new(Vec::new());
    w.write_packet(b"\x01vorbis".to_vec(), 1, PacketWriteEndInfo::EndStream, 0)
        .unwrap();
    assert!(matches!(
        decode(&w.into_inner()),
        Err(VoiceError::NoOpusStream)
    ));
}

/// A 1.5 s message (two audio pages) to damage, made once.
fn sample_file() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| encode_pcm(&tone(700.0, 0.4, 16_000, 24_000), 16_000).expect("encode"))
}

#[test]
fn damage_is_a_typed_error() {
    let file = sample_file();
    // Cut inside the last page.
    assert!(matches!(
        decode(&file[..file.len() - 5]),
        Err(VoiceError::Truncated)
    ));
    // Cut at a page boundary: what is there decodes, without the end trimming.
    let all = pages(file);
    let cut: usize = all[..all.len() - 1]
        .iter()
        .map(|p| 27 + p.lacing.len() + p.body.len())
        .sum();
    let (out, _) = decode(&file[..cut]).expect("a stream cut between pages");
    assert_eq!(out.len(), 50 * 960 - 472);
    // A flipped bit fails the page CRC.
    let mut flipped = file.to_vec();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x10;
    assert!(matches!(decode(&flipped), Err(VoiceError::Checksum { .. })));
    // Too long for the caller's limit.
    assert!(matches!(
        decode_with_limit(file, 1_000),
        Err(VoiceError::TooLong { max_samples: 1_000 })
    ));
    assert_eq!(
        decode_with_limit(file, 72_000)
            .expect("at the limit")
            .0
            .len(),
        72_000
    );
}

/// Rewrites every page's CRC, so that damage inside pages reaches the Opus parsing.
fn fix_crcs(bytes: &mut [u8]) {
    let mut at = 0;
    while at + 27 <= bytes.len() && &bytes[at..at + 4] == b"OggS" {
        let segments = usize::from(bytes[at + 26]);
        let Some(lacing) = bytes.get(at + 27..at + 27 + segments) else {
            return;
        };
        let len = 27 + segments + lacing.iter().map(|&l| usize::from(l)).sum::<usize>();
        if at + len > bytes.len() {
            return;
        }
        bytes[at + 22..at + 26].fill(0);
        let crc = ogg_crc(&bytes[at..at + len]);
        bytes[at + 22..at + 26].copy_from_slice(&crc.to_le_bytes());
        at += len;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes);
        let _ = info(&bytes);
        let mut ogg_like = b"OggS\0\x02".to_vec();
        ogg_like.extend_from_slice(&bytes);
        let _ = decode(&ogg_like);
        let _ = duration_ms(&ogg_like);
    }

    #[test]
    fn truncated_files_never_panic(len in 0usize..8192) {
        let file = sample_file();
        let cut = &file[..len.min(file.len())];
        let _ = decode(cut);
        let _ = info(cut);
    }

    #[test]
    fn damaged_files_with_valid_crcs_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut file = sample_file().to_vec();
        for (at, byte) in edits {
            let i = at.index(file.len());
            file[i] = byte;
        }
        fix_crcs(&mut file);
        let decoded = decode_with_limit(&file, 100_000);
        let _ = info(&file);
        if let Ok((samples, _)) = decoded {
            prop_assert!(samples.len() <= 100_000);
        }
    }
}

/// "Playback length: 0m:01.229s" from `opusinfo`, in seconds.
fn opusinfo_length(text: &str) -> Option<f64> {
    let rest = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Playback length: "))?;
    let (minutes, seconds) = rest.split_once("m:")?;
    let seconds: f64 = seconds.trim().trim_end_matches('s').parse().ok()?;
    Some(minutes.parse::<f64>().ok()? * 60.0 + seconds)
}

#[test]
fn opusinfo_lengths_are_read_whatever_their_precision() {
    assert_eq!(
        opusinfo_length("\tPlayback length: 0m:01.229s\n"),
        Some(1.229)
    );
    assert_eq!(opusinfo_length("Playback length: 2m:01.2s"), Some(121.2));
    assert_eq!(opusinfo_length("Playback length: soon"), None);
}

/// Checks our file with an independent reader: `opusinfo` (opus-tools, which
/// `scripts/deps.sh` installs, so this always runs) and `ffprobe` when it is there.
#[test]
fn external_tools_accept_the_file() {
    let tool = |name: &str| std::process::Command::new(name).arg("-h").output().is_ok();
    let (has_ffprobe, has_opusinfo) = (tool("ffprobe"), tool("opusinfo"));
    assert!(
        has_opusinfo,
        "opusinfo not found: install opus-tools (./scripts/deps.sh does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (wav, _) = tone_wav(dir.path());
    let path = dir.path().join("tone.opus");
    std::fs::write(&path, encode_wav(&wav).expect("encode").bytes).expect("write");
    if has_ffprobe {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_entries"])
            .arg("stream=codec_name,sample_rate,channels:format=duration")
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(&path)
            .output()
            .expect("run ffprobe");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "ffprobe: {text}");
        assert!(
            out.stderr.is_empty(),
            "ffprobe complains: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("codec_name=opus"), "{text}");
        assert!(text.contains("sample_rate=48000"), "{text}");
        assert!(text.contains("channels=1"), "{text}");
        // ffmpeg's Ogg demuxer counts the pre-skip in (472 samples, 10 ms).
        let duration: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("duration="))
            .and_then(|d| d.trim().parse().ok())
            .expect("a duration");
        assert!((duration - 1.23).abs() < 0.02, "{text}");
    }
    {
        let out = std::process::Command::new("opusinfo")
            .arg(&path)
            .output()
            .expect("run opusinfo");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "opusinfo: {text}");
        assert!(
            !text.contains("WARNING") && !text.contains("ERROR"),
            "{text}"
        );
        assert!(text.contains("Pre-skip: 472"), "{text}");
        let length = opusinfo_length(&text).expect("a playback length");
        assert!((length - 1.23).abs() < 0.002, "{text}");
    }
}

#[test]
fn the_encoder_can_move_to_a_recording_thread() {
    fn send<T: Send>() {}
    send::<OggOpusEncoder>();
    send::<VoiceError>();
}
