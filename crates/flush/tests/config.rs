//! `FlushConfig`: round trips through TOML, JSON and the short form; each bad input's error.

use flush::{ByteSize, FlushConfig, FlushError};

fn every_shape() -> Vec<FlushConfig> {
    let mut v = FlushConfig::all_defaults().to_vec();
    v.extend([
        FlushConfig::SortedMerge {
            max_run_bytes: ByteSize(256 << 10),
        },
        FlushConfig::GapMerge {
            max_gap: ByteSize(0),
            max_run_bytes: ByteSize(4 << 20),
        },
        FlushConfig::GapMerge {
            max_gap: ByteSize(12_345),
            max_run_bytes: ByteSize(3),
        },
        FlushConfig::GapMerge {
            max_gap: ByteSize(16 << 20),
            max_run_bytes: ByteSize(1 << 30),
        },
        FlushConfig::VectoredGap {
            max_gap: ByteSize(8 << 10),
        },
    ]);
    v
}

#[test]
fn round_trips_through_toml_json_and_the_short_form() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct File {
        flush: FlushConfig,
    }
    for config in every_shape() {
        config.validate().unwrap();
        let short = config.to_string();
        assert_eq!(
            short.parse::<FlushConfig>().unwrap(),
            config,
            "short form {short}"
        );
        let toml_text = toml::to_string(&File { flush: config }).unwrap();
        let back: File = toml::from_str(&toml_text).unwrap();
        assert_eq!(back.flush, config, "toml:\n{toml_text}");
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            serde_json::from_str::<FlushConfig>(&json).unwrap(),
            config,
            "json {json}"
        );
        assert_eq!(config.build().config(), config, "build keeps the parameters");
    }
}

#[test]
fn short_forms_and_toml_forms_people_write() {
    let gm = |gap: u64, run: u64| FlushConfig::GapMerge {
        max_gap: ByteSize(gap),
        max_run_bytes: ByteSize(run),
    };
    let cases = [
        ("per-page", FlushConfig::PerPage),
        ("vectored", FlushConfig::Vectored),
        (" gap-merge:16KiB ", gm(16 << 10, 4 << 20)),
        ("gap-merge:16K", gm(16 << 10, 4 << 20)),
        ("gap-merge:16 KiB:1MiB", gm(16 << 10, 1 << 20)),
        ("gap-merge:4096", gm(4096, 4 << 20)),
        ("gap-merge", gm(16 << 10, 4 << 20)),
        (
            "vectored-gap:8KiB",
            FlushConfig::VectoredGap {
                max_gap: ByteSize(8 << 10),
            },
        ),
        (
            "sorted-merge:2MiB",
            FlushConfig::SortedMerge {
                max_run_bytes: ByteSize(2 << 20),
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(text.parse::<FlushConfig>().unwrap(), want, "{text}");
    }
    assert_eq!(gm(16 << 10, 4 << 20).to_string(), "gap-merge:16KiB");
    assert_eq!(FlushConfig::default(), FlushConfig::Vectored);

    let c: FlushConfig = toml::from_str("kind = \"gap-merge\"\nmax_gap = \"16KiB\"").unwrap();
    assert_eq!(c, gm(16 << 10, 4 << 20));
    let c: FlushConfig = toml::from_str("kind = \"vectored-gap\"\nmax_gap = 8192").unwrap();
    assert_eq!(
        c,
        FlushConfig::VectoredGap {
            max_gap: ByteSize(8192)
        }
    );
    let c: FlushConfig = toml::from_str("kind = \"per-page\"").unwrap();
    assert_eq!(c, FlushConfig::PerPage);
}

fn short_err(text: &str) -> FlushError {
    let err = text.parse::<FlushConfig>().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("accepted forms"),
        "`{text}`: message lists the accepted forms: {msg}"
    );
    assert!(
        msg.contains(text.trim()),
        "`{text}`: message names the input: {msg}"
    );
    err
}

#[test]
fn bad_short_forms_give_typed_errors_listing_the_accepted_forms() {
    assert!(matches!(
        short_err("gap-murge:4KiB"),
        FlushError::UnknownPolicy { .. }
    ));
    assert!(matches!(short_err(""), FlushError::UnknownPolicy { .. }));
    assert!(matches!(short_err("Vectored"), FlushError::UnknownPolicy { .. }));
    assert!(matches!(short_err("gap-merge:-3"), FlushError::BadSize { size, .. } if size == "-3"));
    assert!(
        matches!(short_err("gap-merge:12 parsecs"), FlushError::BadSize { size, .. } if size == "12 parsecs")
    );
    assert!(matches!(short_err("gap-merge:"), FlushError::BadSize { .. }));
    assert!(
        matches!(short_err("gap-merge:1.5KiB"), FlushError::BadSize { .. }),
        "no fractions"
    );
    assert!(
        matches!(short_err("gap-merge:0.5"), FlushError::BadSize { .. }),
        "no rounding"
    );
    assert!(matches!(short_err("gap-merge:17MiB"), FlushError::GapTooLarge { gap, .. } if gap == 17 << 20));
    assert!(matches!(
        short_err("vectored-gap:16MiB1"),
        FlushError::BadSize { .. }
    ));
    assert!(matches!(
        short_err("vectored-gap:32MiB"),
        FlushError::GapTooLarge { .. }
    ));
    assert!(matches!(
        short_err("gap-merge:4KiB:0"),
        FlushError::BadRunCap { max_run: 0, .. }
    ));
    assert!(matches!(
        short_err("sorted-merge:2GiB"),
        FlushError::BadRunCap { .. }
    ));
    assert!(matches!(
        short_err("vectored:4KiB"),
        FlushError::TooManyParameters { max: 0, .. }
    ));
    assert!(matches!(
        short_err("gap-merge:4KiB:1MiB:9"),
        FlushError::TooManyParameters { max: 2, .. }
    ));
}

#[test]
fn bad_toml_names_the_problem() {
    let cases = [
        ("kind = \"gap-murge\"", "unknown variant"),
        ("max_gap = \"4KiB\"", "kind"),
        ("kind = \"gap-merge\"\nmax_gap = \"12 parsecs\"", "12 parsecs"),
        ("kind = \"gap-merge\"\nmax_gap = -3", "negative"),
        ("kind = \"gap-merge\"\nmax_gap = \"17MiB\"", "16MiB"),
        ("kind = \"vectored-gap\"\nmax_gap = \"1GiB\"", "16MiB"),
        ("kind = \"sorted-merge\"\nmax_run_bytes = 0", "run cap"),
        ("kind = \"gap-merge\"\nmax_gapp = \"4KiB\"", "max_gapp"),
        ("kind = \"vectored\"\nmax_gap = \"4KiB\"", "max_gap"),
    ];
    for (text, needle) in cases {
        let err = toml::from_str::<FlushConfig>(text).unwrap_err().to_string();
        assert!(err.contains(needle), "`{text}` should mention `{needle}`: {err}");
    }
    let err = FlushConfig::GapMerge {
        max_gap: ByteSize(1 << 30),
        max_run_bytes: ByteSize(1),
    }
    .validate()
    .unwrap_err();
    assert!(matches!(err, FlushError::GapTooLarge { .. }));
}
