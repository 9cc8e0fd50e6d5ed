//! phoned: the device daemon. [`core`] is its state, sans-IO: the call engine, the link
//! and account status, the config in effect and the requests issued to the relay.
//! [`driver`] is the one task that owns the core and carries out what it decides. Around
//! it are adapters that talk to the world through a [`driver::Handle`]: the relay
//! [`link`], the D-Bus service [`dbus`], text [`messages`], [`files`] and [`voice`]
//! messages, and the LMDB [`store`]. Files callers send come in through [`intake`];
//! the blocking work callers can cause is bounded by [`work`]. [`call::media`] carries a call's audio and [`audio`]
//! is the audio pipeline under it; [`ring`] is how an incoming call sounds.

pub mod audio;
pub mod call;
pub mod config;
pub mod core;
pub mod credentials;
pub mod dbus;
pub mod driver;
pub mod files;
pub mod intake;
pub mod link;
pub mod messages;
pub mod reload;
pub mod ring;
pub mod state_lock;
pub mod store;
pub mod vcard;
pub mod voice;
pub mod work;
