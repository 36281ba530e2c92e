//! Headline figures: the one line per case that the suite (`suite.rs`) puts in
//! its summary table and chart. Each mode writes its own with `--headlines
//! FILE.json` after its full report; the suite reads them back.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// The goal of a figure shown for information only (the summary's "met" cell is
/// then empty).
pub(crate) const INFORMATION: &str = "(information)";

/// One case's result against its reference (or its absolute goal).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Headline {
    /// The case, as BENCHMARKS.md names it ("1 GiB file by link").
    pub(crate) case: String,
    /// What it is compared with ("plain TCP copy + fsync"); empty for an absolute figure.
    pub(crate) reference: String,
    /// Peerbox's figure, with its unit ("1,234 MB/s", "0.31 s", "96 MiB").
    pub(crate) peerbox: String,
    /// The reference's figure, with its unit; empty when there is no reference.
    pub(crate) theirs: String,
    /// How many times better Peerbox did than the reference (above 1: better),
    /// the median of per-round ratios; `None` for an absolute figure.
    pub(crate) ratio: Option<f64>,
    /// The goal, as text ("ratio ≥ 0.8", "< 150 MiB").
    pub(crate) goal: String,
    /// Whether the goal was met; `None` if it could not be told.
    pub(crate) met: Option<bool>,
}

impl Headline {
    fn to_json(&self) -> Value {
        json!({
            "case": self.case,
            "reference": self.reference,
            "peerbox": self.peerbox,
            "theirs": self.theirs,
            "ratio": self.ratio,
            "goal": self.goal,
            "met": self.met,
        })
    }

    fn from_json(v: &Value) -> Option<Self> {
        let s = |k: &str| v[k].as_str().map(str::to_owned);
        Some(Self {
            case: s("case")?,
            reference: s("reference").unwrap_or_default(),
            peerbox: s("peerbox").unwrap_or_default(),
            theirs: s("theirs").unwrap_or_default(),
            ratio: v["ratio"].as_f64(),
            goal: s("goal").unwrap_or_default(),
            met: v["met"].as_bool(),
        })
    }
}

/// Writes `lines` to `path` as a JSON array.
pub(crate) fn write(path: &Path, lines: &[Headline]) -> Result<()> {
    let v = Value::Array(lines.iter().map(Headline::to_json).collect());
    std::fs::write(path, serde_json::to_string_pretty(&v)?).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads what [`write`] wrote; entries it cannot read are skipped.
pub(crate) fn read(path: &Path) -> Result<Vec<Headline>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(v.as_array().into_iter().flatten().filter_map(Headline::from_json).collect())
}

/// Writes `lines` when the mode was asked to (`--headlines FILE.json`).
pub(crate) fn write_if_asked(path: Option<&Path>, lines: &[Headline]) -> Result<()> {
    match path {
        Some(p) => {
            write(p, lines)?;
            eprintln!("wrote {}", p.display());
            Ok(())
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headlines_survive_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.json");
        let lines = vec![
            Headline {
                case: "1 GiB file by link".into(),
                reference: "plain TCP copy + fsync".into(),
                peerbox: "1,200 MB/s".into(),
                theirs: "1,400 MB/s".into(),
                ratio: Some(0.857),
                goal: "ratio ≥ 0.8".into(),
                met: Some(true),
            },
            Headline {
                case: "daemon RSS, 100,000 files".into(),
                reference: String::new(),
                peerbox: "140 MiB".into(),
                theirs: String::new(),
                ratio: None,
                goal: "< 150 MiB".into(),
                met: None,
            },
        ];
        write(&path, &lines).unwrap();
        assert_eq!(read(&path).unwrap(), lines);
    }
}
