//! The bridge's object paths on the oFono bus, named as oFono names them: the manager at
//! `/`, one modem (oFono names modems after their driver, e.g. `/phonesim`, `/ril_0`) and
//! its calls under it, `voicecall` and a two-digit number.

/// The modem: phoned's line.
pub const MODEM: &str = "/phoned";

/// The oFono object of phoned's call number `local` (`/org/phoned/Phone1/Call/<local>`):
/// the same number, so a call is the same one on both buses (`phonectl calls` shows it).
///
/// ```
/// assert_eq!(phoned_ofono::paths::call(3), "/phoned/voicecall03");
/// assert_eq!(phoned_ofono::paths::call(120), "/phoned/voicecall120");
/// ```
pub fn call(local: u32) -> String {
    format!("{MODEM}/voicecall{local:02}")
}
