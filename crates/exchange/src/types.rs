//! Small value types: currency codes, operation kinds, identifiers.
#![forbid(unsafe_code)]

use std::fmt;

use crate::error::{CodeError, NameError};

/// A currency code: 1 to 8 ASCII capital letters or digits, starting with a
/// letter (`TRY`, `DOLLAR`, `STERLIN`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code([u8; 8]);

impl Code {
    /// Parses a code; lower case is accepted and made upper case.
    ///
    /// # Errors
    ///
    /// [`CodeError`], whose message says what a code may hold.
    pub fn new(text: &str) -> Result<Code, CodeError> {
        let b = text.as_bytes();
        let ok = (1..=8).contains(&b.len())
            && b[0].is_ascii_alphabetic()
            && b.iter().all(u8::is_ascii_alphanumeric);
        if !ok {
            return Err(CodeError {
                text: text.to_owned(),
            });
        }
        let mut c = [0u8; 8];
        for (d, s) in c.iter_mut().zip(b) {
            *d = s.to_ascii_uppercase();
        }
        Ok(Code(c))
    }

    /// The code of a packed word, if it is a valid one.
    pub(crate) fn from_packed(w: u64) -> Option<Code> {
        let b = w.to_le_bytes();
        let len = b.iter().position(|&x| x == 0).unwrap_or(8);
        let s = std::str::from_utf8(&b[..len]).ok()?;
        let c = Code::new(s).ok()?;
        (c.0 == b).then_some(c)
    }

    /// The packed form stored in the segment.
    pub(crate) fn packed(self) -> u64 {
        u64::from_le_bytes(self.0)
    }

    /// The code as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&x| x == 0).unwrap_or(8);
        std::str::from_utf8(&self.0[..len]).unwrap_or("?")
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({})", self.as_str())
    }
}

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A customer bought foreign currency.
    Buy,
    /// A customer sold foreign currency.
    Sell,
    /// Cash in.
    Deposit,
    /// Cash out.
    Withdraw,
    /// New quotes for a currency.
    SetRate,
    /// A new account, with its opening balance.
    Open,
    /// A crashed operation was undone.
    Rollback,
    /// An account closed, at zero balances; its name is free again.
    Close,
}

impl Op {
    /// Every kind.
    pub const ALL: [Op; 8] = [
        Op::Buy,
        Op::Sell,
        Op::Deposit,
        Op::Withdraw,
        Op::SetRate,
        Op::Open,
        Op::Rollback,
        Op::Close,
    ];

    /// The name the journal prints.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Op::Buy => "buy",
            Op::Sell => "sell",
            Op::Deposit => "deposit",
            Op::Withdraw => "withdraw",
            Op::SetRate => "set-rate",
            Op::Open => "open",
            Op::Rollback => "rollback",
            Op::Close => "close",
        }
    }

    /// The kind with that name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == name)
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Op::Buy => 1,
            Op::Sell => 2,
            Op::Deposit => 3,
            Op::Withdraw => 4,
            Op::SetRate => 5,
            Op::Open => 6,
            Op::Rollback => 7,
            Op::Close => 8,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.code() == c)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What a customer asks of the exchange: the operations on an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// Buy foreign currency at the sell rate.
    Buy,
    /// Sell foreign currency at the buy rate.
    Sell,
    /// Cash in.
    Deposit,
    /// Cash out.
    Withdraw,
}

impl From<Order> for Op {
    fn from(o: Order) -> Op {
        match o {
            Order::Buy => Op::Buy,
            Order::Sell => Op::Sell,
            Order::Deposit => Op::Deposit,
            Order::Withdraw => Op::Withdraw,
        }
    }
}

/// An open account, by position. Valid for the exchange that returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccountId(pub(crate) u32);

impl AccountId {
    /// Position in the account table.
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A currency, by position (0 is the home currency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CurrencyId(pub(crate) u16);

impl CurrencyId {
    /// The home currency.
    pub const HOME: CurrencyId = CurrencyId(0);

    /// Position in the currency table.
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The currency at position `index` (0 is home); the engine refuses
    /// a position past its table with [`OpError::BadId`](crate::OpError).
    #[must_use]
    pub fn from_index(index: usize) -> CurrencyId {
        CurrencyId(u16::try_from(index).unwrap_or(u16::MAX))
    }
}

/// Checks an account name: 1 to 32 bytes of `[A-Za-z0-9_.-]`.
///
/// # Errors
///
/// [`NameError`], whose message names the name and the rule.
pub fn check_account_name(name: &str) -> Result<(), NameError> {
    let ok = (1..=crate::layout::NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(NameError {
            name: name.to_owned(),
        })
    }
}

/// Packs a name of up to 32 bytes into four words.
pub(crate) fn pack_name(name: &[u8]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (i, chunk) in name.chunks(8).take(4).enumerate() {
        w[i] = crate::layout::pack8(chunk);
    }
    w
}

/// Unpacks an account name; `None` unless it is one that
/// [`pack_name`] could have packed: a valid account name
/// ([`check_account_name`]) followed by zero
/// bytes only.
pub(crate) fn unpack_name(len: u64, words: [u64; 4]) -> Option<String> {
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= crate::layout::NAME_MAX)?;
    let mut b = [0u8; 32];
    for (i, w) in words.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    if b[len..].iter().any(|&x| x != 0) {
        return None;
    }
    let name = std::str::from_utf8(&b[..len]).ok()?;
    check_account_name(name).ok()?;
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let c = Code::new("dollar").unwrap();
        assert_eq!(c.as_str(), "DOLLAR");
        assert_eq!(Code::from_packed(c.packed()), Some(c));
        for bad in ["", "123", "TOOLONGXX", "A-B", "ÜBER", "A B"] {
            assert_eq!(Code::new(bad), Err(CodeError { text: bad.into() }));
        }
        assert_eq!(
            Code::new("A-B").unwrap_err().to_string(),
            "invalid currency code \"A-B\": 1 to 8 ASCII letters or digits, starting with a letter, such as DOLLAR"
        );
        assert_eq!(Code::from_packed(0), None);
        assert_eq!(Code::from_packed(u64::MAX), None);
    }

    #[test]
    fn names() {
        assert!(check_account_name("alice.b-c_9").is_ok());
        for bad in ["", "bad name", "x/y", "ünïcode", &"a".repeat(33)] {
            assert_eq!(check_account_name(bad), Err(NameError { name: bad.into() }));
        }
        assert_eq!(
            check_account_name("x/y").unwrap_err().to_string(),
            "invalid account name \"x/y\": use 1 to 32 characters from A-Z, a-z, 0-9, '_', '.' and '-'"
        );
    }

    #[test]
    fn op_codes_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::from_code(op.code()), Some(op));
            assert_eq!(Op::from_name(op.name()), Some(op));
        }
    }

    #[test]
    fn names_round_trip() {
        let n = "a23456789012345678901234567890_z";
        assert_eq!(n.len(), 32);
        assert_eq!(unpack_name(32, pack_name(n.as_bytes())).as_deref(), Some(n));
        assert_eq!(unpack_name(33, [0; 4]), None);
        assert_eq!(unpack_name(0, [0; 4]), None, "empty");
        assert_eq!(
            unpack_name(2, pack_name(b"a\n")),
            None,
            "a control character"
        );
        assert_eq!(
            unpack_name(1, pack_name(b"ab")),
            None,
            "bytes past the length"
        );
    }
}
