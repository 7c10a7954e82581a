//! Scenarios: one experiment as a file. A scenario names a base configuration, the variants to
//! compare (each a set of overrides with the meaning of `recagent run --set`), the seeds every
//! variant runs with, and the `metrics.csv` columns to compare; `recagent scenario FILE` runs
//! every variant x seed as its own `recagent run` process and writes one comparison table.
//!
//! ```yaml
//! base: recagent-1000.yaml      # relative to this file, or `default` (the embedded config)
//! description: MF against MF with random items mixed in
//! set: {round: 20, agent_num: 200, checkpoint_every: 0}   # common overrides
//! seeds: [1, 2, 3]              # default: the base configuration's seed
//! variants:
//!   - name: MF
//!     set: {rec_model: MF}
//!   - name: MF+random1
//!     set: {rec_model: MF, rec_random_k: 1}
//! metrics: [entropy_shown, entropy_shown@last, coverage]
//! ```
//!
//! - `set` maps a configuration key (dotted for a section's key: `offline.temperature`) to a
//!   YAML value, exactly as `--set KEY=VALUE` (a section given whole replaces the section; a
//!   path resolves against the base configuration's directory). A variant's `set` applies
//!   after the common one. `seed`, `output_dir`, `output_file`, `log_file` and
//!   `interaction_path` are the runner's (one output folder per run) and refused here.
//! - A metric is a column of `metrics.csv` ([`crate::analysis::COLUMNS`]) with an optional
//!   summary over the run's rounds ([`Summary`]): `@mean`, `@last`, `@first`, `@slope`. A bare
//!   column takes its natural summary: the last round for the cumulative columns (`coverage`,
//!   `gini_exposure`, `gini_watches`, `top10_exposure_share`), the mean over rounds for the
//!   per-round ones.
//! - `population` (optional) makes a synthetic user population before the runs, for sizes
//!   beyond the data's users (see [`population`]).
//!
//! Every problem is an error naming the scenario file and line: unknown keys, an unknown metric
//! (with the nearest column), a variant override the configuration does not know or refuses,
//! duplicate variant names or seeds.

pub mod compare;
pub mod population;
pub mod run;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::analysis::COLUMNS;
use crate::config::validate::{add_line_to_unknown_field, tidy_parse_message};
use crate::config::SimConfig;

pub use compare::{compare, Comparison, ComparisonRow, VariantRuns};
pub use population::Population;
pub use run::{prepare_population, run_all, RunFailure, RunOutcome, RunSpec, RunnerOptions};

/// A scenario file that cannot be used: the file, the line (where known) and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{origin}{}: {message}", line.map(|l| format!(": line {l}")).unwrap_or_default())]
pub struct ScenarioError {
    /// The scenario file.
    pub origin: String,
    /// 1-based line, where the problem has one.
    pub line: Option<usize>,
    /// What is wrong, in the file's terms.
    pub message: String,
}

/// How a run's per-round values of one column become one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Summary {
    /// Mean over the rounds where the value is defined (an empty cell is a mean over nothing).
    Mean,
    /// The last round's value (empty when undefined there).
    Last,
    /// The first round's value.
    First,
    /// Least-squares slope of the value against the round number over the defined rounds
    /// (units per round; needs 2 defined rounds): `sum((r - r̄)(v - v̄)) / sum((r - r̄)^2)`.
    Slope,
}

impl Summary {
    /// The spelling after `@`.
    pub fn name(self) -> &'static str {
        match self {
            Summary::Mean => "mean",
            Summary::Last => "last",
            Summary::First => "first",
            Summary::Slope => "slope",
        }
    }

    const ALL: [Summary; 4] = [Summary::Mean, Summary::Last, Summary::First, Summary::Slope];

    /// Applies the summary to one run's column (`None` = empty cell).
    pub fn apply(self, values: &[Option<f64>]) -> Option<f64> {
        match self {
            Summary::Mean => {
                let v: Vec<f64> = values.iter().flatten().copied().collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            }
            Summary::Last => values.last().copied().flatten(),
            Summary::First => values.first().copied().flatten(),
            Summary::Slope => {
                let pts: Vec<(f64, f64)> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (i as f64 + 1.0, v)))
                    .collect();
                if pts.len() < 2 {
                    return None;
                }
                let n = pts.len() as f64;
                let (mr, mv) = (
                    pts.iter().map(|p| p.0).sum::<f64>() / n,
                    pts.iter().map(|p| p.1).sum::<f64>() / n,
                );
                let sxy: f64 = pts.iter().map(|(r, v)| (r - mr) * (v - mv)).sum();
                let sxx: f64 = pts.iter().map(|(r, _)| (r - mr) * (r - mr)).sum();
                Some(sxy / sxx)
            }
        }
    }
}

/// The `metrics.csv` columns whose value is cumulative over the run (their bare name means
/// the last round).
pub const CUMULATIVE_COLUMNS: &[&str] = &[
    "coverage",
    "gini_exposure",
    "gini_watches",
    "top10_exposure_share",
];

/// One metric to compare: a `metrics.csv` column and how its rounds are summarised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricSpec {
    /// The column name.
    pub column: String,
    /// The summary over rounds.
    pub summary: Summary,
}

impl MetricSpec {
    /// Parses `column` or `column@summary`, checking the column against
    /// [`crate::analysis::COLUMNS`].
    ///
    /// # Errors
    /// A message naming the unknown column (with the nearest known one) or summary.
    pub fn parse(spelled: &str) -> Result<Self, String> {
        let (col, summary) = match spelled.split_once('@') {
            Some((c, s)) => (c.trim(), Some(s.trim())),
            None => (spelled.trim(), None),
        };
        if !COLUMNS.contains(&col) {
            let near = COLUMNS
                .iter()
                .map(|k| (strsim::levenshtein(k, col), *k))
                .filter(|(d, _)| *d <= 3)
                .min();
            let hint = near.map_or_else(
                || " (see the README's metrics table for the columns)".to_string(),
                |(_, k)| format!("; did you mean `{k}`?"),
            );
            return Err(format!(
                "unknown metric `{col}`: not a metrics.csv column{hint}"
            ));
        }
        let summary = match summary {
            None if CUMULATIVE_COLUMNS.contains(&col) => Summary::Last,
            None => Summary::Mean,
            Some(s) => *Summary::ALL.iter().find(|x| x.name() == s).ok_or_else(|| {
                format!("`{spelled}`: unknown summary `@{s}`: allowed @mean, @last, @first, @slope")
            })?,
        };
        Ok(Self {
            column: col.to_string(),
            summary,
        })
    }

    /// The explicit spelling, `column@summary` (the comparison table's label).
    pub fn label(&self) -> String {
        format!("{}@{}", self.column, self.summary.name())
    }
}

/// One `KEY: VALUE` override, as `--set KEY=VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// The configuration key (dotted for a section's key).
    pub key: String,
    /// The value (YAML read into JSON).
    pub value: serde_json::Value,
    /// 1-based line of the key in the scenario file (0 for one the runner adds).
    pub line: usize,
}

impl Override {
    /// The `(key, value)` pair [`SimConfig::with_overrides`] takes: the value in JSON, which
    /// is YAML.
    pub fn pair(&self) -> (String, String) {
        (self.key.clone(), self.value.to_string())
    }

    /// The `KEY=VALUE` argument of `recagent run --set`.
    pub fn set_arg(&self) -> String {
        format!("{}={}", self.key, self.value)
    }
}

/// The configuration a scenario starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    /// The embedded default configuration (`base: default`).
    Default,
    /// A configuration file (absolute, or relative to the working directory).
    File(PathBuf),
}

/// One variant: a name and its overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantSpec {
    /// Its name (a folder name: letters, digits, `_`, `-`, `+`, `.`, `=`).
    pub name: String,
    /// Its overrides, applied after the common ones.
    pub set: Vec<Override>,
    /// 1-based line of its `name`.
    pub line: usize,
}

/// A parsed and checked scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The scenario file.
    pub path: PathBuf,
    /// Its description, if it has one.
    pub description: Option<String>,
    /// The base configuration.
    pub base: Base,
    /// The base configuration, loaded (and validated).
    pub base_config: SimConfig,
    /// Common overrides.
    pub set: Vec<Override>,
    /// Seeds; every variant runs once per seed.
    pub seeds: Vec<u64>,
    /// Synthetic population, if asked for.
    pub population: Option<Population>,
    /// The variants, in file order.
    pub variants: Vec<VariantSpec>,
    /// The metrics to compare, in file order.
    pub metrics: Vec<MetricSpec>,
}

/// Override keys the runner sets per run.
const RUNNER_KEYS: &[&str] = &[
    "seed",
    "output_dir",
    "output_file",
    "log_file",
    "interaction_path",
];

#[derive(Default)]
struct RawOverrides(Vec<(Spanned<String>, serde_json::Value)>);

impl<'de> Deserialize<'de> for RawOverrides {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawOverrides;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of configuration keys to values")
            }
            fn visit_unit<E>(self) -> Result<RawOverrides, E> {
                Ok(RawOverrides::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawOverrides, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<Spanned<String>, serde_json::Value>()? {
                    out.push((k, v));
                }
                Ok(RawOverrides(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    name: Spanned<String>,
    #[serde(default)]
    set: RawOverrides,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    base: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    set: RawOverrides,
    #[serde(default)]
    seeds: Option<Spanned<Vec<u64>>>,
    #[serde(default)]
    population: Option<Spanned<population::RawPopulation>>,
    variants: Spanned<Vec<RawVariant>>,
    metrics: Spanned<Vec<Spanned<String>>>,
}

fn line_of<T>(s: &Spanned<T>) -> Option<usize> {
    let l = s.referenced.line() as usize;
    (l > 0).then_some(l)
}

impl Scenario {
    /// Reads and checks a scenario file (see the module docs).
    ///
    /// # Errors
    /// [`ScenarioError`] naming the file and line.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            origin: path.display().to_string(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks scenario text; `path` names it in errors and is what relative paths
    /// (the base configuration, a population's profiles) resolve against.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the file and line.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ScenarioError> {
        let origin = path.display().to_string();
        let err = |line: Option<usize>, message: String| ScenarioError {
            origin: origin.clone(),
            line,
            message,
        };
        let raw: RawScenario = serde_saphyr::from_str(text).map_err(|e| {
            let msg = add_line_to_unknown_field(&tidy_parse_message(&e.to_string(), &origin), text);
            let msg = msg
                .strip_prefix(&format!("{origin}: "))
                .unwrap_or(&msg)
                .to_string();
            err(None, msg)
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));

        let base_line = line_of(&raw.base);
        let (base, base_config) = match raw.base.value.trim() {
            "default" => (
                Base::Default,
                SimConfig::embedded().map_err(|e| err(base_line, format!("base: {e}")))?,
            ),
            "" => {
                return Err(err(
                    base_line,
                    "base: empty: name a configuration file or `default`".into(),
                ))
            }
            p => {
                let file = dir.join(p);
                let cfg = SimConfig::load(&file).map_err(|e| {
                    err(
                        base_line,
                        format!("base configuration: {}", with_sources(&e)),
                    )
                })?;
                (Base::File(file), cfg)
            }
        };

        let metrics_line = line_of(&raw.metrics);
        if raw.metrics.value.is_empty() {
            return Err(err(
                metrics_line,
                "metrics: empty: name at least one metrics.csv column".into(),
            ));
        }
        let mut metrics: Vec<MetricSpec> = Vec::new();
        for m in &raw.metrics.value {
            let spec =
                MetricSpec::parse(&m.value).map_err(|e| err(line_of(m).or(metrics_line), e))?;
            if metrics.contains(&spec) {
                return Err(err(
                    line_of(m).or(metrics_line),
                    format!("metric `{}` is listed twice (as {})", m.value, spec.label()),
                ));
            }
            metrics.push(spec);
        }

        let seeds = match &raw.seeds {
            None => vec![base_config.seed],
            Some(s) => {
                if s.value.is_empty() {
                    return Err(err(line_of(s), "seeds: empty: leave it out for one run per variant with the base configuration's seed".into()));
                }
                let mut seen = BTreeSet::new();
                for x in &s.value {
                    if !seen.insert(*x) {
                        return Err(err(line_of(s), format!("seed {x} is listed twice")));
                    }
                }
                s.value.clone()
            }
        };

        let overrides = |o: &RawOverrides| -> Result<Vec<Override>, ScenarioError> {
            let mut out: Vec<Override> = Vec::new();
            for (k, v) in &o.0 {
                let line = line_of(k).unwrap_or(0);
                let key = k.value.trim().to_string();
                let top = key.split('.').next().unwrap_or_default();
                if RUNNER_KEYS.contains(&top) {
                    let what = if top == "seed" {
                        "list the seeds under `seeds:`".to_string()
                    } else {
                        "each run writes into its own folder under the scenario's --out".to_string()
                    };
                    return Err(err(
                        Some(line),
                        format!("`{key}` is set by the scenario runner: {what}"),
                    ));
                }
                out.push(Override {
                    key,
                    value: v.clone(),
                    line,
                });
            }
            Ok(out)
        };
        let set = overrides(&raw.set)?;

        let population = match &raw.population {
            None => None,
            Some(p) => Some(
                Population::from_raw(&p.value, dir)
                    .map_err(|e| err(line_of(p), format!("population: {e}")))?,
            ),
        };

        let variants_line = line_of(&raw.variants);
        if raw.variants.value.is_empty() {
            return Err(err(
                variants_line,
                "variants: empty: list at least one variant".into(),
            ));
        }
        let mut variants: Vec<VariantSpec> = Vec::new();
        for v in &raw.variants.value {
            let line = line_of(&v.name).unwrap_or(0);
            let name = v.name.value.trim().to_string();
            check_variant_name(&name).map_err(|m| err(Some(line), m))?;
            if variants.iter().any(|x| x.name == name) {
                return Err(err(Some(line), format!("variant `{name}` is listed twice")));
            }
            variants.push(VariantSpec {
                name,
                set: overrides(&v.set)?,
                line,
            });
        }

        let scenario = Scenario {
            path: path.to_path_buf(),
            description: raw.description,
            base,
            base_config,
            set,
            seeds,
            population,
            variants,
            metrics,
        };
        scenario.check_overrides()?;
        Ok(scenario)
    }

    /// The overrides the runner adds before the file's: the synthetic population's files
    /// and agent count, when there is a population (`users`, `relationships` are where they
    /// will be written).
    pub fn population_overrides(&self, users: &Path, relationships: &Path) -> Vec<Override> {
        let Some(p) = &self.population else {
            return Vec::new();
        };
        let path = |p: &Path| serde_json::Value::String(p.display().to_string());
        vec![
            Override {
                key: "user_path".into(),
                value: path(users),
                line: 0,
            },
            Override {
                key: "relationship_path".into(),
                value: path(relationships),
                line: 0,
            },
            Override {
                key: "agent_num".into(),
                value: p.agents.into(),
                line: 0,
            },
        ]
    }

    /// The configuration one variant runs with (before the seed): base, population, common
    /// and the variant's overrides.
    ///
    /// # Errors
    /// [`ScenarioError`] at the line of the override the configuration refuses.
    pub fn variant_config(
        &self,
        v: &VariantSpec,
        population: &[Override],
    ) -> Result<SimConfig, ScenarioError> {
        let origin = self.path.display().to_string();
        let all: Vec<&Override> = population.iter().chain(&self.set).chain(&v.set).collect();
        let pairs: Vec<(String, String)> = all.iter().map(|o| o.pair()).collect();
        let refused = |e: String| {
            // The overrides are the scenario's, not the command line's.
            let e = e.strip_prefix("command line: ").unwrap_or(&e).to_string();
            // The override the message names (`key` or `key=`), else the variant's line.
            let named = all.iter().rev().find(|o| {
                o.line > 0
                    && (e.contains(&format!("`{}`", o.key)) || e.contains(&format!("{}=", o.key)))
            });
            let line = named.map_or(v.line, |o| o.line);
            ScenarioError {
                origin: origin.clone(),
                line: Some(line),
                message: format!("variant `{}`: {e}", v.name),
            }
        };
        let cfg = self
            .base_config
            .with_overrides(&pairs)
            .map_err(|e| refused(e.to_string()))?;
        crate::sim::SimBuilder::new(cfg.clone())
            .check()
            .map_err(|e| refused(e.to_string()))?;
        Ok(cfg)
    }

    fn check_overrides(&self) -> Result<(), ScenarioError> {
        let pop = self.population_overrides(Path::new("users.csv"), Path::new("relationship.csv"));
        for v in &self.variants {
            self.variant_config(v, &pop)?;
        }
        Ok(())
    }
}

/// An error and its sources, `a: b: c`.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s = format!("{s}: {t}");
        }
        src = x.source();
    }
    s
}

/// A variant name becomes a folder: letters, digits and `_ - + . =`, not starting with a dot.
fn check_variant_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("variant name: empty".into());
    }
    if name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.' | '='))
    {
        return Err(format!(
            "variant name `{name}`: allowed characters are ASCII letters, digits and _ - + . = (not starting with a dot): it names the variant's output folder"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_metrics_take_their_natural_summary() {
        let m = MetricSpec::parse("entropy_shown").unwrap();
        assert_eq!(
            (m.column.as_str(), m.summary),
            ("entropy_shown", Summary::Mean)
        );
        assert_eq!(
            MetricSpec::parse("coverage").unwrap().summary,
            Summary::Last
        );
        assert_eq!(
            MetricSpec::parse("coverage@mean").unwrap().label(),
            "coverage@mean"
        );
        let e = MetricSpec::parse("entropy_shwn").unwrap_err();
        assert!(e.contains("did you mean `entropy_shown`?"), "{e}");
        let e = MetricSpec::parse("view_ratio@median").unwrap_err();
        assert!(e.contains("@median") && e.contains("@slope"), "{e}");
    }

    #[test]
    fn summaries_by_hand() {
        let v = [Some(3.0), None, Some(1.0), Some(2.0)];
        // Mean over the defined rounds: (3 + 1 + 2) / 3 = 2.
        assert_eq!(Summary::Mean.apply(&v), Some(2.0));
        assert_eq!(Summary::First.apply(&v), Some(3.0));
        assert_eq!(Summary::Last.apply(&v), Some(2.0));
        assert_eq!(Summary::Last.apply(&[Some(1.0), None]), None);
        // Points (1,3), (3,1), (4,2): r̄ = 8/3, v̄ = 2; sxy = (-5/3)(1) + (1/3)(-1) + (4/3)(0)
        // = -2; sxx = 25/9 + 1/9 + 16/9 = 42/9; slope = -2 / (42/9) = -18/42 = -3/7.
        let s = Summary::Slope.apply(&v).unwrap();
        assert!((s - (-3.0 / 7.0)).abs() < 1e-12, "{s}");
        assert_eq!(Summary::Slope.apply(&[Some(1.0), None]), None);
        assert_eq!(Summary::Mean.apply(&[None, None]), None);
    }
}
