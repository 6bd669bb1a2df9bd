//! `FlushConfig`: the serde-writable choice of flush policy, its short form, and `build()`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::{FlushError, FlushPolicy, GapMerge, PerPage, Result, SortedMerge, Vectored, VectoredGap};

/// The widest gap a config may ask a policy to bridge.
pub const MAX_GAP_LIMIT: u64 = 16 << 20;
/// The largest run cap a config may set (it bounds the copy buffer).
pub const MAX_RUN_LIMIT: u64 = 1 << 30;

/// A byte count. Parses `4096`, `16KiB`, `16K`, `16KB`, `1MiB`, `1 GiB` (units are binary:
/// K = 1024; no fractions), serializes as the shortest exact form (`16KiB`), and deserializes from a string
/// or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl From<u64> for ByteSize {
    fn from(v: u64) -> Self {
        ByteSize(v)
    }
}

impl From<ByteSize> for u64 {
    fn from(v: ByteSize) -> Self {
        v.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (unit, name) in UNITS {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{}{name}", self.0 / unit);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    /// Parses a size; the error is the reason, for the caller to wrap.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        // parse-size would round `1.3KiB` to 1331 bytes and `0.5` to 1: refuse fractions.
        if s.contains('.') {
            return Err("fractions are not accepted: write a whole number of bytes or units".into());
        }
        parse_size::Config::new()
            .with_binary()
            .parse_size(s.trim())
            .map(ByteSize)
            .map_err(|e| e.to_string())
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a byte count such as 4096 or \"16KiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("size {v} is negative; {}", crate::ACCEPTED_FORMS)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<ByteSize, E> {
                v.parse().map_err(|reason| {
                    E::custom(format!(
                        "`{v}` is not a size ({reason}); {}",
                        crate::ACCEPTED_FORMS
                    ))
                })
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// Which flush policy a writer uses, and its parameters. Serde form (TOML):
/// `kind = "gap-merge"`, `max_gap = "16KiB"`; short form: `gap-merge:16KiB`.
/// [`FlushConfig::build`] makes the policy. Default: `vectored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", from = "FlushConfigRepr")]
#[non_exhaustive]
pub enum FlushConfig {
    /// [`PerPage`]. Short form `per-page`.
    PerPage,
    /// [`SortedMerge`]. Short form `sorted-merge[:MAX_RUN]`.
    SortedMerge {
        /// Cap on one run (default 4 MiB).
        max_run_bytes: ByteSize,
    },
    /// [`GapMerge`]. Short form `gap-merge[:MAX_GAP[:MAX_RUN]]`.
    GapMerge {
        /// Widest free gap bridged (default 16 KiB, at most 16 MiB).
        max_gap: ByteSize,
        /// Cap on one run (default 4 MiB).
        max_run_bytes: ByteSize,
    },
    /// [`Vectored`]. Short form `vectored`. The default until measurements pick another.
    #[default]
    Vectored,
    /// [`VectoredGap`]. Short form `vectored-gap[:MAX_GAP]`.
    VectoredGap {
        /// Widest free gap bridged (default 16 KiB, at most 16 MiB).
        max_gap: ByteSize,
    },
}

/// What deserialization reads: the same shape, but every variant is a struct variant, so
/// `deny_unknown_fields` also rejects `kind = "vectored"` with a stray `max_gap` (serde lets
/// unit variants of an internally tagged enum ignore unknown fields).
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum FlushConfigRepr {
    PerPage {},
    SortedMerge {
        #[serde(default = "default_sorted_run", deserialize_with = "de_run_cap")]
        max_run_bytes: ByteSize,
    },
    GapMerge {
        #[serde(default = "default_gap_merge_gap", deserialize_with = "de_gap")]
        max_gap: ByteSize,
        #[serde(default = "default_gap_merge_run", deserialize_with = "de_run_cap")]
        max_run_bytes: ByteSize,
    },
    Vectored {},
    VectoredGap {
        #[serde(default = "default_vectored_gap", deserialize_with = "de_gap")]
        max_gap: ByteSize,
    },
}

impl From<FlushConfigRepr> for FlushConfig {
    fn from(r: FlushConfigRepr) -> Self {
        match r {
            FlushConfigRepr::PerPage {} => FlushConfig::PerPage,
            FlushConfigRepr::SortedMerge { max_run_bytes } => FlushConfig::SortedMerge { max_run_bytes },
            FlushConfigRepr::GapMerge {
                max_gap,
                max_run_bytes,
            } => FlushConfig::GapMerge {
                max_gap,
                max_run_bytes,
            },
            FlushConfigRepr::Vectored {} => FlushConfig::Vectored,
            FlushConfigRepr::VectoredGap { max_gap } => FlushConfig::VectoredGap { max_gap },
        }
    }
}

fn default_sorted_run() -> ByteSize {
    ByteSize(SortedMerge::DEFAULT_MAX_RUN)
}
fn default_gap_merge_gap() -> ByteSize {
    ByteSize(GapMerge::DEFAULT_MAX_GAP)
}
fn default_gap_merge_run() -> ByteSize {
    ByteSize(GapMerge::DEFAULT_MAX_RUN)
}
fn default_vectored_gap() -> ByteSize {
    ByteSize(VectoredGap::DEFAULT_MAX_GAP)
}

fn check_gap(input: &str, gap: ByteSize) -> Result<()> {
    if gap.0 > MAX_GAP_LIMIT {
        return Err(FlushError::GapTooLarge {
            input: input.to_owned(),
            gap: gap.0,
        });
    }
    Ok(())
}

fn check_run_cap(input: &str, cap: ByteSize) -> Result<()> {
    if cap.0 == 0 || cap.0 > MAX_RUN_LIMIT {
        return Err(FlushError::BadRunCap {
            input: input.to_owned(),
            max_run: cap.0,
        });
    }
    Ok(())
}

fn de_gap<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<ByteSize, D::Error> {
    let gap = ByteSize::deserialize(d)?;
    check_gap(&format!("max_gap = {gap}"), gap).map_err(de::Error::custom)?;
    Ok(gap)
}

fn de_run_cap<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<ByteSize, D::Error> {
    let cap = ByteSize::deserialize(d)?;
    check_run_cap(&format!("max_run_bytes = {cap}"), cap).map_err(de::Error::custom)?;
    Ok(cap)
}

impl FlushConfig {
    /// Every policy with default parameters, in baseline-first order (for sweeps and tests).
    pub fn all_defaults() -> [FlushConfig; 5] {
        [
            PerPage.config(),
            SortedMerge::default().config(),
            GapMerge::default().config(),
            Vectored.config(),
            VectoredGap::default().config(),
        ]
    }

    /// The policy's kind, as in the short and serde forms (`gap-merge`).
    pub fn kind(&self) -> &'static str {
        match self {
            FlushConfig::PerPage => "per-page",
            FlushConfig::SortedMerge { .. } => "sorted-merge",
            FlushConfig::GapMerge { .. } => "gap-merge",
            FlushConfig::Vectored => "vectored",
            FlushConfig::VectoredGap { .. } => "vectored-gap",
        }
    }

    /// Checks the limits (gap at most 16 MiB, run cap 1 byte to 1 GiB). Parsing and
    /// deserializing already check; this is for configs built in code.
    pub fn validate(&self) -> Result<()> {
        let input = self.to_string();
        match *self {
            FlushConfig::PerPage | FlushConfig::Vectored => Ok(()),
            FlushConfig::SortedMerge { max_run_bytes } => check_run_cap(&input, max_run_bytes),
            FlushConfig::GapMerge {
                max_gap,
                max_run_bytes,
            } => {
                check_gap(&input, max_gap)?;
                check_run_cap(&input, max_run_bytes)
            }
            FlushConfig::VectoredGap { max_gap } => check_gap(&input, max_gap),
        }
    }

    /// Builds the policy. Planners accept any parameter values, so this cannot fail; use
    /// [`FlushConfig::validate`] on configs that did not come through parsing.
    pub fn build(&self) -> Box<dyn FlushPolicy> {
        match *self {
            FlushConfig::PerPage => Box::new(PerPage),
            FlushConfig::SortedMerge { max_run_bytes } => Box::new(SortedMerge {
                max_run_bytes: max_run_bytes.0,
            }),
            FlushConfig::GapMerge {
                max_gap,
                max_run_bytes,
            } => Box::new(GapMerge {
                max_gap: max_gap.0,
                max_run_bytes: max_run_bytes.0,
            }),
            FlushConfig::Vectored => Box::new(Vectored),
            FlushConfig::VectoredGap { max_gap } => Box::new(VectoredGap { max_gap: max_gap.0 }),
        }
    }
}

impl fmt::Display for FlushConfig {
    /// The short form, exact enough to parse back to the same config.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())?;
        match *self {
            FlushConfig::PerPage | FlushConfig::Vectored => Ok(()),
            FlushConfig::SortedMerge { max_run_bytes } if max_run_bytes == default_sorted_run() => Ok(()),
            FlushConfig::SortedMerge { max_run_bytes } => write!(f, ":{max_run_bytes}"),
            FlushConfig::GapMerge {
                max_gap,
                max_run_bytes,
            } if max_run_bytes == default_gap_merge_run() => {
                write!(f, ":{max_gap}")
            }
            FlushConfig::GapMerge {
                max_gap,
                max_run_bytes,
            } => write!(f, ":{max_gap}:{max_run_bytes}"),
            FlushConfig::VectoredGap { max_gap } => write!(f, ":{max_gap}"),
        }
    }
}

impl FromStr for FlushConfig {
    type Err = FlushError;

    /// Parses the short form: `per-page`, `sorted-merge[:MAX_RUN]`,
    /// `gap-merge[:MAX_GAP[:MAX_RUN]]`, `vectored`, `vectored-gap[:MAX_GAP]`.
    fn from_str(input: &str) -> Result<Self> {
        let mut parts = input.trim().split(':');
        let kind = parts.next().unwrap_or_default().trim();
        let params: Vec<&str> = parts.collect();
        let size = |i: usize, default: ByteSize| -> Result<ByteSize> {
            match params.get(i) {
                None => Ok(default),
                Some(text) => text.parse().map_err(|reason| FlushError::BadSize {
                    input: input.to_owned(),
                    size: text.trim().to_owned(),
                    reason,
                }),
            }
        };
        let at_most = |max: usize| -> Result<()> {
            if params.len() > max {
                return Err(FlushError::TooManyParameters {
                    input: input.to_owned(),
                    max,
                });
            }
            Ok(())
        };
        let config = match kind {
            "per-page" => {
                at_most(0)?;
                FlushConfig::PerPage
            }
            "sorted-merge" => {
                at_most(1)?;
                FlushConfig::SortedMerge {
                    max_run_bytes: size(0, default_sorted_run())?,
                }
            }
            "gap-merge" => {
                at_most(2)?;
                FlushConfig::GapMerge {
                    max_gap: size(0, default_gap_merge_gap())?,
                    max_run_bytes: size(1, default_gap_merge_run())?,
                }
            }
            "vectored" => {
                at_most(0)?;
                FlushConfig::Vectored
            }
            "vectored-gap" => {
                at_most(1)?;
                FlushConfig::VectoredGap {
                    max_gap: size(0, default_vectored_gap())?,
                }
            }
            _ => {
                return Err(FlushError::UnknownPolicy {
                    input: input.to_owned(),
                })
            }
        };
        // Limit errors name the text the user wrote.
        match config {
            FlushConfig::GapMerge {
                max_gap,
                max_run_bytes,
            } => {
                check_gap(input, max_gap)?;
                check_run_cap(input, max_run_bytes)?;
            }
            FlushConfig::VectoredGap { max_gap } => check_gap(input, max_gap)?,
            FlushConfig::SortedMerge { max_run_bytes } => check_run_cap(input, max_run_bytes)?,
            FlushConfig::PerPage | FlushConfig::Vectored => {}
        }
        Ok(config)
    }
}

impl From<PerPage> for FlushConfig {
    fn from(p: PerPage) -> Self {
        p.config()
    }
}
impl From<SortedMerge> for FlushConfig {
    fn from(p: SortedMerge) -> Self {
        p.config()
    }
}
impl From<GapMerge> for FlushConfig {
    fn from(p: GapMerge) -> Self {
        p.config()
    }
}
impl From<Vectored> for FlushConfig {
    fn from(p: Vectored) -> Self {
        p.config()
    }
}
impl From<VectoredGap> for FlushConfig {
    fn from(p: VectoredGap) -> Self {
        p.config()
    }
}
