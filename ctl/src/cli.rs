//! The command line of `phonectl`, as clap definitions (also used for completions and
//! the man page).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use phoned_proto::state::AutoAnswer;

#[derive(Parser)]
#[command(
    name = "phonectl",
    version,
    about = "Control the phoned phone daemon over D-Bus",
    after_help = "Exit status: 0 ok, 1 the daemon refused or failed, 2 usage error, 3 the daemon is not running."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone, Copy)]
pub struct Global {
    /// Talk to the daemon on the system bus (headless devices).
    #[arg(long, global = true, conflicts_with = "session")]
    pub system: bool,
    /// Talk to the daemon on the session bus (the default).
    #[arg(long, global = true)]
    pub session: bool,
    /// Print machine-readable JSON (errors too: one object on stderr with `error`, the
    /// error's name, `message` and `exit`, the exit status).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Connection state and account in one line.
    Status,
    /// Account details: number, name, connection, relay, creation date.
    Account,
    /// Who is online now.
    Who,
    /// Change this device's number.
    Number {
        #[command(subcommand)]
        action: NumberAction,
    },
    /// Set the display name others see.
    Name {
        #[command(subcommand)]
        action: NameAction,
    },
    /// Set the account password (read from stdin), to log in on another device.
    Password {
        #[command(subcommand)]
        action: PasswordAction,
    },
    /// The address book.
    Contacts {
        #[command(subcommand)]
        action: ContactsAction,
    },
    /// Call a number or a contact by name.
    Dial {
        /// A number, or a contact's name (case-insensitive).
        target: String,
        /// Wait until the call is answered (exit 0) or ends (exit 1, with the reason).
        #[arg(long)]
        wait: bool,
    },
    /// Answer the ringing call (or CALL: its number from `calls`, or its object path). A
    /// call waiting during another is answered the same way: the active call goes on hold.
    Answer {
        /// The call: its number in `phonectl calls`, or its object path (default: the
        /// only call in the right state).
        call: Option<String>,
    },
    /// Decline the ringing (or waiting) call.
    Reject {
        /// The call: its number in `phonectl calls`, or its object path (default: the
        /// only call in the right state).
        call: Option<String>,
        /// Decline as busy rather than rejected.
        #[arg(long)]
        busy: bool,
    },
    /// Hang up the current call.
    Hangup {
        /// The call: its number in `phonectl calls`, or its object path (default: the
        /// only call in the right state).
        call: Option<String>,
    },
    /// Put the active call on hold.
    Hold {
        /// The call: its number in `phonectl calls`, or its object path (default: the
        /// only call in the right state).
        call: Option<String>,
    },
    /// Resume the call this side put on hold (a call the other side holds is theirs to
    /// resume).
    Resume {
        /// The call: its number in `phonectl calls`, or its object path (default: the
        /// only call in the right state).
        call: Option<String>,
    },
    /// Mute the microphone in the active call.
    Mute {
        /// The call: its number in `phonectl calls`, or its object path (default: the
        /// only call in the right state).
        call: Option<String>,
    },
    /// Unmute the microphone.
    Unmute {
        /// The call: its number in `phonectl calls`, or its object path (default: the
        /// only call in the right state).
        call: Option<String>,
    },
    /// Send DTMF digits (0-9, *, #, A-D) in the active call.
    Dtmf {
        /// The digits to send: 0-9, *, #, A-D.
        digits: String,
        /// The call: its number in `phonectl calls`, or its object path (default: the
        /// active call).
        #[arg(long)]
        call: Option<String>,
    },
    /// Conference calls. Without a subcommand, shows the current conference: its id, host
    /// and parties (number, name, state: invited, ringing, joined, held or left, and
    /// whether the party is speaking); with --json one object with `id`, `path`, `host`,
    /// `call` and `parties` (`number`, `name`, `state`, `speaking`). `hangup` of the
    /// conference's call leaves it, as `conference leave` does.
    Conference {
        #[command(subcommand)]
        action: Option<ConferenceAction>,
    },
    /// The current calls; with --stats, each active call's live quality too.
    Calls {
        /// Also each active call's live quality: loss over the last 5 s and the call,
        /// jitter, jitter-buffer and estimated mouth-to-ear delay, send and receive
        /// bitrates, and the E-model's R and MOS (with --json: a `quality` object per
        /// call, empty when the call is not active).
        #[arg(long)]
        stats: bool,
    },
    /// Recent calls, newest first, and the missed count.
    History {
        /// How many calls to list at most.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Text messages.
    Msg {
        #[command(subcommand)]
        action: MsgAction,
    },
    /// Voice messages (Ogg Opus).
    Voice {
        #[command(subcommand)]
        action: VoiceAction,
    },
    /// Files.
    File {
        #[command(subcommand)]
        action: FileAction,
    },
    /// Do not disturb: incoming calls are declined without ringing. Without an argument,
    /// prints whether it is on.
    Dnd {
        /// on or off.
        #[arg(value_enum)]
        state: Option<OnOff>,
    },
    /// Answer incoming calls automatically: off, from everyone, or from contacts only.
    /// Without an argument, prints the current mode.
    Autoanswer {
        /// off, all (everyone) or contacts (people in the address book only).
        #[arg(value_enum)]
        mode: Option<AutoAnswerArg>,
    },
    /// The relay certificate this device trusts.
    Relay {
        #[command(subcommand)]
        action: RelayAction,
    },
    /// Make the daemon re-read its config file (as SIGHUP does); prints what changed and
    /// when it applies: now, at the next call, or when the link reconnects (after calls end).
    Reload,
    /// Print every event of the daemon as one JSON line each, until interrupted.
    ///
    /// Each line has an `event` field: call_added, incoming_call, call_changed (a call's
    /// changed properties, e.g. its State), conference_changed (a conference's Parties or
    /// Host), call_removed (with the reason), dtmf,
    /// message_received (with the text), message_status, file_received (with the saved
    /// path), file_progress, file_status, voice_received, presence, contacts_changed,
    /// properties (the Manager's and Account's changed properties); an active call's Quality
    /// comes as call_changed once a second. A signal this version
    /// does not know prints as `signal` with its interface and member.
    Watch,
    /// Audio devices.
    Audio {
        #[command(subcommand)]
        action: AudioAction,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh or fish.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page phonectl(1) (roff), or with --dir write it and one page per
    /// command (phonectl-dial(1), phonectl-msg-send(1), …) into a directory.
    Man {
        /// Write every page into this directory (created if missing) instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ConferenceAction {
    /// Open a conference hosted here, inviting 1 to 15 numbers or contacts: every device
    /// of each rings; declining or not answering leaves the others in. Prints the
    /// conference (with --json, the object `phonectl conference --json` shows).
    Create {
        /// The numbers or contacts' names to invite (1 to 15, not this account's own).
        #[arg(required = true, num_args = 1..)]
        numbers: Vec<String>,
    },
    /// Three-way calling: merge the active call and the held call into one conference
    /// hosted here. Prints the conference.
    Merge,
    /// Invite a number into the current conference (the host only); during a plain
    /// call, turn it into a conference hosted here with the number as third party.
    Add {
        /// The number to invite.
        number: String,
    },
    /// Take a party out of the current conference (the host only).
    Remove {
        /// The party's number.
        number: String,
    },
    /// Leave the current conference (hang up this device's call in it); the others go on.
    Leave,
}

#[derive(Subcommand)]
pub enum AudioAction {
    /// The input and output devices of the audio backend the daemon would use for a call
    /// (pulse: sources and sinks; cpal: ALSA devices), with the default marked. A name or
    /// description listed here can go in `[audio] input`/`output`.
    Devices,
}

#[derive(Subcommand)]
pub enum MsgAction {
    /// Send TEXT to a number or contact; kept and sent later if the relay is out of reach.
    /// Several words are sent as one text, joined by spaces; `-` reads the text from stdin.
    Send {
        /// A number or a contact's name.
        to: String,
        /// The text (several words are joined by spaces; `-` reads it from stdin).
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        text: Vec<String>,
    },
    /// Messages, oldest first (with PEER only, a number or a contact's name, if given).
    History {
        /// Only the messages with this number or contact (default: all).
        peer: Option<String>,
        /// How many messages to list at most (the newest).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand)]
pub enum VoiceAction {
    /// Send a voice message to a number or contact: a WAV file (opened by phonectl with
    /// your rights and handed to the daemon), or SECONDS recorded from the microphone
    /// (e.g. after a call was not answered).
    #[command(group(clap::ArgGroup::new("source").required(true).args(["file", "seconds"])))]
    Send {
        /// A number or a contact's name.
        to: String,
        /// A WAV file to send (any rate and channel count; 8-32-bit or float).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Record this many seconds (1-300) from the microphone and send them.
        #[arg(long)]
        seconds: Option<u32>,
        /// Wait until the relay has stored it (a progress bar on a terminal, JSON
        /// progress lines with --json) instead of until the relay accepts it.
        #[arg(long)]
        wait: bool,
    },
    /// Voice messages sent and received: date, who from or to, duration, status, id.
    Ls,
    /// Play a voice message through the speaker.
    Play {
        /// The voice message's id, from `phonectl voice ls`.
        id: String,
    },
}

#[derive(Subcommand)]
pub enum FileAction {
    /// Send the file at PATH to a number or contact (resumes after a broken connection).
    /// phonectl opens the file with your rights and hands the daemon the open file, so
    /// the daemon sends only what you may read; it must be a regular file.
    Send {
        /// A number or a contact's name.
        to: String,
        /// The file to send.
        path: PathBuf,
        /// Wait until the relay has stored it (a progress bar on a terminal, JSON
        /// progress lines with --json) instead of until the relay accepts it.
        #[arg(long)]
        wait: bool,
    },
    /// Transfers, oldest first, with where received files were saved (absolute paths)
    /// and why failed ones failed. Voice messages only with --all or --voice.
    Ls {
        /// Voice messages too.
        #[arg(long, conflicts_with = "voice")]
        all: bool,
        /// Voice messages only.
        #[arg(long)]
        voice: bool,
    },
}

#[derive(Subcommand)]
pub enum NumberAction {
    /// Move this account to NUMBER (fails if someone has it).
    Change {
        /// The new number, within the relay's range.
        number: String,
    },
}

#[derive(Subcommand)]
pub enum RelayAction {
    /// Print the fingerprint trusted and where it comes from (the config, or learnt on
    /// the first connection).
    Trust,
    /// Forget the learnt fingerprint, after the relay was reinstalled: the next connection
    /// trusts the certificate the relay presents then.
    Forget,
}

#[derive(Subcommand)]
pub enum NameAction {
    /// Set the display name others see.
    Set {
        /// The new display name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum PasswordAction {
    /// Read the new password from the first line of stdin.
    Set,
}

#[derive(Subcommand)]
pub enum ContactsAction {
    /// Add a contact.
    Add {
        /// The contact's name (unique in the address book).
        name: String,
        /// The contact's number.
        number: String,
    },
    /// Remove a contact (by id, name or number).
    Rm {
        /// The contact's id, name or number.
        contact: String,
    },
    /// Rename a contact (by id, name or number).
    Rename {
        /// The contact's id, name or number.
        contact: String,
        /// The new name.
        name: String,
    },
    /// List contacts.
    Ls,
    /// Import a vCard file ("-" for stdin): every card with a name and a phone number
    /// (numbers from elsewhere, such as +44 …, are kept but not dialable here); prints
    /// the cards left out and why.
    Import {
        /// The vCard file, or `-` for stdin.
        file: PathBuf,
    },
    /// Export all contacts as vCard 4.0 (to FILE, or stdout).
    Export {
        /// Write to this file instead of stdout.
        file: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AutoAnswerArg {
    Off,
    All,
    Contacts,
}

impl AutoAnswerArg {
    pub fn as_str(self) -> &'static str {
        let mode = match self {
            AutoAnswerArg::Off => AutoAnswer::Off,
            AutoAnswerArg::All => AutoAnswer::All,
            AutoAnswerArg::Contacts => AutoAnswer::Contacts,
        };
        mode.as_str()
    }
}
