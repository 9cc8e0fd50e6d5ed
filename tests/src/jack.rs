//! A real-time-paced stand-in for a plain ALSA sound card, for the `cpal` (ALSA) path on a
//! machine without one: a private JACK server on its `dummy` driver (timer-paced, no
//! hardware) per test phone, reached through ALSA's `jack` PCM plugin (libasound2-plugins)
//! as ALSA's `default` device, run as the test's own process and stopped on drop.
//!
//! The phone's microphone is the JACK capture port with its samples replaced by a sine of
//! a chosen frequency (ALSA's `file` plugin reading a raw file over it, so the pacing is
//! still JACK's); its speaker is a JACK port that `jack_rec` records.
//!
//! Like a `hw:` device, the plugin gives cpal one descriptor to poll that becomes ready
//! once a period's worth of frames is there (the plugin's process callback signals it
//! each JACK cycle while `avail >= avail_min`, and drains it below), and the frames move
//! at a clock's pace. Unlike one: the frames are copied by libjack's process thread,
//! which runs *inside the daemon* (two, one per stream: CPU a card would not cost; they
//! are the `audio-open-*` threads at real-time priority); the format is `f32` only, where
//! cards mostly take 16-bit; periods are whole JACK cycles; and the JACK server's shared
//! memory (~100 MiB) is mapped into the daemon and counted in its `VmRSS`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::pulse::RATE;

/// Whether `jackd` and `jack_rec` are installed (Debian: `jackd2`) and alsa-lib has the
/// `jack` PCM plugin (`libasound2-plugins`).
pub fn available() -> bool {
    ["jackd", "jack_rec", "jack_lsp"]
        .iter()
        .all(|b| crate::on_path(b))
        && jack_plugin_installed()
}

/// The plugin in `/usr/lib/alsa-lib` or a multiarch `/usr/lib/<triplet>/alsa-lib`.
fn jack_plugin_installed() -> bool {
    let plugin = "alsa-lib/libasound_module_pcm_jack.so";
    Path::new("/usr/lib").join(plugin).exists()
        || std::fs::read_dir("/usr/lib")
            .into_iter()
            .flat_map(|entries| entries.flatten())
            .any(|e| e.path().join(plugin).exists())
}

/// A running private JACK server on the `dummy` driver, its ALSA config in `dir`.
pub struct JackServer {
    jackd: Child,
    name: String,
    pub dir: PathBuf,
}

impl JackServer {
    /// Starts `jackd -d dummy` at 48 kHz with `period` frames per cycle, one capture and
    /// one playback port, and writes `dir/asound.conf` whose `default` PCM is a JACK
    /// client: capture replaced by a `tone_hz` sine, playback on a port named
    /// `speaker:out_000`. Waits until the server answers.
    pub fn start(dir: &Path, tone_hz: u32, period: u32) -> JackServer {
        std::fs::create_dir_all(dir).expect("jack dir");
        let tone = dir.join("tone.f32");
        let samples: Vec<u8> = (0..RATE * 60)
            .flat_map(|i| {
                (0.3 * (2.0 * std::f32::consts::PI * tone_hz as f32 * i as f32 / RATE as f32).sin())
                    .to_le_bytes()
            })
            .collect();
        std::fs::write(&tone, samples).expect("tone file");
        std::fs::write(
            dir.join("asound.conf"),
            format!(
                "</usr/share/alsa/alsa.conf>\n\
                 pcm.!default {{ type asym playback.pcm \"phone_speaker\" capture.pcm \"phone_mic\" }}\n\
                 pcm.phone_speaker {{ type jack name \"speaker\" playback_ports {{ 0 \"system:playback_1\" }} }}\n\
                 pcm.phone_mic {{\n  type file\n  slave.pcm {{ type jack name \"mic\" capture_ports {{ 0 \"system:capture_1\" }} }}\n  \
                 file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n}}\n",
                tone.display()
            ),
        )
        .expect("asound.conf");
        // JACK keeps a machine-wide table of 8 servers in shared memory and frees the entry
        // of one that died without stopping cleanly only when a server of the same name
        // starts. So the names come from a small pool, reused: the first whose server
        // starts (another test may hold one) is ours.
        for slot in 0..8 {
            let name = format!("phoned-test-{slot}");
            if !ports(&name).is_empty() {
                continue; // another test's
            }
            let log = std::fs::File::create(dir.join("jackd.log")).expect("jackd log");
            let jackd = Command::new("jackd")
                .args(["-n", &name, "-d", "dummy", "-r", &RATE.to_string()])
                .args(["-p", &period.to_string(), "-C", "1", "-P", "1"])
                .env("JACK_NO_AUDIO_RESERVATION", "1")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn jackd");
            let mut server = JackServer {
                jackd,
                name,
                dir: dir.to_owned(),
            };
            let up = crate::wait_for(Duration::from_secs(10), || {
                if server.ports().contains("system:capture_1") {
                    Some(true)
                } else {
                    server.jackd.try_wait().ok().flatten().map(|_| false)
                }
            });
            if up == Some(true) {
                return server;
            }
        }
        panic!(
            "jackd did not start; jackd.log:\n{}",
            std::fs::read_to_string(dir.join("jackd.log")).unwrap_or_default()
        );
    }

    /// `jack_lsp`: the server's ports, one a line (empty while it is not up).
    pub fn ports(&self) -> String {
        ports(&self.name)
    }

    /// The environment a client of this server needs: its name and the ALSA config.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("JACK_DEFAULT_SERVER".into(), self.name.clone()),
            (
                "ALSA_CONFIG_PATH".into(),
                self.dir.join("asound.conf").display().to_string(),
            ),
        ]
    }

    /// Starts recording the speaker port (once it exists, i.e. while the phone plays) to
    /// `dir/speaker.wav` for `seconds`.
    pub fn record_speaker(&self, seconds: u32) -> JackRecording {
        let port = "speaker:out_000";
        let there = crate::wait_for(Duration::from_secs(10), || {
            self.ports().lines().any(|l| l.trim() == port).then_some(())
        });
        assert!(there.is_some(), "no {port} port: {}", self.ports());
        let path = self.dir.join("speaker.wav");
        let child = Command::new("jack_rec")
            .args(["-f"])
            .arg(&path)
            .args(["-d", &seconds.to_string(), "-b", "16", port])
            .env("JACK_DEFAULT_SERVER", &self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jack_rec");
        JackRecording {
            child,
            path,
            seconds: u64::from(seconds),
        }
    }
}

/// The ports of the JACK server `name`, one a line; empty if none runs.
fn ports(name: &str) -> String {
    Command::new("jack_lsp")
        .args(["-s", name])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl Drop for JackServer {
    /// SIGTERM, so that jackd leaves JACK's server table (see [`JackServer::start`]);
    /// SIGKILL if it has not gone within 5 s.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid, not yet waited for.
        unsafe { libc::kill(self.jackd.id() as libc::pid_t, libc::SIGTERM) };
        let gone = crate::wait_for(Duration::from_secs(5), || {
            self.jackd.try_wait().ok().flatten()
        });
        if gone.is_none() {
            let _ = self.jackd.kill();
            let _ = self.jackd.wait();
        }
    }
}

/// A running `jack_rec`.
pub struct JackRecording {
    child: Child,
    path: PathBuf,
    seconds: u64,
}

impl JackRecording {
    /// Waits for the recording to end (its `seconds` are up; killed after 10 s more); the
    /// samples as −1.0..1.0 at [`RATE`]. `jack_rec` writes the WAV's length on a normal
    /// exit only, so it is not interrupted.
    pub fn finish(mut self) -> Vec<f32> {
        let ended = crate::wait_for(Duration::from_secs(self.seconds + 10), || {
            self.child.try_wait().ok().flatten()
        });
        if ended.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Vec::new();
        }
        if self.path.exists() {
            crate::wav::read(&self.path).0
        } else {
            Vec::new()
        }
    }
}

impl Drop for JackRecording {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
