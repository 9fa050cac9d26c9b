//! Table files (`init --table`) and snapshot files (`restore`) from
//! arbitrary text: never a panic; whatever loads passes `State::check`; a
//! snapshot that loads writes back to one that loads to the same books.
#![no_main]

use exchange::Config;
use exchange::snapshot::{from_toml, to_toml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // A table that loads makes books that pass every check: `init` would
    // otherwise refuse it with a message about books, not about the file.
    if let Ok(config) = Config::from_toml(text)
        && let Ok(state) = config.into_state()
    {
        let v = state.check();
        assert!(v.is_empty(), "a table that loads fails the checks: {v:?}\n{text}");
    }
    if let Ok((state, journal)) = from_toml(text) {
        let v = state.check();
        assert!(v.is_empty(), "a snapshot that loads fails the checks: {v:?}\n{text}");
        let again = to_toml(&state, &journal, 0);
        let (state2, journal2) = from_toml(&again).expect("a written snapshot loads");
        assert_eq!(to_toml(&state2, &journal2, 0), again);
    }
});
