//! phoned: the device daemon. It keeps a link to the relay ([`link`]), serves the D-Bus
//! API ([`dbus`]), and keeps contacts and settings in its store ([`store`]). [`phone`]
//! holds what they share.

pub mod audio;
pub mod call;
pub mod config;
pub mod credentials;
pub mod dbus;
pub mod files;
pub mod link;
pub mod messages;
pub mod phone;
pub mod reload;
pub mod store;
pub mod vcard;
pub mod voice;
