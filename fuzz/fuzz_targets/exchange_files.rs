//! Table files (`init --table`) and snapshot files (`restore`) from
//! arbitrary text: never a panic; a snapshot that loads writes back to
//! one that loads to the same books.
#![no_main]

use exchange::Config;
use exchange::snapshot::{from_toml, to_toml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Config::from_toml(text)
        && let Ok(state) = config.into_state()
    {
        let _ = state.check();
    }
    if let Ok((state, journal)) = from_toml(text) {
        let again = to_toml(&state, &journal, 0);
        let (state2, journal2) = from_toml(&again).expect("a written snapshot loads");
        assert_eq!(to_toml(&state2, &journal2, 0), again);
    }
});
