//! What a managed segment holds: a code in its header, and the names that
//! the layers above register for their codes.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{PoisonError, RwLock};

use crate::Error;

/// What a managed segment holds: the code stored in its header, with a name
/// for listings and messages.
///
/// This crate knows one kind, [`Kind::BYTES`]. A crate that keeps its own
/// structure in managed segments defines its kind with [`Kind::new`], under
/// a code no other crate uses, and a program registers the kinds it knows
/// with [`register_kind`] so that listings and errors name them. A code
/// nobody registered reads as `kind N`.
///
/// Two kinds are equal when their codes are.
///
/// # Examples
///
/// ```
/// use shm::Kind;
/// const QUEUE: Kind = Kind::new(90, "queue");
/// shm::register_kind(QUEUE)?;
/// assert_eq!(Kind::from_code(90).to_string(), "queue");
/// assert_eq!(Kind::from_code(91).to_string(), "kind 91");
/// # Ok::<(), shm::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    code: u32,
    name: Option<&'static str>,
}

impl Kind {
    /// Plain bytes, with no structure this crate knows of (code 1).
    pub const BYTES: Kind = Kind::new(1, "bytes");

    /// The kind stored as `code`, named `name` (lowercase, one word).
    ///
    /// # Panics
    ///
    /// If `code` is 0, which a header never holds (at compile time when
    /// used in a constant).
    #[must_use]
    pub const fn new(code: u32, name: &'static str) -> Kind {
        assert!(code != 0, "kind code 0 is reserved: it marks no kind");
        Kind {
            code,
            name: Some(name),
        }
    }

    /// The kind stored as `code`: named if it is [`Kind::BYTES`] or a
    /// registered kind, unnamed otherwise.
    #[must_use]
    pub fn from_code(code: u32) -> Kind {
        let name = if code == Kind::BYTES.code {
            Kind::BYTES.name
        } else {
            registered()
                .iter()
                .find(|k| k.code == code)
                .and_then(|k| k.name)
        };
        Kind { code, name }
    }

    /// The code stored in the header.
    #[must_use]
    pub const fn code(self) -> u32 {
        self.code
    }

    /// The kind with its article, for messages: `a bytes segment`,
    /// `a channel`, `an exchange`, `a segment of kind 7`.
    #[must_use]
    pub fn a(self) -> String {
        let noun = match self.name {
            Some("bytes") => "bytes segment".to_owned(),
            Some(name) => name.to_owned(),
            None => format!("segment of kind {}", self.code),
        };
        let vowel = noun.starts_with(['a', 'e', 'i', 'o', 'u']);
        format!("{} {noun}", if vowel { "an" } else { "a" })
    }

    /// Its name, or `None` for a code nobody registered.
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        self.name
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Kind) -> bool {
        self.code == other.code
    }
}

impl Eq for Kind {}

impl Hash for Kind {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.code.hash(state);
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(name) => f.write_str(name),
            None => write!(f, "kind {}", self.code),
        }
    }
}

/// The kinds registered in this process, besides [`Kind::BYTES`].
static REGISTERED: RwLock<Vec<Kind>> = RwLock::new(Vec::new());

fn registered() -> std::sync::RwLockReadGuard<'static, Vec<Kind>> {
    // A panic elsewhere cannot leave the list half-changed: a push is
    // the only change.
    REGISTERED.read().unwrap_or_else(PoisonError::into_inner)
}

/// Registers `kind`, so that listings and errors in this process name the
/// segments of its code. Registering a kind again does nothing.
///
/// # Errors
///
/// [`Error::Invalid`] if `kind` has no name, or if its code is
/// [`Kind::BYTES`]'s or already registered under another name (two crates
/// chose the same code).
pub fn register_kind(kind: Kind) -> Result<(), Error> {
    let Some(name) = kind.name else {
        return Err(Error::Invalid(format!(
            "kind code {} cannot be registered without a name",
            kind.code
        )));
    };
    let mut all = REGISTERED.write().unwrap_or_else(PoisonError::into_inner);
    let taken = std::iter::once(&Kind::BYTES)
        .chain(all.iter())
        .find(|k| k.code == kind.code);
    match taken {
        Some(k) if k.name == Some(name) => Ok(()),
        Some(k) => Err(Error::Invalid(format!(
            "kind code {} is taken by {k}: {name} needs a code of its own",
            kind.code
        ))),
        None => {
            all.push(kind);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The registry is one per process and tests run as threads of one:
    // each test uses codes of its own.

    #[test]
    fn kinds_take_their_article() {
        assert_eq!(Kind::BYTES.a(), "a bytes segment");
        assert_eq!(Kind::new(3001, "exchange").a(), "an exchange");
        assert_eq!(Kind::new(3002, "channel").a(), "a channel");
        assert_eq!(Kind::from_code(3003).a(), "a segment of kind 3003");
    }

    #[test]
    fn bytes_is_built_in() {
        assert_eq!(Kind::from_code(1), Kind::BYTES);
        assert_eq!(Kind::from_code(1).name(), Some("bytes"));
        assert_eq!(Kind::BYTES.to_string(), "bytes");
    }

    #[test]
    fn unregistered_codes_are_unnamed_until_registered() {
        let k = Kind::from_code(1001);
        assert_eq!(k.name(), None);
        assert_eq!(k.to_string(), "kind 1001");
        register_kind(Kind::new(1001, "thing")).expect("register");
        assert_eq!(Kind::from_code(1001).to_string(), "thing");
        // Equal by code, named or not.
        assert_eq!(k, Kind::new(1001, "thing"));
        assert_ne!(k, Kind::from_code(1002));
    }

    #[test]
    fn registering_again_is_harmless_and_conflicts_are_refused() {
        register_kind(Kind::new(2001, "first")).expect("register");
        register_kind(Kind::new(2001, "first")).expect("again");
        let err = register_kind(Kind::new(2001, "second")).expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "kind code 2001 is taken by first: second needs a code of its own"
        );
        let err = register_kind(Kind::new(1, "blob")).expect_err("bytes' code");
        assert!(err.to_string().contains("taken by bytes"), "{err}");
        let err = register_kind(Kind::from_code(2002)).expect_err("no name");
        assert!(err.to_string().contains("without a name"), "{err}");
        assert_eq!(Kind::from_code(2001).to_string(), "first");
    }
}
