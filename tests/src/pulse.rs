//! A private PulseAudio server per test phone, run as the test's own process and killed on
//! drop: a null sink `speaker` (what the phone plays; its monitor is recorded with `parec`)
//! and a microphone playing a sine of a chosen frequency (what the phone hears from its
//! user): `module-sine` into a second null sink, `mic`, whose monitor is the default
//! source. Not `module-sine-source`: it renders 2 s ahead, so a new stream gets a 2 s burst
//! and then nothing for 2 s, which no real microphone does. Also
//! the CPU time of a process, from `/proc`, for the figures the audio tests print.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The rate of the speaker, the microphone and the recordings.
pub const RATE: u32 = 48_000;

/// Whether the `pulseaudio` binary is installed (`scripts/deps.sh` installs it).
pub fn available() -> bool {
    Command::new("pulseaudio")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running private `pulseaudio`, its socket and config in `dir`.
pub struct PulseServer {
    child: Child,
    pub dir: PathBuf,
}

impl PulseServer {
    /// Starts a server in `dir` whose microphone plays a sine at `tone_hz`; waits until it
    /// answers `pactl info`.
    pub fn start(dir: &Path, tone_hz: u32) -> PulseServer {
        std::fs::create_dir_all(dir).expect("pulse dir");
        let socket = dir.join("native");
        let script = dir.join("server.pa");
        std::fs::write(
            &script,
            format!(
                "load-module module-native-protocol-unix auth-anonymous=1 socket={}\n\
                 load-module module-null-sink sink_name=speaker rate={RATE} channels=1\n\
                 load-module module-null-sink sink_name=mic rate={RATE} channels=1\n\
                 load-module module-sine sink=mic frequency={tone_hz}\n\
                 set-default-sink speaker\n\
                 set-default-source mic.monitor\n",
                socket.display()
            ),
        )
        .expect("server.pa");
        // ALSA's `default` through the pulse plugin, for the cpal (ALSA) path.
        std::fs::write(
            dir.join("asound.conf"),
            "</usr/share/alsa/alsa.conf>\npcm.!default { type pulse }\nctl.!default { type pulse }\n",
        )
        .expect("asound.conf");
        let log = std::fs::File::create(dir.join("pulseaudio.log")).expect("pulse log");
        // HOME and the XDG directories point into `dir` so that nothing of the user's (or
        // a system server's) state is read or written.
        let child = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--system=no",
                "--log-target=stderr",
                "-n",
                "-F",
            ])
            .arg(&script)
            .env("HOME", dir)
            .env("XDG_RUNTIME_DIR", dir)
            .env("XDG_CONFIG_HOME", dir)
            .env_remove("PULSE_SERVER")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn pulseaudio");
        let server = PulseServer {
            child,
            dir: dir.to_owned(),
        };
        let ready = crate::wait_for(Duration::from_secs(10), || {
            Command::new("pactl")
                .args(["--server", &server.address(), "info"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
                .then_some(())
        });
        assert!(
            ready.is_some(),
            "pulseaudio did not start; log:\n{}",
            std::fs::read_to_string(dir.join("pulseaudio.log")).unwrap_or_default()
        );
        server
    }

    /// `unix:<dir>/native`, as `PULSE_SERVER` takes it.
    pub fn address(&self) -> String {
        format!("unix:{}", self.dir.join("native").display())
    }

    /// The environment a client of this server needs: `PULSE_SERVER`, and an ALSA config
    /// whose `default` device is this server.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("PULSE_SERVER".into(), self.address()),
            (
                "ALSA_CONFIG_PATH".into(),
                self.dir.join("asound.conf").display().to_string(),
            ),
        ]
    }

    /// Starts recording what the speaker plays (its monitor) to `path`, raw 16-bit mono.
    pub fn record_speaker(&self, path: &Path) -> Recording {
        let out = std::fs::File::create(path).expect("recording file");
        let child = Command::new("parec")
            .args(["--server", &self.address(), "-d", "speaker.monitor"])
            .args([
                "--format=s16le",
                "--channels=1",
                "--raw",
                "--latency-msec=20",
            ])
            .arg(format!("--rate={RATE}"))
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn parec");
        Recording {
            child,
            path: path.to_owned(),
        }
    }
}

impl Drop for PulseServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `parec`; [`Recording::finish`] stops it and returns the samples.
pub struct Recording {
    child: Child,
    path: PathBuf,
}

impl Recording {
    /// Stops recording; the samples as −1.0..1.0 at [`RATE`].
    pub fn finish(mut self) -> Vec<f32> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.path).expect("read the recording");
        bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces:
    // state is field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// A process's resident memory (`VmRSS`), in KiB; 0 if it cannot be read.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Measures a process's CPU use over a stretch of wall time, as a share of one core.
pub struct CpuMeter {
    pid: u32,
    cpu: Duration,
    wall: Instant,
}

impl CpuMeter {
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            cpu: cpu_time(pid),
            wall: Instant::now(),
        }
    }

    /// Percent of one core since [`CpuMeter::start`].
    pub fn percent(&self) -> f64 {
        let cpu = cpu_time(self.pid).saturating_sub(self.cpu);
        100.0 * cpu.as_secs_f64() / self.wall.elapsed().as_secs_f64().max(1e-9)
    }
}
