//! The results: samples per round and case, and the markdown table and goal
//! lines made from them. Ratios are taken within each round (the reference
//! re-run next to the case) and then the median over rounds is reported, as
//! shared/docs/BENCHMARKS.md asks. Called by `main`.

use std::fmt::Write;

use crate::Sample;

/// Goal: peerbox reaches at least this share of the plain TCP copy.
const GOAL_RATIO: f64 = 0.6;
/// Goal: each peerbox process stays under this peak RSS, MiB.
const GOAL_RSS_MIB: f64 = 100.0;

/// The cases, in the order each round runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Case {
    /// The reference: plain TCP copy + fsync.
    Plain,
    /// peerbox share → get.
    Peerbox,
    /// sendme send → receive.
    Sendme,
}

impl Case {
    const ALL: [Case; 3] = [Case::Plain, Case::Peerbox, Case::Sendme];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Case::Plain => "plain TCP copy + fsync",
            Case::Peerbox => "peerbox share → get",
            Case::Sendme => "sendme send → receive",
        }
    }

    /// What the receiving side is called in this case.
    pub(crate) fn get_side(self) -> &'static str {
        if self == Case::Sendme { "receive" } else { "get" }
    }

    /// What the sending side is called in this case.
    pub(crate) fn share_side(self) -> &'static str {
        if self == Case::Sendme { "send" } else { "share" }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Every sample of one invocation.
pub(crate) struct Report {
    size: u64,
    rounds: Vec<[Option<Sample>; 3]>,
    notes: Vec<String>,
}

impl Report {
    pub(crate) fn new(size: u64, rounds: u32) -> Self {
        Self { size, rounds: vec![[None; 3]; rounds as usize], notes: Vec::new() }
    }

    /// Records `case`'s sample for round `round` (1-based).
    pub(crate) fn add(&mut self, round: u32, case: Case, sample: Sample) {
        if let Some(r) = self.rounds.get_mut((round as usize).wrapping_sub(1)) {
            r[case.index()] = Some(sample);
        }
    }

    /// A line printed under the table.
    pub(crate) fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    fn mbps(&self, s: &Sample) -> f64 {
        self.size as f64 / s.secs / 1e6
    }

    fn samples(&self, case: Case) -> Vec<Sample> {
        self.rounds.iter().filter_map(|r| r[case.index()]).collect()
    }

    /// Median over rounds of (a's MB/s ÷ b's MB/s) within the same round.
    fn ratio(&self, a: Case, b: Case) -> Option<f64> {
        let per_round: Vec<f64> =
            self.rounds.iter().filter_map(|r| Some(r[b.index()]?.secs / r[a.index()]?.secs)).collect();
        median(per_round)
    }

    fn peak(&self, case: Case, pick: fn(&Sample) -> Option<u64>) -> Option<f64> {
        self.samples(case).iter().filter_map(pick).max().map(|b| b as f64 / 1048576.0)
    }

    /// The markdown table, the goal lines and the notes.
    pub(crate) fn render(&self, peerbox_version: &str, sendme_version: Option<&str>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## peerbox-bench: one {} file by link, loopback\n", size_label(self.size));
        let _ = writeln!(
            out,
            "{} bytes, {} interleaved round{} (plain, peerbox, sendme) after one untimed warm-up copy; \
             MB/s = 10^6 bytes/s; \
             ratio = median over rounds of the case's MB/s ÷ the plain copy's in the same round; \
             RSS = highest peak over rounds. {}{}.\n",
            self.size,
            self.rounds.len(),
            if self.rounds.len() == 1 { "" } else { "s" },
            if peerbox_version.is_empty() { "peerbox" } else { peerbox_version },
            sendme_version.map(|v| format!(", {v}")).unwrap_or_default(),
        );
        let _ = writeln!(
            out,
            "| case | median MB/s | each round, MB/s | ratio to plain | peak RSS get / receive, MiB | peak RSS share / send, MiB |"
        );
        let _ = writeln!(out, "|---|---:|---|---:|---:|---:|");
        for case in Case::ALL {
            let samples = self.samples(case);
            if samples.is_empty() {
                continue;
            }
            let rates: Vec<f64> = samples.iter().map(|s| self.mbps(s)).collect();
            let each = rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
            let _ = writeln!(
                out,
                "| {} | {} | {each} | {} | {} | {} |",
                case.name(),
                fmt(median(rates), 0),
                if case == Case::Plain { "1.00".into() } else { fmt(self.ratio(case, Case::Plain), 2) },
                fmt(self.peak(case, |s| s.rss_get), 0),
                fmt(self.peak(case, |s| s.rss_share), 0),
            );
        }
        out.push('\n');

        let ratio = self.ratio(Case::Peerbox, Case::Plain);
        let _ = writeln!(
            out,
            "peerbox/plain ratio {} (goal >= {GOAL_RATIO}): {}",
            fmt(ratio, 2),
            verdict(ratio.map(|r| r >= GOAL_RATIO))
        );
        let (get, share) = (self.peak(Case::Peerbox, |s| s.rss_get), self.peak(Case::Peerbox, |s| s.rss_share));
        let rss_ok = match (get, share) {
            (Some(g), Some(s)) => Some(g < GOAL_RSS_MIB && s < GOAL_RSS_MIB),
            _ => None,
        };
        let _ = writeln!(
            out,
            "peak RSS get {} MiB / share {} MiB (goal < {GOAL_RSS_MIB}): {}",
            fmt(get, 0),
            fmt(share, 0),
            verdict(rss_ok)
        );
        if !self.samples(Case::Sendme).is_empty() {
            let _ = writeln!(out, "peerbox/sendme ratio {}", fmt(self.ratio(Case::Peerbox, Case::Sendme), 2));
        }
        for n in &self.notes {
            let _ = writeln!(out, "{n}");
        }
        out
    }
}

/// A goal line's word for whether the goal was met.
pub(crate) fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "unknown",
    }
}

pub(crate) fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The median; `None` for no values.
pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

/// "1 GiB", "256 MiB", "1.5 GiB", "1000000 B".
pub(crate) fn size_label(bytes: u64) -> String {
    for (unit, div) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= div {
            let v = bytes as f64 / div as f64;
            return if bytes.is_multiple_of(div) {
                format!("{} {unit}", bytes / div)
            } else {
                format!("{v:.2} {unit}")
            };
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Sample {
        Sample { secs, rss_get: Some(40 << 20), rss_share: Some(60 << 20) }
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn ratios_are_taken_within_rounds() {
        let mut r = Report::new(1_000_000_000, 3);
        // Plain drifts (1 s, 2 s, 1 s); peerbox is always twice as slow as plain in its round.
        for (round, plain) in [(1, 1.0), (2, 2.0), (3, 1.0)] {
            r.add(round, Case::Plain, Sample { secs: plain, rss_get: None, rss_share: None });
            r.add(round, Case::Peerbox, s(plain * 2.0));
        }
        assert_eq!(r.ratio(Case::Peerbox, Case::Plain), Some(0.5));
        let text = r.render("peerbox 0.1.0", None);
        assert!(text.contains("| plain TCP copy + fsync | 1000 | 1000, 500, 1000 | 1.00 | – | – |"), "{text}");
        assert!(text.contains("peerbox/plain ratio 0.50 (goal >= 0.6): NOT met"), "{text}");
        assert!(text.contains("peak RSS get 40 MiB / share 60 MiB (goal < 100): met"), "{text}");
        assert!(!text.contains("sendme ratio"), "{text}");
    }

    #[test]
    fn size_labels() {
        assert_eq!(size_label(1 << 30), "1 GiB");
        assert_eq!(size_label(256 << 20), "256 MiB");
        assert_eq!(size_label(1_000_000_000), "953.67 MiB");
        assert_eq!(size_label(12), "12 B");
    }
}
