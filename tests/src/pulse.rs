//! A private PulseAudio server per test phone, run as the test's own process and killed on
//! drop (or the same with PipeWire): a null sink `speaker` (what the phone plays; its monitor is recorded with `parec`)
//! and a microphone playing a sine of a chosen frequency (what the phone hears from its
//! user): `module-sine` into a second null sink, `mic`, whose monitor is the default
//! source. Not `module-sine-source`: it renders 2 s ahead, so a new stream gets a 2 s burst
//! and then nothing for 2 s, which no real microphone does. Devices can be added and
//! removed mid-test (`load_module`/`unload_module`: a headset plugged and unplugged), and the
//! server frozen (`freeze`: SIGSTOP) or killed. Also
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

/// Whether PipeWire with WirePlumber and pipewire-pulse is installed.
pub fn pipewire_available() -> bool {
    [
        "pipewire",
        "wireplumber",
        "pipewire-pulse",
        "dbus-daemon",
        "pacat",
    ]
    .iter()
    .all(|b| crate::on_path(b))
}

/// A running private PulseAudio-protocol server (`pulseaudio`, or PipeWire with WirePlumber
/// and pipewire-pulse), its sockets and config in `dir`.
pub struct PulseServer {
    /// Every process of the server, stopped in reverse order on drop.
    children: Vec<Child>,
    socket: PathBuf,
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
        write_alsa_config(dir);
        let log = std::fs::File::create(dir.join("pulseaudio.log")).expect("pulse log");
        // HOME and the XDG directories point into `dir` so that nothing of the user's (or
        // a system server's) state is read or written.
        let child = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--system=no",
                // Real-time scheduling where allowed (CI runs as root): a timer-driven null
                // sink on a loaded machine otherwise falls behind the wall clock.
                "--realtime=yes",
                "--high-priority=yes",
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
            children: vec![child],
            socket,
            dir: dir.to_owned(),
        };
        server.wait_ready("pulseaudio.log");
        server
    }

    /// Starts PipeWire in `dir` the way a desktop runs it — `pipewire`, `wireplumber` (on
    /// a private D-Bus session bus, which it needs) and `pipewire-pulse` — with the same
    /// devices as [`PulseServer::start`]. PipeWire's pulse layer has no `module-sine`, so
    /// `pacat` plays a generated sine into the `mic` null sink.
    pub fn start_pipewire(dir: &Path, tone_hz: u32) -> PulseServer {
        std::fs::create_dir_all(dir).expect("pipewire dir");
        write_alsa_config(dir);
        let bus = format!("unix:path={}", dir.join("bus").display());
        let spawn = |program: &str, args: &[String], log: &str| {
            Command::new(program)
                .args(args)
                .env("HOME", dir)
                .env("XDG_RUNTIME_DIR", dir)
                .env("XDG_CONFIG_HOME", dir.join("config"))
                .env("XDG_STATE_HOME", dir.join("state"))
                .env("DBUS_SESSION_BUS_ADDRESS", &bus)
                .env("DISABLE_RTKIT", "1")
                .env_remove("PULSE_SERVER")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join(log)).expect("log file"))
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {program}: {e}"))
        };
        let mut server = PulseServer {
            children: Vec::new(),
            socket: dir.join("pulse/native"),
            dir: dir.to_owned(),
        };
        server.children.push(spawn(
            "dbus-daemon",
            &[
                "--session".into(),
                format!("--address={bus}"),
                "--nofork".into(),
                "--nopidfile".into(),
            ],
            "dbus.log",
        ));
        let bus_up = crate::wait_for(Duration::from_secs(10), || {
            dir.join("bus").exists().then_some(())
        });
        assert!(bus_up.is_some(), "dbus-daemon did not start");
        server.children.push(spawn("pipewire", &[], "pipewire.log"));
        // WirePlumber gives up if PipeWire's socket is not there yet (seen on a loaded
        // machine: no session manager, so no default devices ever), so wait for it.
        let pipewire_up = crate::wait_for(Duration::from_secs(10), || {
            dir.join("pipewire-0").exists().then_some(())
        });
        assert!(pipewire_up.is_some(), "pipewire did not start");
        server
            .children
            .push(spawn("wireplumber", &[], "wireplumber.log"));
        server
            .children
            .push(spawn("pipewire-pulse", &[], "pipewire-pulse.log"));
        server.wait_ready("pipewire-pulse.log");
        for args in [
            "load-module module-null-sink sink_name=speaker rate=48000 channels=1",
            "load-module module-null-sink sink_name=mic rate=48000 channels=1",
        ] {
            server.pactl(args);
        }
        // WirePlumber learns of the new sinks a moment later; until then there is no
        // such entity to make the default.
        let defaults = crate::wait_for(Duration::from_secs(30), || {
            (server.try_pactl("set-default-sink speaker")
                && server.try_pactl("set-default-source mic.monitor"))
            .then_some(())
        });
        assert!(
            defaults.is_some(),
            "PipeWire never made the null sinks defaults; wireplumber.log:\n{}",
            std::fs::read_to_string(dir.join("wireplumber.log")).unwrap_or_default()
        );
        let sine = dir.join("sine.raw");
        let samples = (0..RATE * 60).flat_map(|i| {
            let x =
                0.5 * (2.0 * std::f32::consts::PI * tone_hz as f32 * i as f32 / RATE as f32).sin();
            ((x * 32767.0) as i16).to_le_bytes()
        });
        std::fs::write(&sine, samples.collect::<Vec<u8>>()).expect("sine file");
        // A generous buffer: this is the test's own process at normal priority, and with
        // 20 ms it ran dry whenever the loaded machine stalled it, so the phone's
        // microphone went silent (seen: silence at the far speaker with nothing lost or
        // concealed). Its latency is not the phone's: it only has to keep the sine going.
        let feed = Command::new("pacat")
            .args(["--server", &server.address(), "--playback", "-d", "mic"])
            .args([
                "--raw",
                "--format=s16le",
                "--channels=1",
                "--latency-msec=500",
            ])
            .arg(format!("--rate={RATE}"))
            .arg(&sine)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pacat");
        server.children.push(feed);
        server
    }

    fn try_pactl(&self, args: &str) -> bool {
        Command::new("pactl")
            .args(["--server", &self.address()])
            .args(args.split_whitespace())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn pactl(&self, args: &str) {
        assert!(self.try_pactl(args), "pactl {args} failed");
    }

    /// `pactl load-module MODULE ARGS…` (each argument one word, spaces and all: e.g.
    /// `sink_properties=device.description="USB\ Headset"`); returns the module's index.
    pub fn load_module(&self, module: &str, args: &[&str]) -> String {
        let out = Command::new("pactl")
            .args(["--server", &self.address(), "load-module", module])
            .args(args)
            .output()
            .expect("run pactl");
        assert!(
            out.status.success(),
            "pactl load-module {module} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `pactl unload-module INDEX`: the device goes, as if unplugged.
    pub fn unload_module(&self, index: &str) {
        self.pactl(&format!("unload-module {index}"));
    }

    fn wait_ready(&self, log: &str) {
        let ready = crate::wait_for(Duration::from_secs(10), || {
            self.try_pactl("info").then_some(())
        });
        assert!(
            ready.is_some(),
            "the sound server did not start; {log}:\n{}",
            std::fs::read_to_string(self.dir.join(log)).unwrap_or_default()
        );
    }

    /// Kills the server's processes now (a server that dies mid-call).
    pub fn kill(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) every process of the server: a server that
    /// hangs with its socket open.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        for child in &self.children {
            // SAFETY: kill(2) on our own child's pid, which it cannot outlive (not yet waited
            // for), with a valid signal number.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        }
    }

    /// `unix:<socket>`, as `PULSE_SERVER` takes it.
    pub fn address(&self) -> String {
        format!("unix:{}", self.socket.display())
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
        self.record("speaker.monitor", path)
    }

    /// Starts recording the source `source` to `path`, raw 16-bit mono.
    pub fn record(&self, source: &str, path: &Path) -> Recording {
        let out = std::fs::File::create(path).expect("recording file");
        let child = Command::new("parec")
            .args(["--server", &self.address(), "-d", source])
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
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An ALSA config whose `default` is the server through the pulse plugin, for the cpal
/// (ALSA) path: `ALSA_CONFIG_PATH=<dir>/asound.conf`.
fn write_alsa_config(dir: &Path) {
    std::fs::write(
        dir.join("asound.conf"),
        "</usr/share/alsa/alsa.conf>\npcm.!default { type pulse }\nctl.!default { type pulse }\n",
    )
    .expect("asound.conf");
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
        self.so_far()
    }

    /// The samples recorded so far, still recording.
    pub fn so_far(&self) -> Vec<f32> {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
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
    crate::threads::user_and_system(Path::new(&format!("/proc/{pid}"))).unwrap_or_default()
}

/// A process's resident memory (`VmRSS`), in KiB; 0 if it cannot be read.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A memory figure of `/proc/<pid>/status` in KiB, by its key with the colon (`"VmRSS:"`,
/// `"RssAnon:"`, `"RssShmem:"`); 0 if it cannot be read.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
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
