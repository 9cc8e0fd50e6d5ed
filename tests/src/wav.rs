//! 16-bit PCM WAV files for the audio tests and benchmarks: the microphone a test plays
//! through the `file` backend, and the recording it checks.

use std::path::Path;

/// Writes `frames` (−1.0..=1.0) as 16-bit PCM at `rate`, each value on every one of
/// `channels`.
pub fn write(path: &Path, rate: u32, channels: u16, frames: impl IntoIterator<Item = f32>) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w =
        hound::WavWriter::create(path, spec).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for x in frames {
        let v = (x * 32767.0) as i16;
        for _ in 0..channels {
            w.write_sample(v).expect("write a sample");
        }
    }
    w.finalize().expect("finish the WAV");
}

/// Reads a 16-bit PCM WAV: its samples as −1.0..1.0 (interleaved if it has several
/// channels) and its rate.
pub fn read(path: &Path) -> (Vec<f32>, u32) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rate = r.spec().sample_rate;
    let samples = r
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap_or_else(|e| panic!("{}: {e}", path.display()))) / 32768.0)
        .collect();
    (samples, rate)
}
