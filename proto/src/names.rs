//! How the enums whose string forms are public interface (D-Bus properties and signals,
//! `phonectl --json`, the daemon's store) get those forms: each string is written once, in
//! a [`string_enum!`] declaration, which gives the enum `as_str`, a `FromStr` that reads
//! exactly those strings back, `Display`, and `ALL`.

use thiserror::Error;

/// A string that names none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} {got:?}")]
pub struct UnknownName {
    /// What was being named, e.g. "call state".
    pub what: &'static str,
    /// The string, cut at 32 characters (it may come from outside).
    pub got: String,
}

impl UnknownName {
    pub fn new(what: &'static str, got: &str) -> UnknownName {
        UnknownName {
            what,
            got: got.chars().take(32).collect(),
        }
    }
}

/// Declares an enum of unit variants, each with its public string:
///
/// ```ignore
/// string_enum! {
///     /// Docs of the enum.
///     pub enum CallDirection as "call direction" {
///         Incoming = "incoming",
///         Outgoing = "outgoing",
///     }
/// }
/// ```
///
/// The enum derives `Debug, Clone, Copy, PartialEq, Eq, Hash`; more derives (serde) go
/// among its attributes. Variants keep their order, so a serde encoding by index is
/// unchanged.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The public string form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err($crate::names::UnknownName::new($what, s)),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

/// Checks that every value of an enum made by [`string_enum!`] reads back from its string,
/// that the strings differ, and that an unknown string is refused (for unit tests).
#[cfg(test)]
macro_rules! assert_round_trips {
    ($name:ty) => {{
        let all = <$name>::ALL;
        for v in all {
            assert_eq!(v.as_str().parse::<$name>(), Ok(*v));
            assert_eq!(v.to_string(), v.as_str());
        }
        let mut strings: Vec<_> = all.iter().map(|v| v.as_str()).collect();
        strings.sort_unstable();
        strings.dedup();
        assert_eq!(strings.len(), all.len(), "two values share a string");
        assert!("no such name".parse::<$name>().is_err());
        assert!("".parse::<$name>().is_err());
    }};
}
#[cfg(test)]
pub(crate) use assert_round_trips;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_cut_short() {
        let e = UnknownName::new("call state", &"x".repeat(1000));
        assert_eq!(e.got.len(), 32);
        assert!(e.to_string().starts_with("unknown call state \"xxx"));
    }
}
