//! Fuzz target: parse arbitrary text as a flush policy (short form and TOML). Never panics;
//! whatever parses prints back to a form that parses to the same config.
#![no_main]

use flush::FlushConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(config) = text.parse::<FlushConfig>() {
        let again: FlushConfig = config
            .to_string()
            .parse()
            .expect("Display gives a parsable short form");
        assert_eq!(again, config);
        config.validate().expect("parsed configs are valid");
        let _ = config.build();
    }
    if let Ok(config) = toml::from_str::<FlushConfig>(text) {
        assert_eq!(
            config.to_string().parse::<FlushConfig>().expect("round trip"),
            config
        );
    }
});
