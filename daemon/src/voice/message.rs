//! Voice messages on this device: made from a WAV or recorded from the input device,
//! sent like a file (kind `voice`), and played back through the output device.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use phoned_proto::FileKind;

use super::ogg::{self, OggOpus, OggOpusEncoder};
use super::take::{self, Take};
use crate::audio::backend::{self, Options};
use crate::audio::resample::{FRAME, FromNetwork};
use crate::config::Audio;
use crate::core::{AudioSource, CoreError, ErrorKind};
use crate::driver::{Handle, unix_ms};
use crate::intake::{IntakeError, Source};
use crate::work::Busy;

/// The longest recording accepted.
pub const MAX_SECONDS: u32 = 300;

fn failed(e: impl std::fmt::Display) -> CoreError {
    CoreError::failed(e.to_string())
}

/// Writes an encoded message into the state dir's `voice/`, named for when it was made.
fn save(state_dir: &Path, opus: &OggOpus) -> Result<PathBuf, CoreError> {
    let dir = state_dir.join("voice");
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let (path, _) =
        crate::files::create_unique(&dir, &format!("voice-{}.opus", unix_ms())).map_err(failed)?;
    std::fs::write(&path, &opus.bytes).map_err(failed)?;
    Ok(path)
}

/// Encodes the WAV `source` (a descriptor the caller opened, or a path opened as
/// callers' paths are: [`crate::intake::open_caller_path`]) as Ogg Opus and sends it to
/// `number`.
pub async fn send_wav(
    phone: &Handle,
    number: String,
    name: String,
    source: Source,
) -> Result<String, CoreError> {
    let (state_dir, config_path) = (phone.state_dir.clone(), phone.config_path.clone());
    // On the bounded work queue; never the daemon's own files, nothing but a regular
    // file, no waiting on a FIFO.
    let path = phone
        .work
        .run(move || -> Result<PathBuf, CoreError> {
            let (file, wav) = match source {
                Source::Fd(file) => (file, PathBuf::from(crate::intake::FD)),
                Source::Path(wav) => {
                    let file = crate::intake::open_caller_path(&wav, &state_dir, &config_path)
                        .map_err(|e| {
                            let kind = match e {
                                IntakeError::DaemonFile(_) | IntakeError::Proc(_) => {
                                    ErrorKind::PermissionDenied
                                }
                                _ => ErrorKind::InvalidArgument,
                            };
                            CoreError::new(kind, e.to_string())
                        })?;
                    (file, wav)
                }
            };
            let opus = ogg::encode_wav_file(file, &wav).map_err(|e| {
                CoreError::new(
                    ErrorKind::InvalidArgument,
                    format!("{}: {e}", wav.display()),
                )
            })?;
            save(&state_dir, &opus)
        })
        .await
        .map_err(busy)??;
    crate::files::send(phone, number, name, path, FileKind::Voice).await
}

/// Records `seconds` from the input device and sends the recording to `number`. A
/// recording that is not as long as asked (the device failed, stalled or dropped
/// samples; see [`Take`]) is not sent: the error says how much came. Device problems,
/// and a recording that works, are reported to the core for `Manager.AudioError`.
pub async fn record(
    phone: &Handle,
    number: String,
    name: String,
    seconds: u32,
) -> Result<String, CoreError> {
    if !(1..=MAX_SECONDS).contains(&seconds) {
        return Err(CoreError::new(
            ErrorKind::InvalidArgument,
            format!("record 1 to {MAX_SECONDS} seconds"),
        ));
    }
    let (audio, state_dir) = (phone.config().audio.clone(), phone.state_dir.clone());
    // One recording or playback at a time (`Busy` for more): each holds a thread for
    // as long as it lasts, up to five minutes.
    let recorded = phone
        .audio_work
        .run(move || {
            let opus = record_from_device(&audio, seconds)?;
            save(&state_dir, &opus).map_err(Recording::Other)
        })
        .await
        .map_err(busy)?;
    let path = match recorded {
        Ok(path) => {
            phone.audio(AudioSource::Recording, None);
            path
        }
        Err(Recording::Device(why)) => {
            phone.audio(AudioSource::Recording, Some(why.clone()));
            return Err(CoreError::failed(why));
        }
        Err(Recording::Other(e)) => return Err(e),
    };
    crate::files::send(phone, number, name, path, FileKind::Voice).await
}

/// Why a recording failed: its device (reported as an audio problem), or anything else.
enum Recording {
    Device(String),
    Other(CoreError),
}

/// Records exactly `seconds` from the input device, in real time, as Ogg Opus; fails as
/// soon as the device cannot deliver that (see [`Take`]).
fn record_from_device(audio: &Audio, seconds: u32) -> Result<OggOpus, Recording> {
    let device = |e: &dyn std::fmt::Display| Recording::Device(e.to_string());
    let cannot_open = |e: &dyn std::fmt::Display| {
        Recording::Device(format!(
            "cannot open the input device: {e}; nothing was sent"
        ))
    };
    let mut backend = backend::open(audio, Options::default()).map_err(|e| cannot_open(&e))?;
    let mut capture = backend.start_capture().map_err(|e| cannot_open(&e))?;
    let rate = capture.rate();
    let take = Take::new(rate, seconds);
    let mut encoder = OggOpusEncoder::new(rate).map_err(|e| Recording::Other(failed(e)))?;
    let lost_before = capture.counters().xrun_samples;
    let mut got = 0u64;
    let mut buf = vec![0f32; rate as usize / 10];
    let started = Instant::now();
    let deadline = started + Duration::from_secs(u64::from(seconds)) + take::GRACE;
    let mut last_data = started;
    let mut problem = None;
    while got < take.want() {
        problem = capture.problem();
        let now = Instant::now();
        if problem.is_some() || now >= deadline || now - last_data >= take::STALL {
            break;
        }
        let n = capture.read(&mut buf).min((take.want() - got) as usize);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        last_data = now;
        encoder
            .push(&buf[..n])
            .map_err(|e| Recording::Other(failed(e)))?;
        got += n as u64;
    }
    let lost = capture.counters().xrun_samples.saturating_sub(lost_before);
    take.verdict(got, lost, problem.as_deref())
        .map_err(|e| device(&e))?;
    encoder.finish().map_err(|e| Recording::Other(failed(e)))
}

/// Plays an Ogg Opus file through the output device, in real time; returns when done.
pub async fn play(phone: &Handle, path: PathBuf) -> Result<(), CoreError> {
    let audio = phone.config().audio.clone();
    phone
        .audio_work
        .run(move || -> Result<(), CoreError> {
            let bytes = std::fs::read(&path).map_err(|e| {
                CoreError::new(ErrorKind::NotFound, format!("{}: {e}", path.display()))
            })?;
            let (samples, _) = ogg::decode(&bytes).map_err(|e| {
                CoreError::new(
                    ErrorKind::InvalidArgument,
                    format!("not a playable voice message: {e}"),
                )
            })?;
            let mut backend = backend::open(&audio, Options::default()).map_err(failed)?;
            let mut playback = backend.start_playback().map_err(failed)?;
            let mut resample = FromNetwork::new(playback.rate()).map_err(failed)?;
            let mut frame = [0f32; FRAME];
            for chunk in samples.chunks(FRAME) {
                frame.fill(0.0);
                frame[..chunk.len()].copy_from_slice(chunk);
                let out = resample.process(&frame).map_err(failed)?;
                let mut written = 0;
                while written < out.len() {
                    written += playback.write(&out[written..]);
                    if written < out.len() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            // Let the device play what is queued before it is closed.
            let end = Instant::now() + Duration::from_secs(2);
            while playback.pending() > 0 && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
        .await
        .map_err(busy)?
}

fn busy(e: Busy) -> CoreError {
    CoreError::new(ErrorKind::Busy, e.to_string())
}

/// The length of a voice message file, in ms (0 if unreadable).
pub fn duration_ms(path: &Path) -> u64 {
    std::fs::read(path)
        .ok()
        .and_then(|b| ogg::duration_ms(&b).ok())
        .unwrap_or(0)
}
