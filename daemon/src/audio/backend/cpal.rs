//! The `cpal` backend: real sound cards through cpal's default host (ALSA on Linux).
//!
//! Devices are chosen by name from the config (`"default"` or unset: the host default).
//! Whatever the device offers is accepted — any rate, channel count or sample format — with
//! 48 kHz mono or stereo preferred, since that needs no resampling; the callbacks downmix,
//! upmix and convert on the fly into the mono `f32` ring.
//!
//! cpal 0.18 specifics: streams are built paused (we call `play()`), `build_*_stream` takes
//! a timeout, devices have `id()`/`description()` instead of `name()`.

use std::sync::Arc;
use std::time::Duration;

use ::cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use ::cpal::{
    BufferSize, Device, ErrorKind, FromSample, Host, SampleFormat, SizedSample, StreamConfig,
    SupportedBufferSize, SupportedStreamConfig, SupportedStreamConfigRange,
};
use rtrb::{Consumer, Producer};

use super::convert::{pop_upmixed, push_downmixed};
use super::counters::StreamCounters;
use super::error::{AudioError, Direction};
use super::{Backend, Capture, Options, Playback, Running};

/// How long cpal may take to open a stream (not every host honours it).
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// The rate the rest of the pipeline runs at; a device running at it needs no resampling.
const PREFERRED_RATE: u32 = 48_000;

/// The device period asked for, where the device says which it takes: how often cpal's
/// worker wakes to move a block, and half the device buffer (cpal keeps two periods).
const PREFERRED_PERIOD_MS: u32 = 10;

/// Sound cards via cpal. `input`/`output` name devices by their id (`hw:CARD=…,DEV=0`,
/// also with the host prefix, `alsa:…`) or their description; `None` or `"default"` is
/// the host's default device.
pub struct CpalBackend {
    host: Host,
    input: Option<String>,
    output: Option<String>,
    options: Options,
}

impl CpalBackend {
    /// Uses cpal's default host. Nothing is opened until a stream is started.
    pub fn new(input: Option<String>, output: Option<String>, options: Options) -> CpalBackend {
        CpalBackend {
            host: ::cpal::default_host(),
            input,
            output,
            options,
        }
    }

    /// The host's devices for `direction`: id, description (empty when it is the id) and
    /// whether it is the host's default. What `input`/`output` accept.
    pub fn devices(&self, direction: Direction) -> Result<Vec<(String, String, bool)>, AudioError> {
        let (devices, default): (Vec<Device>, _) = match direction {
            Direction::Capture => (
                self.host
                    .input_devices()
                    .map_err(AudioError::Enumerate)?
                    .collect(),
                self.host.default_input_device(),
            ),
            Direction::Playback => (
                self.host
                    .output_devices()
                    .map_err(AudioError::Enumerate)?
                    .collect(),
                self.host.default_output_device(),
            ),
        };
        let default = default.map(|d| device_id(&d));
        Ok(devices
            .iter()
            .map(|d| {
                let id = device_id(d);
                let description = d
                    .description()
                    .map(|x| x.name().to_owned())
                    .ok()
                    .filter(|x| *x != id)
                    .unwrap_or_default();
                let is_default = default.as_deref() == Some(id.as_str());
                (id, description, is_default)
            })
            .collect())
    }

    fn device(&self, direction: Direction) -> Result<Device, AudioError> {
        let name = match direction {
            Direction::Capture => self.input.as_deref(),
            Direction::Playback => self.output.as_deref(),
        };
        match name {
            None | Some("default") => match direction {
                Direction::Capture => self.host.default_input_device(),
                Direction::Playback => self.host.default_output_device(),
            }
            .ok_or(AudioError::NoDefaultDevice { direction }),
            Some(name) => {
                let mut seen = Vec::new();
                for device in self.host.devices().map_err(AudioError::Enumerate)? {
                    if matches_name(&device, name) {
                        return Ok(device);
                    }
                    seen.push(label(&device));
                }
                Err(AudioError::DeviceNotFound {
                    direction,
                    name: name.to_owned(),
                    available: if seen.is_empty() {
                        "none".to_owned()
                    } else {
                        seen.join(", ")
                    },
                })
            }
        }
    }
}

impl Backend for CpalBackend {
    fn kind(&self) -> &'static str {
        "cpal"
    }

    fn start_capture(&mut self) -> Result<Capture, AudioError> {
        quiet_alsa(|| self.capture())
    }

    fn start_playback(&mut self) -> Result<Playback, AudioError> {
        quiet_alsa(|| self.playback())
    }
}

impl CpalBackend {
    fn capture(&mut self) -> Result<Capture, AudioError> {
        let device = self.device(Direction::Capture)?;
        let name = device_id(&device);
        let supported = usable_config(&device, &name, Direction::Capture)?;
        let rate = supported.sample_rate();
        let counters = Arc::new(StreamCounters::default());
        let (stream, consumer) = open_with_period(&supported, |config| {
            let (producer, consumer) = rtrb::RingBuffer::new(self.options.ring_capacity(rate));
            let format = supported.sample_format();
            build_capture(&device, format, config, producer, counters.clone())
                .map(|stream| (stream, consumer))
        })
        .map_err(|source| device_error(&name, "open capture stream", source))?;
        stream
            .play()
            .map_err(|source| device_error(&name, "start capture stream", source))?;
        tracing::info!(device = %name, rate, channels = supported.channels(),
            format = %supported.sample_format(), period = stream.buffer_size().unwrap_or(0),
            "audio capture started");
        Ok(Capture::new(
            Running::Cpal { _stream: stream },
            rate,
            consumer,
            counters,
        ))
    }

    fn playback(&mut self) -> Result<Playback, AudioError> {
        let device = self.device(Direction::Playback)?;
        let name = device_id(&device);
        let supported = usable_config(&device, &name, Direction::Playback)?;
        let rate = supported.sample_rate();
        let counters = Arc::new(StreamCounters::default());
        let (stream, producer) = open_with_period(&supported, |config| {
            let (producer, consumer) = rtrb::RingBuffer::new(self.options.ring_capacity(rate));
            let format = supported.sample_format();
            build_playback(&device, format, config, consumer, counters.clone())
                .map(|stream| (stream, producer))
        })
        .map_err(|source| device_error(&name, "open playback stream", source))?;
        stream
            .play()
            .map_err(|source| device_error(&name, "start playback stream", source))?;
        tracing::info!(device = %name, rate, channels = supported.channels(),
            format = %supported.sample_format(), period = stream.buffer_size().unwrap_or(0),
            "audio playback started");
        Ok(Playback::new(
            Running::Cpal { _stream: stream },
            rate,
            producer,
            counters,
        ))
    }
}

/// Runs `open` with alsa-lib's error printing off on this thread. alsa-lib writes why an
/// open failed to stderr itself, several lines each time (`ALSA lib pcm.c:…`); a call
/// retrying a missing device every second would fill the log with them, and the error
/// `open` returns already says what failed.
fn quiet_alsa<T>(open: impl FnOnce() -> T) -> T {
    // SAFETY: installs (then removes) a thread-local handler that ignores its arguments;
    // alsa-lib calls it only on this thread, and only while it is installed.
    unsafe { alsa_sys::snd_lib_error_set_local(Some(ignore_alsa_error)) };
    let result = open();
    // SAFETY: as above; `None` restores alsa-lib's default for this thread.
    unsafe { alsa_sys::snd_lib_error_set_local(None) };
    result
}

/// An alsa-lib error handler that drops the message.
unsafe extern "C" fn ignore_alsa_error(
    _file: *const std::ffi::c_char,
    _line: std::ffi::c_int,
    _func: *const std::ffi::c_char,
    _err: std::ffi::c_int,
    _fmt: *const std::ffi::c_char,
    _args: *mut alsa_sys::__va_list_tag,
) {
}

/// The device's stable id string, or its description if it has none (for messages).
fn device_id(device: &Device) -> String {
    match device.id() {
        Ok(id) => id.id().to_owned(),
        Err(_) => device
            .description()
            .map(|d| d.name().to_owned())
            .unwrap_or_else(|_| "?".to_owned()),
    }
}

fn label(device: &Device) -> String {
    let id = device_id(device);
    match device.description() {
        Ok(d) if d.name() != id => format!("{id} ({})", d.name()),
        _ => id,
    }
}

fn matches_name(device: &Device, name: &str) -> bool {
    let by_id = device
        .id()
        .is_ok_and(|id| id.id() == name || id.to_string() == name);
    by_id || device.description().is_ok_and(|d| d.name() == name)
}

fn device_error(device: &str, action: &'static str, source: ::cpal::Error) -> AudioError {
    AudioError::Device {
        device: device.to_owned(),
        action,
        source,
    }
}

/// Lists what the device offers for `direction` and picks with [`choose_config`].
fn usable_config(
    device: &Device,
    name: &str,
    direction: Direction,
) -> Result<SupportedStreamConfig, AudioError> {
    // A device that cannot list its configurations may still have a usable default.
    let (ranges, default) = match direction {
        Direction::Capture => (
            device.supported_input_configs().map(Iterator::collect),
            device.default_input_config(),
        ),
        Direction::Playback => (
            device.supported_output_configs().map(Iterator::collect),
            device.default_output_config(),
        ),
    };
    let ranges: Vec<SupportedStreamConfigRange> = match ranges {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::DeviceNotAvailable => {
            return Err(device_error(name, "list configurations", e));
        }
        Err(_) => Vec::new(),
    };
    choose_config(&ranges, default.ok()).ok_or_else(|| AudioError::NoUsableConfig {
        device: name.to_owned(),
        direction,
    })
}

/// Preference among sample formats (lower is better); `None` for formats we cannot convert
/// (DSD and any format a later cpal adds).
///
/// 16-bit integer comes first: it is what nearly every codec and ALSA's `hw`, `dmix` and
/// `dsnoop` devices run natively, and is plenty for voice (Opus takes 16-bit input). Asking
/// for `f32` instead makes ALSA insert a `plug` float conversion, and over the `file` plugin
/// that conversion was seen to consume the capture input twice as fast as it delivers it
/// (alsa-lib 1.2.8) — native formats keep such layers out of the path.
fn format_rank(format: SampleFormat) -> Option<u8> {
    Some(match format {
        SampleFormat::I16 => 0,
        SampleFormat::F32 => 1,
        SampleFormat::I32 => 2,
        SampleFormat::I24 => 3,
        SampleFormat::F64 => 4,
        SampleFormat::U16 => 5,
        SampleFormat::U8 => 6,
        SampleFormat::I8 => 7,
        SampleFormat::U24 => 8,
        SampleFormat::U32 => 9,
        SampleFormat::I64 => 10,
        SampleFormat::U64 => 11,
        _ => return None,
    })
}

/// Picks the stream configuration to open, from what a device offers:
/// 1. 48 kHz with one or two channels (mono first), best sample format first (16-bit
///    integer, then `f32`, then the rest; see `format_rank`);
/// 2. else the device's default configuration, if its format is usable;
/// 3. else any usable range, at the rate closest to 48 kHz.
pub fn choose_config(
    ranges: &[SupportedStreamConfigRange],
    default: Option<SupportedStreamConfig>,
) -> Option<SupportedStreamConfig> {
    let usable = || {
        ranges
            .iter()
            .filter(|r| r.channels() > 0 && format_rank(r.sample_format()).is_some())
    };
    let key = |r: &&SupportedStreamConfigRange| (r.channels(), format_rank(r.sample_format()));
    if let Some(best) = usable()
        .filter(|r| r.channels() <= 2 && r.contains_rate(PREFERRED_RATE))
        .min_by_key(key)
    {
        return best.try_with_sample_rate(PREFERRED_RATE);
    }
    if let Some(d) = default
        .filter(|d| d.channels() > 0 && d.sample_rate() > 0)
        .filter(|d| format_rank(d.sample_format()).is_some())
    {
        return Some(d);
    }
    let best = usable().min_by_key(key)?;
    let rate = PREFERRED_RATE.clamp(best.min_sample_rate(), best.max_sample_rate());
    best.try_with_sample_rate(rate)
        .filter(|c| c.sample_rate() > 0)
}

/// The stream configuration to open `supported` with: its channels and rate, and a period
/// of about [`PREFERRED_PERIOD_MS`] where the device gives the range of periods it takes
/// (clamped into it), else the device's default.
///
/// cpal's default leaves the period to alsa-lib, which takes the largest buffer the device
/// allows and then the smallest period that divides it within the device's period count
/// (`snd_pcm_hw_params_choose`): 5–11 ms on a Raspberry Pi's bcm2835 output or a USB
/// headset, but 64 cycles (0.64 s at 480-frame cycles) on ALSA's `jack` plugin and 1/32 of
/// its largest buffer on HD-Audio. Periods that long make a call unusable: the capture
/// ring holds 250 ms, so each period overran it, and playback came in 0.64 s bursts.
pub fn stream_config(supported: &SupportedStreamConfig) -> StreamConfig {
    let mut config = supported.config();
    if let SupportedBufferSize::Range { min, max } = *supported.buffer_size() {
        let want = supported.sample_rate() * PREFERRED_PERIOD_MS / 1000;
        if 0 < min && min <= max {
            config.buffer_size = BufferSize::Fixed(want.clamp(min, max));
        }
    }
    config
}

/// Opens a stream with [`stream_config`], or with the device's default period if the
/// device refuses that one (its period range is listed for the format and channels, not
/// the rate, so the chosen period may not fit at the rate after all). Only a refused
/// configuration falls back: a device that is busy or gone fails the open, and the call
/// tries it again a second later with the period asked for, not with a default that may be
/// far longer (0.64 s on ALSA's `jack` plugin).
fn open_with_period<T>(
    supported: &SupportedStreamConfig,
    mut open: impl FnMut(StreamConfig) -> Result<T, ::cpal::Error>,
) -> Result<T, ::cpal::Error> {
    let config = stream_config(supported);
    if config.buffer_size == BufferSize::Default {
        return open(config);
    }
    open(config).or_else(|e| {
        if e.kind() != ErrorKind::UnsupportedConfig {
            return Err(e);
        }
        tracing::info!(error = %e, period = ?config.buffer_size,
            "the device refused the period; opening with its default");
        open(supported.config())
    })
}

/// Builds the input stream for `format`, monomorphised per format so the callback converts
/// without branching per sample.
fn build_capture(
    device: &Device,
    format: SampleFormat,
    config: StreamConfig,
    ring: Producer<f32>,
    counters: Arc<StreamCounters>,
) -> Result<::cpal::Stream, ::cpal::Error> {
    use ::cpal::{I24, U24};
    match format {
        SampleFormat::F32 => capture_stream::<f32>(device, config, ring, counters),
        SampleFormat::I16 => capture_stream::<i16>(device, config, ring, counters),
        SampleFormat::I32 => capture_stream::<i32>(device, config, ring, counters),
        SampleFormat::I24 => capture_stream::<I24>(device, config, ring, counters),
        SampleFormat::F64 => capture_stream::<f64>(device, config, ring, counters),
        SampleFormat::U16 => capture_stream::<u16>(device, config, ring, counters),
        SampleFormat::U8 => capture_stream::<u8>(device, config, ring, counters),
        SampleFormat::I8 => capture_stream::<i8>(device, config, ring, counters),
        SampleFormat::U24 => capture_stream::<U24>(device, config, ring, counters),
        SampleFormat::U32 => capture_stream::<u32>(device, config, ring, counters),
        SampleFormat::I64 => capture_stream::<i64>(device, config, ring, counters),
        SampleFormat::U64 => capture_stream::<u64>(device, config, ring, counters),
        other => Err(unsupported(other)),
    }
}

/// Builds the output stream for `format`; see [`build_capture`].
fn build_playback(
    device: &Device,
    format: SampleFormat,
    config: StreamConfig,
    ring: Consumer<f32>,
    counters: Arc<StreamCounters>,
) -> Result<::cpal::Stream, ::cpal::Error> {
    use ::cpal::{I24, U24};
    match format {
        SampleFormat::F32 => playback_stream::<f32>(device, config, ring, counters),
        SampleFormat::I16 => playback_stream::<i16>(device, config, ring, counters),
        SampleFormat::I32 => playback_stream::<i32>(device, config, ring, counters),
        SampleFormat::I24 => playback_stream::<I24>(device, config, ring, counters),
        SampleFormat::F64 => playback_stream::<f64>(device, config, ring, counters),
        SampleFormat::U16 => playback_stream::<u16>(device, config, ring, counters),
        SampleFormat::U8 => playback_stream::<u8>(device, config, ring, counters),
        SampleFormat::I8 => playback_stream::<i8>(device, config, ring, counters),
        SampleFormat::U24 => playback_stream::<U24>(device, config, ring, counters),
        SampleFormat::U32 => playback_stream::<u32>(device, config, ring, counters),
        SampleFormat::I64 => playback_stream::<i64>(device, config, ring, counters),
        SampleFormat::U64 => playback_stream::<u64>(device, config, ring, counters),
        other => Err(unsupported(other)),
    }
}

fn unsupported(format: SampleFormat) -> ::cpal::Error {
    ::cpal::Error::with_message(
        ErrorKind::UnsupportedConfig,
        format!("sample format {format} is not supported"),
    )
}

fn capture_stream<T>(
    device: &Device,
    config: StreamConfig,
    mut ring: Producer<f32>,
    counters: Arc<StreamCounters>,
) -> Result<::cpal::Stream, ::cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels).max(1);
    let errors = counters.clone();
    let mut logged = false;
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &::cpal::InputCallbackInfo| {
            // Real-time: conversion into the ring and atomic counters only.
            let frames = data.len() / channels;
            let pushed = push_downmixed(&mut ring, data, channels);
            counters.add_frames(frames);
            if pushed < frames {
                counters.add_xrun(frames - pushed);
            }
        },
        move |e| stream_error(&errors, &mut logged, Direction::Capture, e),
        Some(OPEN_TIMEOUT),
    )
}

fn playback_stream<T>(
    device: &Device,
    config: StreamConfig,
    mut ring: Consumer<f32>,
    counters: Arc<StreamCounters>,
) -> Result<::cpal::Stream, ::cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels).max(1);
    let errors = counters.clone();
    let mut logged = false;
    // Underruns count only once audio has started: silence before the first sample is
    // expected, not a glitch.
    let mut primed = false;
    device.build_output_stream::<T, _, _>(
        config,
        move |data: &mut [T], _: &::cpal::OutputCallbackInfo| {
            let frames = data.len() / channels;
            let taken = pop_upmixed(&mut ring, data, channels);
            counters.add_frames(frames);
            primed |= taken > 0;
            if primed && taken < frames {
                counters.add_xrun(frames - taken);
            }
        },
        move |e| stream_error(&errors, &mut logged, Direction::Playback, e),
        Some(OPEN_TIMEOUT),
    )
}

/// cpal's error callback (on the stream's worker thread, outside the data callback):
/// counts every error. A device that is gone sets the stream's problem, which the call's
/// media thread reports to the user (one log line) and acts on. Of the other errors only
/// the stream's first is logged: cpal's ALSA worker reports an error that persists on
/// every pass of its loop, and a line each time would flood the log. Device xruns are
/// frequent and already visible in the counters.
fn stream_error(
    counters: &StreamCounters,
    logged: &mut bool,
    direction: Direction,
    e: ::cpal::Error,
) {
    counters.add_device_error();
    match e.kind() {
        ErrorKind::Xrun => {}
        // The worker stops after these: the stream will move no more audio.
        ErrorKind::DeviceNotAvailable | ErrorKind::StreamInvalidated => {
            counters.set_problem(format!("the {direction} device is gone: {e}"));
        }
        kind if !*logged => {
            *logged = true;
            tracing::warn!(%direction, error = %e, ?kind,
                "audio device error (further ones on this stream are only counted)");
        }
        kind => tracing::debug!(%direction, error = %e, ?kind, "audio device error"),
    }
}

#[cfg(test)]
mod tests {
    use ::cpal::SupportedBufferSize;

    use super::*;

    fn range(ch: u16, min: u32, max: u32, f: SampleFormat) -> SupportedStreamConfigRange {
        SupportedStreamConfigRange::new(ch, min, max, SupportedBufferSize::Unknown, f)
    }

    #[test]
    fn prefers_48k_mono_then_the_better_format() {
        let ranges = [
            range(2, 8_000, 192_000, SampleFormat::I16),
            range(1, 8_000, 192_000, SampleFormat::F32),
            range(1, 8_000, 192_000, SampleFormat::I16),
            range(1, 8_000, 192_000, SampleFormat::U8),
            range(4, 48_000, 48_000, SampleFormat::F32),
        ];
        let c = choose_config(&ranges, None).expect("a config");
        assert_eq!(
            (c.channels(), c.sample_rate(), c.sample_format()),
            (1, 48_000, SampleFormat::I16)
        );
    }

    #[test]
    fn takes_stereo_at_48k_over_the_default_at_another_rate() {
        let ranges = [
            range(2, 48_000, 48_000, SampleFormat::I16),
            range(1, 44_100, 44_100, SampleFormat::I16),
        ];
        let default = range(1, 44_100, 44_100, SampleFormat::I16).try_with_sample_rate(44_100);
        let c = choose_config(&ranges, default).expect("a config");
        assert_eq!((c.channels(), c.sample_rate()), (2, 48_000));
    }

    #[test]
    fn without_48k_falls_back_to_the_device_default() {
        let ranges = [
            range(2, 44_100, 44_100, SampleFormat::I32),
            range(6, 48_000, 48_000, SampleFormat::F32),
        ];
        let default = ranges[0].try_with_sample_rate(44_100);
        let c = choose_config(&ranges, default).expect("a config");
        assert_eq!(
            (c.channels(), c.sample_rate(), c.sample_format()),
            (2, 44_100, SampleFormat::I32)
        );
    }

    #[test]
    fn without_a_default_takes_the_rate_closest_to_48k() {
        let ranges = [
            range(6, 8_000, 32_000, SampleFormat::F32),
            range(1, 8_000, 16_000, SampleFormat::DsdU8),
        ];
        let c = choose_config(&ranges, None).expect("a config");
        assert_eq!((c.channels(), c.sample_rate()), (6, 32_000));
    }

    fn supported(buffer_size: SupportedBufferSize) -> SupportedStreamConfig {
        SupportedStreamConfig::new(1, 48_000, buffer_size, SampleFormat::I16)
    }

    #[test]
    fn asks_for_a_10_ms_period_where_the_device_takes_one() {
        let config = stream_config(&supported(SupportedBufferSize::Range {
            min: 64,
            max: 16_384,
        }));
        assert_eq!(config.buffer_size, BufferSize::Fixed(480));
        assert_eq!((config.channels, config.sample_rate), (1, 48_000));
    }

    #[test]
    fn a_period_outside_the_device_range_is_clamped_into_it() {
        // bcm2835: periods of at least 1 KiB, 512 frames of 16-bit mono.
        let small = SupportedBufferSize::Range {
            min: 512,
            max: 32_768,
        };
        assert_eq!(
            stream_config(&supported(small)).buffer_size,
            BufferSize::Fixed(512)
        );
        let large = SupportedBufferSize::Range { min: 64, max: 256 };
        assert_eq!(
            stream_config(&supported(large)).buffer_size,
            BufferSize::Fixed(256)
        );
    }

    #[test]
    fn without_a_period_range_the_device_default_is_kept() {
        for unknown in [
            SupportedBufferSize::Unknown,
            SupportedBufferSize::Range { min: 0, max: 0 },
            SupportedBufferSize::Range { min: 900, max: 100 },
        ] {
            let config = stream_config(&supported(unknown));
            assert_eq!(config.buffer_size, BufferSize::Default);
        }
    }

    #[test]
    fn a_refused_period_falls_back_to_the_default() {
        let s = supported(SupportedBufferSize::Range {
            min: 64,
            max: 16_384,
        });
        let mut tried = Vec::new();
        let opened = open_with_period(&s, |config| {
            tried.push(config.buffer_size);
            match config.buffer_size {
                BufferSize::Fixed(_) => Err(::cpal::Error::with_message(
                    ErrorKind::UnsupportedConfig,
                    "no such period",
                )),
                BufferSize::Default => Ok("opened"),
            }
        });
        assert_eq!(opened.ok(), Some("opened"));
        assert_eq!(tried, [BufferSize::Fixed(480), BufferSize::Default]);
    }

    #[test]
    fn a_device_that_is_busy_or_gone_is_not_opened_with_the_default_period_instead() {
        let s = supported(SupportedBufferSize::Range {
            min: 64,
            max: 16_384,
        });
        for kind in [
            ErrorKind::DeviceNotAvailable,
            ErrorKind::DeviceBusy,
            ErrorKind::BackendError,
        ] {
            let mut tried = Vec::new();
            let opened: Result<(), _> = open_with_period(&s, |config| {
                tried.push(config.buffer_size);
                Err(::cpal::Error::from(kind))
            });
            assert_eq!(opened.map_err(|e| e.kind()), Err(kind));
            assert_eq!(tried, [BufferSize::Fixed(480)], "{kind:?}");
        }
    }

    #[test]
    fn nothing_usable_is_none() {
        let ranges = [range(1, 48_000, 48_000, SampleFormat::DsdU32)];
        let default = ranges[0].try_with_sample_rate(48_000);
        assert!(choose_config(&ranges, default).is_none());
        assert!(choose_config(&[], None).is_none());
    }
}
