//! The sweep's matrix: the TOML format of `sweep.toml`, its validation (every problem named
//! with the file, the key and the accepted values), the built-in `--quick` matrix, and the
//! expansion of a matrix into cells (one `bench` process each, per round).

use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::Context;
use serde::{Deserialize, Serialize, Serializer};

/// Every engine `bench --engine` accepts, in the order tables list them.
pub const ENGINES: [&str; 7] = [
    "cf-store",
    "cf-store-files",
    "raw",
    "raw-files",
    "redb",
    "manifold",
    "fjall",
];
/// The engines that take a flush policy (cf-store in one file, and one file per thread).
pub const CF_ENGINES: [&str; 2] = ["cf-store", "cf-store-files"];
/// The peer engines (other stores), compared against cf-store in the ratio tables.
pub const PEERS: [&str; 3] = ["redb", "manifold", "fjall"];
/// Flush policy kinds, in baseline-first order.
pub const POLICY_KINDS: [&str; 5] = [
    "per-page",
    "sorted-merge",
    "gap-merge",
    "vectored",
    "vectored-gap",
];
/// The policy short forms, for messages.
pub const POLICY_FORMS: &str =
    "per-page, sorted-merge[:MAX_RUN], gap-merge[:MAX_GAP[:MAX_RUN]], vectored, vectored-gap[:MAX_GAP]";
/// Key patterns (`bench --keys`).
pub const KEYS: [&str; 3] = ["sequential", "random", "overwrite"];
/// Durabilities (`bench --durability`).
pub const DURABILITIES: [&str; 2] = ["none", "immediate"];
/// Sizes, for messages.
pub const SIZE_FORMS: &str =
    "a whole number of bytes (1024) or of binary units (16K = 16KB = 16KiB = 16384; M/MB/MiB, G/GB/GiB)";

/// The widest gap a policy may bridge.
pub const MAX_GAP: u64 = 16 << 20;
/// The largest run cap of the copying policies.
pub const MAX_RUN: u64 = 1 << 30;
/// The largest value size a workload may ask for.
pub const MAX_VALUE_SIZE: u64 = 1 << 30;
/// The most writer threads a cell may ask for.
pub const MAX_THREADS: i64 = 1024;
/// The largest warm-up a sweep may ask for: 16 GiB.
const MAX_WARM_UP: u64 = 16 << 30;

/// The most rounds a sweep may ask for.
pub const MAX_ROUNDS: i64 = 1000;
/// Rounds when the file does not say.
pub const DEFAULT_ROUNDS: u32 = 3;
/// Seed when the file does not say.
pub const DEFAULT_SEED: u64 = 42;
/// Gap sizes when the file does not say.
pub const DEFAULT_GAP: Size = Size(16 << 10);

/// A byte count: parses `4096`, `16K`, `16KB`, `16KiB`, `1 MiB` (binary units, whole numbers
/// only) and prints the shortest exact form (`16KiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl fmt::Display for Size {
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

impl FromStr for Size {
    type Err = String;

    /// Parses a size; the error is the reason, naming the accepted forms.
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if text.contains('.') {
            return Err(format!("`{s}`: fractions are not accepted; write {SIZE_FORMS}"));
        }
        let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        if digits == 0 {
            return Err(format!("`{s}` is not a size; write {SIZE_FORMS}"));
        }
        let number: u64 = text[..digits]
            .parse()
            .map_err(|_| format!("`{s}` is too large"))?;
        let unit: u64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            other => return Err(format!("`{s}`: unknown unit `{other}`; write {SIZE_FORMS}")),
        };
        number
            .checked_mul(unit)
            .map(Size)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size from a TOML value: an integer (bytes) or a string (`"16KiB"`).
fn size_from_toml(value: &toml::Value) -> Result<Size, String> {
    match value {
        toml::Value::Integer(n) => u64::try_from(*n)
            .map(Size)
            .map_err(|_| format!("{n} is negative; write {SIZE_FORMS}")),
        toml::Value::String(s) => s.parse(),
        other => Err(format!("{other} is not a size; write {SIZE_FORMS}")),
    }
}

/// A flush policy short form, parsed: its kind and its size parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyForm {
    /// One of [`POLICY_KINDS`].
    pub kind: &'static str,
    /// Its parameters, in short-form order (`gap-merge:MAX_GAP:MAX_RUN`).
    pub params: Vec<Size>,
}

impl PolicyForm {
    /// Whether this is a gap policy with no gap given, to be expanded once per configured gap.
    pub fn wants_gap(&self) -> bool {
        self.params.is_empty() && matches!(self.kind, "gap-merge" | "vectored-gap")
    }
}

impl fmt::Display for PolicyForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind)?;
        for p in &self.params {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

impl FromStr for PolicyForm {
    type Err = String;

    /// Parses `per-page`, `sorted-merge[:MAX_RUN]`, `gap-merge[:MAX_GAP[:MAX_RUN]]`,
    /// `vectored`, `vectored-gap[:MAX_GAP]`, with gaps at most 16 MiB and run caps 1 byte to
    /// 1 GiB. The error names the accepted forms.
    fn from_str(input: &str) -> Result<Self, String> {
        let mut parts = input.trim().split(':');
        let name = parts.next().unwrap_or_default().trim();
        let Some(kind) = POLICY_KINDS.into_iter().find(|k| *k == name) else {
            return Err(format!(
                "`{input}` is not a flush policy; accepted: {POLICY_FORMS}"
            ));
        };
        // What each parameter position means, per kind.
        let slots: &[&str] = match kind {
            "sorted-merge" => &["MAX_RUN"],
            "gap-merge" => &["MAX_GAP", "MAX_RUN"],
            "vectored-gap" => &["MAX_GAP"],
            _ => &[],
        };
        let texts: Vec<&str> = parts.collect();
        if texts.len() > slots.len() {
            return Err(format!(
                "`{input}`: {kind} takes at most {} parameter(s); accepted: {POLICY_FORMS}",
                slots.len()
            ));
        }
        let mut params = Vec::new();
        for (text, slot) in texts.iter().zip(slots) {
            let size: Size = text.parse().map_err(|e| format!("`{input}`: {slot}: {e}"))?;
            match *slot {
                "MAX_GAP" if size.0 > MAX_GAP => {
                    return Err(format!("`{input}`: MAX_GAP {size} is over the limit of 16MiB"));
                }
                "MAX_RUN" if size.0 == 0 || size.0 > MAX_RUN => {
                    return Err(format!("`{input}`: MAX_RUN {size} must be 1 byte to 1GiB"));
                }
                _ => {}
            }
            params.push(size);
        }
        Ok(PolicyForm { kind, params })
    }
}

/// One workload: what each writer thread does in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// Its name in tables and file names (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Key pattern, one of [`KEYS`].
    pub keys: String,
    /// Bytes per value.
    pub value_size: u64,
    /// Inserts per transaction.
    pub ops_per_txn: u64,
    /// Transactions per thread.
    pub txns: u64,
    /// Whether each run's timed phase ends only once every writer's commits are durable
    /// (`bench --durable-end`), so that engines that write their commits without durability
    /// later (redb, at its drop) are timed to the same point as the others.
    pub durable_end: bool,
}

impl Workload {
    /// One line for headings: `sequential keys, 1KiB values, 100 txns x 1000 ops per thread`.
    pub fn describe(&self) -> String {
        format!(
            "{} keys, {} values, {} txns x {} ops per thread{}",
            self.keys,
            Size(self.value_size),
            self.txns,
            self.ops_per_txn,
            if self.durable_end {
                ", timed until every writer's commits are durable"
            } else {
                ""
            }
        )
    }
}

/// A validated sweep matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// Where it came from: a file path, or `built-in --quick matrix`.
    pub source: String,
    /// Rounds: every cell runs once per round.
    pub rounds: u32,
    /// Seed passed to every run.
    pub seed: u64,
    /// Bytes of zeros written to a file and deleted before each run (0: none). On a virtual
    /// machine that hands free memory back to its host, a run that needs more fresh page
    /// cache than the run before it freed starts slow (the host faults each page in), and
    /// one file's serial copies suffer most; a warm-up frees recently used memory for it.
    pub warm_up: Size,
    /// Engines, in [`ENGINES`] spelling.
    pub engines: Vec<String>,
    /// Policies as configured (kinds or short forms); see [`Matrix::policy_forms`].
    pub policies: Vec<String>,
    /// Gaps the bare gap policies are expanded with.
    pub gaps: Vec<Size>,
    /// Writer thread counts.
    pub threads: Vec<u32>,
    /// Durabilities.
    pub durability: Vec<String>,
    /// Workloads.
    pub workloads: Vec<Workload>,
}

/// One cell: a workload, durability, thread count, engine and (for cf-store engines) policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Index into [`Matrix::workloads`].
    pub workload: usize,
    /// Workload name.
    pub workload_name: String,
    /// Durability.
    pub durability: String,
    /// Writer threads.
    pub threads: u32,
    /// Engine.
    pub engine: String,
    /// Policy short form; `None` for engines without one.
    pub policy: Option<String>,
}

impl Cell {
    /// `engine/policy` (`cf-store/vectored`), or the engine alone.
    pub fn variant(&self) -> String {
        variant(&self.engine, self.policy.as_deref())
    }

    /// For progress lines and failures: `W1 none T=4 cf-store/vectored`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} T={} {}",
            self.workload_name,
            self.durability,
            self.threads,
            self.variant()
        )
    }

    /// The `bench` arguments of this cell, its files going into `dir`.
    pub fn bench_args(&self, workload: &Workload, seed: u64, dir: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--engine".into(), self.engine.clone().into()];
        if let Some(policy) = &self.policy {
            args.extend(["--policy".into(), policy.into()]);
        }
        let pairs = [
            ("--threads", self.threads.to_string()),
            ("--txns", workload.txns.to_string()),
            ("--ops-per-txn", workload.ops_per_txn.to_string()),
            ("--value-size", workload.value_size.to_string()),
            ("--keys", workload.keys.clone()),
            ("--durability", self.durability.clone()),
        ];
        for (flag, value) in pairs {
            args.push(flag.into());
            args.push(value.into());
        }
        if workload.durable_end {
            args.push("--durable-end".into());
        }
        args.extend([
            "--dir".into(),
            dir.into(),
            "--seed".into(),
            seed.to_string().into(),
        ]);
        args
    }
}

/// `engine/policy`, or the engine alone.
pub fn variant(engine: &str, policy: Option<&str>) -> String {
    match policy {
        Some(p) => format!("{engine}/{p}"),
        None => engine.to_owned(),
    }
}

impl Matrix {
    /// The policy short forms the cf-store engines run: bare `gap-merge` and `vectored-gap`
    /// once per gap (`gap-merge:16KiB`), everything else as written (canonical form).
    pub fn policy_forms(&self) -> Vec<String> {
        let mut out = Vec::new();
        for text in &self.policies {
            // Validated at construction; an unparsable entry is skipped rather than panicking.
            let Ok(form) = text.parse::<PolicyForm>() else {
                continue;
            };
            if form.wants_gap() {
                out.extend(self.gaps.iter().map(|g| format!("{}:{g}", form.kind)));
            } else {
                out.push(form.to_string());
            }
        }
        out
    }

    /// The `(engine, policy)` variants in table order: each cf-store engine with each policy
    /// form, every other engine once with no policy.
    pub fn variants(&self) -> Vec<(String, Option<String>)> {
        let forms = self.policy_forms();
        let mut out = Vec::new();
        for engine in &self.engines {
            if CF_ENGINES.contains(&engine.as_str()) {
                out.extend(forms.iter().map(|p| (engine.clone(), Some(p.clone()))));
            } else {
                out.push((engine.clone(), None));
            }
        }
        out
    }

    /// Every cell, ordered workload, durability, variant, threads. A round runs them all once.
    pub fn cells(&self) -> Vec<Cell> {
        let variants = self.variants();
        let mut out = Vec::new();
        for (w, workload) in self.workloads.iter().enumerate() {
            for durability in &self.durability {
                for (engine, policy) in &variants {
                    for &threads in &self.threads {
                        out.push(Cell {
                            workload: w,
                            workload_name: workload.name.clone(),
                            durability: durability.clone(),
                            threads,
                            engine: engine.clone(),
                            policy: policy.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// The order round `round` (from 1) runs the cells in, as indices into [`Matrix::cells`].
    ///
    /// Within one workload and durability, the cells run twin pair by twin pair, in the
    /// matrix's engine order: a pair is an engine and its one-file or file-per-thread twin
    /// (`cf-store` and `cf-store-files` with one policy, `raw` and `raw-files`; a peer is a
    /// pair alone), and a pair runs its thread counts in turn, the twins side by side at each
    /// (`cf-store` T=1, `cf-store-files` T=1, `cf-store` T=2, ...). Every second round runs in
    /// reverse, so that neither twin always goes first. So the two cells of a twin ratio
    /// (target 3) run one after the other, and those of a thread-count ratio of one variant
    /// (target 2) at most a pair's cells apart, while this VM drifts between a fast and a slow
    /// state within minutes (ARCHITECTURE.md, "The sweep runs twins side by side").
    pub fn round_order(&self, round: u32) -> Vec<usize> {
        let variants = self.variants();
        let forms = self.policy_forms();
        let position = |list: &[String], item: &str| list.iter().position(|x| x == item);
        // Where a variant runs within its group: by the first engine of its twin pair, then
        // policy, then engine.
        let rank: Vec<(usize, usize, usize)> = variants
            .iter()
            .map(|(engine, policy)| {
                let base = engine.strip_suffix("-files").unwrap_or(engine);
                let pair = position(&self.engines, base)
                    .or_else(|| position(&self.engines, engine))
                    .unwrap_or(usize::MAX);
                let policy = policy.as_deref().and_then(|p| position(&forms, p)).unwrap_or(0);
                (
                    pair,
                    policy,
                    position(&self.engines, engine).unwrap_or(usize::MAX),
                )
            })
            .collect();
        // `cells` runs workload, durability, variant, threads: index arithmetic finds each
        // cell's workload and durability, variant and thread count.
        let (nv, nt) = (variants.len(), self.threads.len());
        let mut order: Vec<usize> = (0..self.cells().len()).collect();
        order.sort_by_key(|&i| {
            let (group, variant, threads) = (i / (nv * nt), (i / nt) % nv, i % nt);
            let (pair, policy, engine) = rank[variant];
            (group, pair, policy, threads, engine)
        });
        if round.is_multiple_of(2) {
            order.reverse();
        }
        order
    }

    /// Runs in the whole sweep: cells times rounds.
    pub fn run_count(&self) -> usize {
        self.cells().len() * self.rounds as usize
    }
}

/// The built-in `--quick` matrix: W1 shortened to 20 transactions a thread, all seven engines,
/// policies per-page, vectored and vectored-gap (16 KiB), threads 1, 2, 4, 8, both
/// durabilities, 2 rounds: 88 cells, 176 runs (see the report in `sweep/mod.rs`).
pub fn quick() -> Matrix {
    Matrix {
        source: "built-in --quick matrix".into(),
        rounds: 2,
        seed: DEFAULT_SEED,
        warm_up: Size(0),
        engines: ENGINES.iter().map(|e| (*e).to_owned()).collect(),
        policies: ["per-page", "vectored", "vectored-gap"]
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
        gaps: vec![DEFAULT_GAP],
        threads: vec![1, 2, 4, 8],
        durability: DURABILITIES.iter().map(|d| (*d).to_owned()).collect(),
        workloads: vec![Workload {
            name: "W1".into(),
            keys: "sequential".into(),
            value_size: 1024,
            ops_per_txn: 1000,
            txns: 20,
            durable_end: false,
        }],
    }
}

/// Reads and validates a sweep config file.
pub fn load(path: &Path) -> anyhow::Result<Matrix> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read sweep config {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates a sweep config; `file` names it in errors. Every problem found is
/// reported at once, each naming its key and the accepted values.
pub fn parse(text: &str, file: &str) -> anyhow::Result<Matrix> {
    let raw: RawFile =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{file}: {}", e.to_string().trim_end()))?;
    check(raw, file).map_err(|problems| {
        let n = problems.len();
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!(
            "{file}: {n} problem{} in the sweep config:\n{}",
            if n == 1 { "" } else { "s" },
            list.join("\n")
        )
    })
}

/// The file as written; [`check`] turns it into a [`Matrix`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    rounds: Option<i64>,
    seed: Option<i64>,
    warm_up: Option<toml::Value>,
    matrix: RawMatrix,
    #[serde(default)]
    workload: Vec<RawWorkload>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    engines: Vec<String>,
    #[serde(default)]
    policies: Vec<String>,
    gaps: Option<Vec<toml::Value>>,
    threads: Vec<i64>,
    durability: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    name: String,
    keys: String,
    value_size: toml::Value,
    ops_per_txn: i64,
    txns: i64,
    #[serde(default)]
    durable_end: bool,
}

/// Checks that `list` holds only `accepted` values, each once.
fn check_choices(key: &str, list: &[String], accepted: &[&str], problems: &mut Vec<String>) {
    if list.is_empty() {
        problems.push(format!("{key}: empty; accepted: {}", accepted.join(", ")));
    }
    for (i, item) in list.iter().enumerate() {
        if !accepted.contains(&item.as_str()) {
            problems.push(format!(
                "{key}[{i}]: unknown value \"{item}\"; accepted: {}",
                accepted.join(", ")
            ));
        } else if list[..i].contains(item) {
            problems.push(format!("{key}[{i}]: \"{item}\" is listed twice"));
        }
    }
}

/// A positive count in `1..=max`.
fn check_count(key: &str, value: i64, max: i64, problems: &mut Vec<String>) -> u64 {
    if value < 1 || value > max {
        problems.push(format!("{key}: {value} is out of range; accepted: 1 to {max}"));
        return 1;
    }
    value.unsigned_abs()
}

fn check(raw: RawFile, file: &str) -> Result<Matrix, Vec<String>> {
    let mut problems = Vec::new();
    let p = &mut problems;

    let rounds = raw.rounds.map_or(u64::from(DEFAULT_ROUNDS), |r| {
        check_count("rounds", r, MAX_ROUNDS, p)
    });
    let seed = match raw.seed {
        None => DEFAULT_SEED,
        Some(s) => u64::try_from(s).unwrap_or_else(|_| {
            p.push(format!("seed: {s} is negative; accepted: 0 or more"));
            0
        }),
    };

    let warm_up = match raw.warm_up.as_ref().map(size_from_toml) {
        None => Size(0),
        Some(Ok(size)) if size.0 <= MAX_WARM_UP => size,
        Some(Ok(size)) => {
            p.push(format!("warm_up: {size} is over the limit; accepted: 0 to 16GiB"));
            Size(0)
        }
        Some(Err(e)) => {
            p.push(format!("warm_up: {e}"));
            Size(0)
        }
    };

    let m = raw.matrix;
    check_choices("matrix.engines", &m.engines, &ENGINES, p);
    check_choices("matrix.durability", &m.durability, &DURABILITIES, p);

    let gaps: Vec<Size> = match &m.gaps {
        None => vec![DEFAULT_GAP],
        Some(list) => {
            let mut gaps = Vec::new();
            for (i, v) in list.iter().enumerate() {
                match size_from_toml(v) {
                    Err(e) => p.push(format!("matrix.gaps[{i}]: {e}")),
                    Ok(g) if g.0 > MAX_GAP => {
                        p.push(format!(
                            "matrix.gaps[{i}]: {g} is over the limit; accepted: 0 to 16MiB"
                        ));
                    }
                    Ok(g) if gaps.contains(&g) => p.push(format!("matrix.gaps[{i}]: {g} is listed twice")),
                    Ok(g) => gaps.push(g),
                }
            }
            gaps
        }
    };

    let mut forms = Vec::new();
    for (i, text) in m.policies.iter().enumerate() {
        match text.parse::<PolicyForm>() {
            Ok(form) => {
                if form.wants_gap() && m.gaps.as_ref().is_some_and(Vec::is_empty) {
                    p.push(format!(
                        "matrix.policies[{i}]: \"{text}\" needs a gap, but matrix.gaps is empty; \
                         give gaps (e.g. [\"16KiB\"]) or write {}:SIZE",
                        form.kind
                    ));
                }
                forms.push(form);
            }
            Err(e) => p.push(format!("matrix.policies[{i}]: {e}")),
        }
    }
    let wants_policy = m.engines.iter().any(|e| CF_ENGINES.contains(&e.as_str()));
    if wants_policy && m.policies.is_empty() {
        p.push(format!(
            "matrix.policies: empty, but engines {} need at least one; accepted: {POLICY_FORMS}",
            CF_ENGINES.join(" and ")
        ));
    }

    if m.threads.is_empty() {
        p.push(format!(
            "matrix.threads: empty; accepted: counts from 1 to {MAX_THREADS}"
        ));
    }
    let mut threads = Vec::new();
    for (i, &t) in m.threads.iter().enumerate() {
        let t = check_count(&format!("matrix.threads[{i}]"), t, MAX_THREADS, p) as u32;
        if threads.contains(&t) {
            p.push(format!("matrix.threads[{i}]: {t} is listed twice"));
        }
        threads.push(t);
    }

    if raw.workload.is_empty() {
        p.push(
            "workload: none given; add [[workload]] tables with name, keys, value_size, ops_per_txn, txns"
                .to_owned(),
        );
    }
    let mut workloads: Vec<Workload> = Vec::new();
    for (i, w) in raw.workload.into_iter().enumerate() {
        let key = format!("workload[{i}]");
        let name_ok = !w.name.is_empty()
            && w.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            p.push(format!(
                "{key}.name: \"{}\" is not a usable name; accepted: letters, digits, '-', '_', '.'",
                w.name
            ));
        } else if workloads.iter().any(|o| o.name == w.name) {
            p.push(format!("{key}.name: \"{}\" is used twice", w.name));
        }
        if !KEYS.contains(&w.keys.as_str()) {
            p.push(format!(
                "{key}.keys: unknown value \"{}\"; accepted: {}",
                w.keys,
                KEYS.join(", ")
            ));
        }
        let value_size = match size_from_toml(&w.value_size) {
            Ok(s) if s.0 >= 1 && s.0 <= MAX_VALUE_SIZE => s.0,
            Ok(s) => {
                p.push(format!(
                    "{key}.value_size: {s} is out of range; accepted: 1 byte to 1GiB"
                ));
                1
            }
            Err(e) => {
                p.push(format!("{key}.value_size: {e}"));
                1
            }
        };
        let ops_per_txn = check_count(&format!("{key}.ops_per_txn"), w.ops_per_txn, 100_000_000, p);
        let txns = check_count(&format!("{key}.txns"), w.txns, 100_000_000, p);
        workloads.push(Workload {
            name: w.name,
            keys: w.keys,
            value_size,
            ops_per_txn,
            txns,
            durable_end: w.durable_end,
        });
    }

    let matrix = Matrix {
        source: file.to_owned(),
        rounds: rounds as u32,
        seed,
        warm_up,
        engines: m.engines,
        policies: forms.iter().map(ToString::to_string).collect(),
        gaps,
        threads,
        durability: m.durability,
        workloads,
    };
    let expanded = matrix.policy_forms();
    for (i, form) in expanded.iter().enumerate() {
        if expanded[..i].contains(form) {
            p.push(format!(
                "matrix.policies: \"{form}\" comes out twice (after expanding gap policies once per gap)"
            ));
        }
    }
    if problems.is_empty() {
        Ok(matrix)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
rounds = 2
[matrix]
engines = ["cf-store", "raw"]
policies = ["per-page", "gap-merge", "vectored-gap"]
gaps = ["4KiB", 65536]
threads = [1, 4]
durability = ["none"]

[[workload]]
name = "W1"
keys = "sequential"
value_size = "1KiB"
ops_per_txn = 1000
txns = 100
"#;

    fn err(text: &str) -> String {
        format!("{:#}", parse(text, "cfg.toml").unwrap_err())
    }

    fn with(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "{from}");
        GOOD.replacen(from, to, 1)
    }

    #[test]
    fn sizes_parse_as_binary_whole_numbers() {
        for (text, bytes) in [
            ("4096", 4096),
            ("16K", 16384),
            ("16KB", 16384),
            ("16KiB", 16384),
            ("16 kib", 16384),
            ("1MiB", 1 << 20),
            ("2G", 2 << 30),
            ("0", 0),
        ] {
            assert_eq!(text.parse::<Size>(), Ok(Size(bytes)), "{text}");
        }
        for bad in [
            "",
            "1.5KiB",
            "-1",
            "KiB",
            "16XB",
            "99999999999999999999",
            "17179869184GiB",
        ] {
            let e = bad.parse::<Size>().unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert_eq!(Size(16384).to_string(), "16KiB");
        assert_eq!(Size(1 << 20).to_string(), "1MiB");
        assert_eq!(Size(1000).to_string(), "1000");
    }

    #[test]
    fn policy_forms_parse_and_print_canonically() {
        let f: PolicyForm = "gap-merge:16K:4MB".parse().unwrap();
        assert_eq!(f.to_string(), "gap-merge:16KiB:4MiB");
        assert!(!f.wants_gap());
        assert!("gap-merge".parse::<PolicyForm>().unwrap().wants_gap());
        assert!("vectored-gap".parse::<PolicyForm>().unwrap().wants_gap());
        assert!(!"sorted-merge".parse::<PolicyForm>().unwrap().wants_gap());
        assert_eq!(
            "sorted-merge:1MiB".parse::<PolicyForm>().unwrap().params,
            [Size(1 << 20)]
        );
        for bad in [
            "zigzag",
            "vectored:4KiB",
            "per-page:1",
            "gap-merge:1:2:3",
            "gap-merge:17MiB",
            "sorted-merge:0",
            "sorted-merge:2GiB",
            "vectored-gap:1.5KiB",
        ] {
            assert!(bad.parse::<PolicyForm>().is_err(), "{bad}");
        }
        let e = "zigzag".parse::<PolicyForm>().unwrap_err();
        assert!(e.contains("zigzag") && e.contains(POLICY_FORMS), "{e}");
    }

    #[test]
    fn a_good_config_parses_and_expands_gaps() {
        let m = parse(GOOD, "cfg.toml").unwrap();
        assert_eq!(m.rounds, 2);
        assert_eq!(m.seed, DEFAULT_SEED);
        assert_eq!(m.gaps, [Size(4096), Size(65536)]);
        assert_eq!(
            m.policy_forms(),
            [
                "per-page",
                "gap-merge:4KiB",
                "gap-merge:64KiB",
                "vectored-gap:4KiB",
                "vectored-gap:64KiB"
            ]
        );
        assert_eq!(m.workloads[0].value_size, 1024);
        // 5 cf-store policies + raw once, x 2 thread counts x 1 durability x 1 workload.
        let cells = m.cells();
        assert_eq!(cells.len(), (5 + 1) * 2);
        assert_eq!(m.run_count(), 24);
        assert!(cells
            .iter()
            .filter(|c| c.engine == "raw")
            .all(|c| c.policy.is_none()));
        assert!(cells
            .iter()
            .filter(|c| c.engine == "cf-store")
            .all(|c| c.policy.is_some()));
        assert_eq!(cells[0].describe(), "W1 none T=1 cf-store/per-page");
    }

    #[test]
    fn policies_apply_only_to_cf_store_engines() {
        let text = with(
            r#"engines = ["cf-store", "raw"]"#,
            r#"engines = ["cf-store", "cf-store-files", "redb", "fjall"]"#,
        );
        let m = parse(&text, "cfg.toml").unwrap();
        assert_eq!(m.variants().len(), 5 + 5 + 1 + 1);
        assert_eq!(m.cells().len(), 12 * 2);
        // No cf-store engine: policies are not needed, and peers run once per cell.
        let text = with(
            r#"engines = ["cf-store", "raw"]"#,
            r#"engines = ["raw", "manifold"]"#,
        )
        .replacen(r#"policies = ["per-page", "gap-merge", "vectored-gap"]"#, "", 1);
        let m = parse(&text, "cfg.toml").unwrap();
        assert_eq!(m.cells().len(), 2 * 2);
    }

    #[test]
    fn default_gaps_rounds_and_seed() {
        let text =
            GOOD.replacen("rounds = 2\n", "seed = 7\n", 1)
                .replacen(r#"gaps = ["4KiB", 65536]"#, "", 1);
        let m = parse(&text, "cfg.toml").unwrap();
        assert_eq!(m.rounds, DEFAULT_ROUNDS);
        assert_eq!(m.seed, 7);
        assert_eq!(
            m.policy_forms(),
            ["per-page", "gap-merge:16KiB", "vectored-gap:16KiB"]
        );
        // Explicit parameters are kept as written (canonical), not expanded.
        let text = GOOD.replacen(r#""gap-merge""#, r#""gap-merge:32K""#, 1);
        let forms = parse(&text, "cfg.toml").unwrap().policy_forms();
        assert_eq!(forms[1], "gap-merge:32KiB");
        assert_eq!(forms.len(), 4);
    }

    #[test]
    fn the_quick_matrix_is_valid_and_small() {
        let m = quick();
        assert_eq!(m.policy_forms(), ["per-page", "vectored", "vectored-gap:16KiB"]);
        // (2 cf-store engines x 3 policies + 5 others) x 4 threads x 2 durabilities.
        assert_eq!(m.cells().len(), 88);
        assert_eq!(m.run_count(), 176);
    }

    #[test]
    fn unknown_engine_names_file_key_and_accepted_values() {
        let e = err(&with(r#""raw"]"#, r#""rocks"]"#));
        assert!(e.contains("cfg.toml"), "{e}");
        assert!(e.contains("matrix.engines[1]") && e.contains("rocks"), "{e}");
        assert!(
            e.contains("cf-store, cf-store-files, raw, raw-files, redb, manifold, fjall"),
            "{e}"
        );
    }

    #[test]
    fn unknown_policy_is_refused() {
        let e = err(&with(r#""per-page""#, r#""per-pages""#));
        assert!(e.contains("matrix.policies[0]") && e.contains("per-pages"), "{e}");
        assert!(e.contains(POLICY_FORMS), "{e}");
        let e = err(&with(
            r#"policies = ["per-page", "gap-merge", "vectored-gap"]"#,
            "policies = []",
        ));
        assert!(e.contains("matrix.policies: empty"), "{e}");
        let e = err(&with(r#"gaps = ["4KiB", 65536]"#, "gaps = []"));
        assert!(e.contains("needs a gap"), "{e}");
        let e = err(&with(r#""per-page""#, r#""gap-merge:4KiB""#));
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn unknown_keys_and_durability_are_refused() {
        let e = err(&with(r#"keys = "sequential""#, r#"keys = "zipf""#));
        assert!(
            e.contains("cfg.toml") && e.contains("workload[0].keys") && e.contains("zipf"),
            "{e}"
        );
        assert!(e.contains("sequential, random, overwrite"), "{e}");
        let e = err(&with(
            r#"durability = ["none"]"#,
            r#"durability = ["eventually"]"#,
        ));
        assert!(
            e.contains("matrix.durability[0]") && e.contains("none, immediate"),
            "{e}"
        );
    }

    /// `warm_up` is a size of at most 16 GiB, none when absent.
    #[test]
    fn warm_up_is_a_bounded_size() {
        assert_eq!(parse(GOOD, "cfg.toml").unwrap().warm_up, Size(0));
        let m = parse(
            &with("rounds = 2", "rounds = 2\nwarm_up = \"1536MiB\""),
            "cfg.toml",
        )
        .unwrap();
        assert_eq!(m.warm_up, Size(1536 << 20));
        let e = err(&with("rounds = 2", "rounds = 2\nwarm_up = \"32GiB\""));
        assert!(e.contains("warm_up") && e.contains("16GiB"), "{e}");
        let e = err(&with("rounds = 2", "rounds = 2\nwarm_up = -1"));
        assert!(e.contains("warm_up: -1 is negative"), "{e}");
        let e = err(&with("rounds = 2", "rounds = 2\nwarm_up = true"));
        assert!(e.contains("warm_up: true is not a size"), "{e}");
    }

    #[test]
    fn zero_or_negative_counts_are_refused() {
        let e = err(&with("threads = [1, 4]", "threads = [0, 4]"));
        assert!(e.contains("matrix.threads[0]") && e.contains("1 to 1024"), "{e}");
        let e = err(&with("threads = [1, 4]", "threads = [-2]"));
        assert!(e.contains("matrix.threads[0]: -2"), "{e}");
        let e = err(&with("txns = 100", "txns = 0"));
        assert!(e.contains("workload[0].txns"), "{e}");
        let e = err(&with("ops_per_txn = 1000", "ops_per_txn = -1"));
        assert!(e.contains("workload[0].ops_per_txn"), "{e}");
        let e = err(&with("rounds = 2", "rounds = 0"));
        assert!(e.contains("rounds: 0"), "{e}");
        let e = err(&with("threads = [1, 4]", "threads = [4, 4]"));
        assert!(e.contains("twice"), "{e}");
        // Several problems are all reported at once.
        let e = err(&with("threads = [1, 4]", "threads = [0]").replacen("txns = 100", "txns = 0", 1));
        assert!(
            e.contains("2 problems") && e.contains("threads") && e.contains("txns"),
            "{e}"
        );
    }

    #[test]
    fn bad_sizes_are_refused() {
        let e = err(&with(r#"value_size = "1KiB""#, r#"value_size = "1.5KiB""#));
        assert!(
            e.contains("workload[0].value_size") && e.contains("fractions"),
            "{e}"
        );
        let e = err(&with(r#"value_size = "1KiB""#, "value_size = 0"));
        assert!(
            e.contains("workload[0].value_size") && e.contains("out of range"),
            "{e}"
        );
        let e = err(&with(r#"value_size = "1KiB""#, r#"value_size = "1 parsec""#));
        assert!(e.contains("unknown unit") && e.contains("16KiB"), "{e}");
        let e = err(&with(r#"gaps = ["4KiB", 65536]"#, r#"gaps = ["32MiB"]"#));
        assert!(e.contains("matrix.gaps[0]") && e.contains("16MiB"), "{e}");
        let e = err(&with(r#"gaps = ["4KiB", 65536]"#, "gaps = [-4096]"));
        assert!(e.contains("matrix.gaps[0]") && e.contains("negative"), "{e}");
        let e = err(&with(r#"gaps = ["4KiB", 65536]"#, "gaps = [true]"));
        assert!(e.contains("matrix.gaps[0]") && e.contains("not a size"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused_with_the_accepted_ones() {
        let e = err(&with("rounds = 2", "rounds = 2\nround_robin = true"));
        assert!(e.contains("cfg.toml") && e.contains("round_robin"), "{e}");
        assert!(
            e.contains("rounds") && e.contains("matrix") && e.contains("workload"),
            "{e}"
        );
        let e = err(&with("threads = [1, 4]", "threads = [1, 4]\nthread = [2]"));
        assert!(e.contains("`thread`") && e.contains("engines"), "{e}");
        let e = err(&with("txns = 100", "txns = 100\nvalue = 3"));
        assert!(e.contains("`value`") && e.contains("ops_per_txn"), "{e}");
        let e = err("[matrix]\nengines = [\"raw\"]\n");
        assert!(e.contains("missing field"), "{e}");
        let e = err(&with("[[workload]]", "").replacen("name = \"W1\"", "", 1));
        assert!(e.contains("cfg.toml"), "{e}");
    }

    #[test]
    fn workload_names_must_be_file_safe_and_unique() {
        let e = err(&with(r#"name = "W1""#, r#"name = "a/b""#));
        assert!(e.contains("workload[0].name"), "{e}");
        let twice = format!("{GOOD}\n[[workload]]\nname = \"W1\"\nkeys = \"random\"\nvalue_size = 64\nops_per_txn = 1\ntxns = 1\n");
        let e = err(&twice);
        assert!(e.contains("workload[1].name") && e.contains("used twice"), "{e}");
        let none = GOOD.split("[[workload]]").next().unwrap().to_owned();
        assert!(err(&none).contains("workload: none given"));
    }

    #[test]
    fn bench_arguments_follow_the_contract() {
        let m = parse(GOOD, "cfg.toml").unwrap();
        let cell = &m.cells()[2];
        let args: Vec<String> = cell
            .bench_args(&m.workloads[0], 9, Path::new("/t/d"))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "--engine cf-store --policy gap-merge:4KiB --threads 1 --txns 100 --ops-per-txn 1000 \
             --value-size 1024 --keys sequential --durability none --dir /t/d --seed 9"
        );
        let raw = m.cells().into_iter().find(|c| c.engine == "raw").unwrap();
        let args = raw.bench_args(&m.workloads[0], 9, Path::new("/t"));
        assert!(!args.iter().any(|a| a == "--policy"));
        assert!(!args.iter().any(|a| a == "--durable-end"), "not asked for");
        let durable = Workload {
            durable_end: true,
            ..m.workloads[0].clone()
        };
        let args = raw.bench_args(&durable, 9, Path::new("/t"));
        assert_eq!(args.iter().filter(|a| *a == "--durable-end").count(), 1);
    }

    #[test]
    fn a_workload_may_ask_for_a_durable_end() {
        let m = parse(GOOD, "cfg.toml").unwrap();
        assert!(m.workloads.iter().all(|w| !w.durable_end), "off unless asked");
        let asked = GOOD.replacen("[[workload]]", "[[workload]]\ndurable_end = true", 1);
        let m = parse(&asked, "cfg.toml").unwrap();
        assert!(m.workloads[0].durable_end);
        assert!(m.workloads[0].describe().ends_with("durable"));
        let bad = GOOD.replacen("[[workload]]", "[[workload]]\ndurable_end = 1", 1);
        assert!(parse(&bad, "cfg.toml").is_err(), "a bool, or nothing");
    }

    #[test]
    fn the_repository_sweep_toml_is_valid() {
        let path = crate::workspace::workspace_root().join("sweep.toml");
        let m = load(&path).unwrap();
        assert_eq!(m.engines.len(), ENGINES.len());
        assert_eq!(m.policies.len(), 5);
        assert_eq!(m.threads, [1, 2, 4, 8]);
        assert_eq!(m.durability, ["none", "immediate"]);
        assert_eq!(m.rounds, 3);
        let w1 = &m.workloads[0];
        assert_eq!(
            (
                w1.name.as_str(),
                w1.keys.as_str(),
                w1.value_size,
                w1.ops_per_txn,
                w1.txns
            ),
            ("W1", "sequential", 1024, 1000, 100)
        );
        for keys in KEYS {
            assert!(m.workloads.iter().any(|w| w.keys == keys), "{keys}");
        }
        assert!(m.workloads.iter().any(|w| w.value_size <= 128), "small values");
        assert!(
            m.workloads.iter().any(|w| w.ops_per_txn <= 10),
            "small transactions"
        );
    }

    /// Each round runs every cell once; a workload and durability run together; each
    /// variant's thread counts run within its pair's few cells; every engine runs right beside
    /// its twin (same policy and threads); and the next round runs in reverse. A sort key that
    /// forgot the twins, the pairs or the reversal fails.
    #[test]
    fn rounds_run_twins_side_by_side() {
        let m = quick();
        let cells = m.cells();
        let first = m.round_order(1);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..cells.len()).collect::<Vec<_>>(), "a permutation");
        let second = m.round_order(2);
        assert_eq!(second, first.iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(m.round_order(3), first);
        let group = |c: &Cell| (c.workload, c.durability.clone());
        let base = |c: &Cell| c.engine.strip_suffix("-files").unwrap_or(&c.engine).to_owned();
        let pair = |c: &Cell| (group(c), base(c), c.policy.clone());
        for order in [&first, &second] {
            let at: Vec<&Cell> = order.iter().map(|&i| &cells[i]).collect();
            // Each workload and durability, and each pair within it, runs as one stretch.
            let groups: Vec<String> = at.iter().map(|c| format!("{:?}", group(c))).collect();
            let pairs: Vec<String> = at.iter().map(|c| format!("{:?}", pair(c))).collect();
            for keys in [groups, pairs] {
                let mut seen = Vec::new();
                for (i, key) in keys.iter().enumerate() {
                    if i == 0 || keys[i - 1] != *key {
                        assert!(!seen.contains(key), "{key} split");
                        seen.push(key.clone());
                    }
                }
            }
            for (k, c) in at.iter().enumerate() {
                let Some(one_file) = c.engine.strip_suffix("-files") else {
                    continue;
                };
                let twin = |o: &&Cell| {
                    o.engine == one_file
                        && o.policy == c.policy
                        && o.threads == c.threads
                        && group(o) == group(c)
                };
                let beside = [k.checked_sub(1), Some(k + 1)]
                    .into_iter()
                    .flatten()
                    .filter_map(|j| at.get(j))
                    .any(twin);
                assert!(beside, "{} not beside its twin", c.describe());
            }
        }
        // Matrices without twins are ordered too.
        let lone = parse(GOOD, "good.toml").unwrap();
        let mut order = lone.round_order(1);
        order.sort_unstable();
        assert_eq!(order, (0..lone.cells().len()).collect::<Vec<_>>());
    }
}
