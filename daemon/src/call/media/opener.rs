//! The thread that opens and closes a call's audio devices, so the media thread never
//! waits for a device: opening may take long (cpal's ALSA host, a server that does not
//! answer), closing joins the stream's device thread. The media thread asks with
//! [`Opener::open`] / [`Opener::close`] and picks the streams up with
//! [`Opener::try_opened`] between ticks. The thread owns the call's [`Backend`] (made on
//! its first open, again after it failed to be made), so a file backend appends to the
//! same output WAV across reopens.

use std::sync::mpsc::{self, Receiver, Sender};

use crate::audio::backend::{self, AudioError, Backend, Capture, Direction, Options, Playback};
use crate::config::Audio;

/// A started stream of either direction.
pub enum Stream {
    Capture(Capture),
    Playback(Playback),
}

enum Job {
    Open(Direction),
    Close(Stream),
}

/// The result of one [`Opener::open`].
pub struct Opened {
    pub direction: Direction,
    pub result: Result<Stream, AudioError>,
}

/// The opener thread's two ends; dropping it lets the thread end after its current job
/// (it is not joined: an open that hangs must not hang the call's end).
pub struct Opener {
    jobs: Sender<Job>,
    opened: Receiver<Opened>,
}

impl Opener {
    /// Starts the thread for `call`, opening devices as `audio` configures them.
    pub fn start(audio: Audio, call: u64) -> Result<Opener, std::io::Error> {
        let (jobs, job_rx) = mpsc::channel();
        let (opened_tx, opened) = mpsc::channel();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name(format!("audio-open-{call}"))
            .spawn(move || {
                let _in_call = span.enter();
                run(&audio, &job_rx, &opened_tx);
            })?;
        Ok(Opener { jobs, opened })
    }

    /// Asks for `direction`'s device; the answer comes from [`Opener::try_opened`].
    pub fn open(&self, direction: Direction) {
        let _ = self.jobs.send(Job::Open(direction));
    }

    /// Closes a stream off the media thread.
    pub fn close(&self, stream: Stream) {
        let _ = self.jobs.send(Job::Close(stream));
    }

    /// An open that has finished, if one has.
    pub fn try_opened(&self) -> Option<Opened> {
        self.opened.try_recv().ok()
    }
}

fn run(audio: &Audio, jobs: &Receiver<Job>, opened: &Sender<Opened>) {
    let mut backend: Option<Box<dyn Backend>> = None;
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Open(direction) => {
                let result = open(audio, &mut backend, direction);
                if opened.send(Opened { direction, result }).is_err() {
                    return; // The call is over; a stream just opened is dropped here.
                }
            }
            Job::Close(stream) => drop(stream),
        }
    }
}

fn open(
    audio: &Audio,
    backend: &mut Option<Box<dyn Backend>>,
    direction: Direction,
) -> Result<Stream, AudioError> {
    let b = match backend {
        Some(b) => b,
        None => backend.insert(backend::open(audio, Options::default())?),
    };
    Ok(match direction {
        Direction::Capture => Stream::Capture(b.start_capture()?),
        Direction::Playback => Stream::Playback(b.start_playback()?),
    })
}
