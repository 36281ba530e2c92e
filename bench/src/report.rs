//! The results of the transfer mode: samples per round and case, for one big
//! file or for a folder of many small ones, and the markdown table, goal lines
//! and suite headlines made from them. Ratios are taken within each round (the
//! reference re-run next to the case) and then the median over rounds is
//! reported, as shared/docs/BENCHMARKS.md asks. Called by `main` and `files`.

use std::fmt::Write;

use crate::Sample;
use crate::headline::{Headline, INFORMATION};

/// Goal: peerbox reaches at least this share of the plain TCP copy.
const GOAL_RATIO: f64 = 0.8;
/// Goal: each peerbox process stays under this peak RSS, MiB.
const GOAL_RSS_MIB: f64 = 100.0;
/// The suite's goals for one big file (issue 8): this share of the plain copy,
/// and this many times sendme's speed.
const HEADLINE_GOAL_PLAIN: f64 = 0.8;
const HEADLINE_GOAL_SENDME: f64 = 2.5;
/// The file size those two goals are set for; other sizes' ratios are shown
/// for information (a 10 GiB file is there for its memory, which has a goal at
/// every size: [`GOAL_RSS_MIB`]).
const HEADLINE_GOAL_SIZE: u64 = 1 << 30;
/// Goals for many small files (issue 8): the share of tar over TCP, the
/// multiple of sendme's speed, and the seconds for [`GOAL_FILES_WORKLOAD`].
const GOAL_FILES_TAR: f64 = 0.5;
const GOAL_FILES_SENDME: f64 = 2.0;
const GOAL_FILES_SECS: f64 = 2.0;
/// The workload the absolute goal is set for: 10,000 files of 4 KiB.
const GOAL_FILES_WORKLOAD: (usize, u64) = (10_000, 4096);

/// What every case of one invocation moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// One file of this many bytes.
    File(u64),
    /// A folder of `count` files of `file_size` bytes each.
    Files { count: usize, file_size: u64 },
}

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

    /// Its name for `workload`: the reference for many files is tar over TCP.
    pub(crate) fn name_for(self, workload: Workload) -> &'static str {
        match (self, workload) {
            (Case::Plain, Workload::Files { .. }) => "tar over TCP + sync -f",
            _ => self.name(),
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
    /// Bytes moved by each case in each round.
    size: u64,
    workload: Workload,
    rounds: Vec<[Option<Sample>; 3]>,
    notes: Vec<String>,
}

impl Report {
    /// The report of one file of `size` bytes.
    pub(crate) fn new(size: u64, rounds: u32) -> Self {
        Self::of(Workload::File(size), rounds)
    }

    /// The report of `workload`.
    pub(crate) fn of(workload: Workload, rounds: u32) -> Self {
        let size = match workload {
            Workload::File(size) => size,
            Workload::Files { count, file_size } => count as u64 * file_size,
        };
        Self { size, workload, rounds: vec![[None; 3]; rounds as usize], notes: Vec::new() }
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

    fn median_secs(&self, case: Case) -> Option<f64> {
        median(self.samples(case).iter().map(|s| s.secs).collect())
    }

    fn median_mbps(&self, case: Case) -> Option<f64> {
        median(self.samples(case).iter().map(|s| self.mbps(s)).collect())
    }

    /// The case as the suite and BENCHMARKS.md name it.
    fn case_label(&self) -> String {
        match self.workload {
            Workload::File(size) => format!("{} file by link", size_label(size)),
            Workload::Files { count, file_size } => {
                format!("{} × {} files by link", thousands(count as u64), size_label(file_size))
            }
        }
    }

    /// The suite's lines (`--headlines`), against the goals of issue 8.
    /// `sendme_missing` says why sendme did not run, when it did not.
    pub(crate) fn headlines(&self, sendme_missing: Option<&str>) -> Vec<Headline> {
        let case = self.case_label();
        let sendme_ratio = self.ratio(Case::Peerbox, Case::Sendme);
        let sendme_ref = match sendme_missing {
            // Its first words ("not installed"); the report has the rest.
            Some(why) if sendme_ratio.is_none() => format!("sendme ({})", why.split(" (").next().unwrap_or(why)),
            _ => "sendme".to_owned(),
        };
        match self.workload {
            Workload::File(size) => {
                let rate = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.0} MB/s"));
                let plain_ratio = self.ratio(Case::Peerbox, Case::Plain);
                let peerbox = rate(self.median_mbps(Case::Peerbox));
                let goal = |text: String, met: Option<bool>| {
                    if size == HEADLINE_GOAL_SIZE { (text, met) } else { (INFORMATION.to_owned(), None) }
                };
                let (plain_goal, plain_met) =
                    goal(format!("ratio ≥ {HEADLINE_GOAL_PLAIN}"), plain_ratio.map(|r| r >= HEADLINE_GOAL_PLAIN));
                let (sendme_goal, sendme_met) =
                    goal(format!("≥ {HEADLINE_GOAL_SENDME}× sendme"), sendme_ratio.map(|r| r >= HEADLINE_GOAL_SENDME));
                let (get, share, rss_met) = self.peak_rss();
                vec![
                    Headline {
                        case: case.clone(),
                        reference: Case::Plain.name().into(),
                        peerbox: peerbox.clone(),
                        theirs: rate(self.median_mbps(Case::Plain)),
                        ratio: plain_ratio,
                        goal: plain_goal,
                        met: plain_met,
                    },
                    Headline {
                        case: case.clone(),
                        reference: sendme_ref,
                        peerbox,
                        theirs: rate(self.median_mbps(Case::Sendme)),
                        ratio: sendme_ratio,
                        goal: sendme_goal,
                        met: sendme_met,
                    },
                    Headline {
                        case: format!("{case}: peak RSS of get / share"),
                        reference: String::new(),
                        peerbox: format!("{} / {} MiB", fmt(get, 0), fmt(share, 0)),
                        theirs: String::new(),
                        ratio: None,
                        goal: format!("< {GOAL_RSS_MIB} MiB each, at any size"),
                        met: rss_met,
                    },
                ]
            }
            Workload::Files { .. } => {
                let secs = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.2} s"));
                let tar_ratio = self.ratio(Case::Peerbox, Case::Plain);
                let peerbox_secs = self.median_secs(Case::Peerbox);
                vec![
                    Headline {
                        case: case.clone(),
                        reference: Case::Plain.name_for(self.workload).into(),
                        peerbox: secs(peerbox_secs),
                        theirs: secs(self.median_secs(Case::Plain)),
                        ratio: tar_ratio,
                        goal: format!("≥ {GOAL_FILES_TAR} of tar"),
                        met: tar_ratio.map(|r| r >= GOAL_FILES_TAR),
                    },
                    Headline {
                        case: case.clone(),
                        reference: sendme_ref,
                        peerbox: secs(peerbox_secs),
                        theirs: secs(self.median_secs(Case::Sendme)),
                        ratio: sendme_ratio,
                        goal: format!("≥ {GOAL_FILES_SENDME}× sendme"),
                        met: sendme_ratio.map(|r| r >= GOAL_FILES_SENDME),
                    },
                    Headline {
                        case,
                        reference: String::new(),
                        peerbox: secs(peerbox_secs),
                        theirs: String::new(),
                        ratio: None,
                        goal: format!("≤ {GOAL_FILES_SECS} s"),
                        met: self.secs_goal_met(peerbox_secs),
                    },
                ]
            }
        }
    }

    /// Peerbox's peak RSS over rounds, get's and share's (MiB), and whether both
    /// are under the goal.
    fn peak_rss(&self) -> (Option<f64>, Option<f64>, Option<bool>) {
        let (get, share) = (self.peak(Case::Peerbox, |s| s.rss_get), self.peak(Case::Peerbox, |s| s.rss_share));
        let met = match (get, share) {
            (Some(g), Some(s)) => Some(g < GOAL_RSS_MIB && s < GOAL_RSS_MIB),
            _ => None,
        };
        (get, share, met)
    }

    /// Whether the median seconds meet the absolute goal; `None` when it could
    /// not be told, or when the workload is not the one the goal is set for.
    fn secs_goal_met(&self, secs: Option<f64>) -> Option<bool> {
        let Workload::Files { count, file_size } = self.workload else { return None };
        if (count, file_size) != GOAL_FILES_WORKLOAD {
            return None;
        }
        secs.map(|s| s <= GOAL_FILES_SECS)
    }

    /// The markdown table, the goal lines and the notes.
    pub(crate) fn render(&self, peerbox_version: &str, sendme_version: Option<&str>) -> String {
        match self.workload {
            Workload::File(_) => self.render_file(peerbox_version, sendme_version),
            Workload::Files { count, file_size } => {
                self.render_files(count, file_size, peerbox_version, sendme_version)
            }
        }
    }

    fn render_files(
        &self,
        count: usize,
        file_size: u64,
        peerbox_version: &str,
        sendme_version: Option<&str>,
    ) -> String {
        let mut out = String::new();
        let w = self.workload;
        let _ = writeln!(
            out,
            "## peerbox-bench: {} files of {} by link, loopback\n",
            thousands(count as u64),
            size_label(file_size)
        );
        let _ = writeln!(
            out,
            "{} bytes in all, {} interleaved round{} (tar, peerbox, sendme), each case on a fresh ext4 image (loop device with direct I/O) \
             that holds both sides; seconds from starting the transfer until the copy is durable (tar: one \
             `sync -f` after `tar -x`; peerbox: its `get` process; sendme: its `receive` process, which does \
             not sync); every file's SHA-256 checked after each case; \
             ratio = median over rounds of the case's speed ÷ tar's in the same round (above 1: faster); \
             RSS = highest peak over rounds. {}.\n",
            self.size,
            self.rounds.len(),
            if self.rounds.len() == 1 { "" } else { "s" },
            crate::report::versions(peerbox_version, sendme_version),
        );
        let _ = writeln!(
            out,
            "| case | median s | each round, s | files/s | ratio to tar | peak RSS get / receive, MiB | peak RSS share / send, MiB |"
        );
        let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|");
        for case in Case::ALL {
            let samples = self.samples(case);
            if samples.is_empty() {
                continue;
            }
            let each = samples.iter().map(|s| format!("{:.2}", s.secs)).collect::<Vec<_>>().join(", ");
            let secs = self.median_secs(case);
            let _ = writeln!(
                out,
                "| {} | {} | {each} | {} | {} | {} | {} |",
                case.name_for(w),
                fmt(secs, 2),
                fmt(secs.map(|s| count as f64 / s), 0),
                if case == Case::Plain { "1.00".into() } else { fmt(self.ratio(case, Case::Plain), 2) },
                fmt(self.peak(case, |s| s.rss_get), 0),
                fmt(self.peak(case, |s| s.rss_share), 0),
            );
        }
        out.push('\n');

        let secs = self.median_secs(Case::Peerbox);
        let (goal_n, goal_size) = GOAL_FILES_WORKLOAD;
        let secs_verdict = if (count, file_size) == GOAL_FILES_WORKLOAD {
            verdict(self.secs_goal_met(secs)).to_owned()
        } else {
            format!("unknown (the goal is for {} × {})", thousands(goal_n as u64), size_label(goal_size))
        };
        let _ = writeln!(out, "peerbox median {} s (goal <= {GOAL_FILES_SECS} s): {secs_verdict}", fmt(secs, 2));
        let tar = self.ratio(Case::Peerbox, Case::Plain);
        let _ = writeln!(
            out,
            "peerbox/tar ratio {} (goal >= {GOAL_FILES_TAR}): {}",
            fmt(tar, 2),
            verdict(tar.map(|r| r >= GOAL_FILES_TAR))
        );
        let sendme = self.ratio(Case::Peerbox, Case::Sendme);
        let _ = writeln!(
            out,
            "peerbox/sendme ratio {} (goal >= {GOAL_FILES_SENDME}): {}",
            fmt(sendme, 2),
            verdict(sendme.map(|r| r >= GOAL_FILES_SENDME))
        );
        for n in &self.notes {
            let _ = writeln!(out, "{n}");
        }
        out
    }

    fn render_file(&self, peerbox_version: &str, sendme_version: Option<&str>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## peerbox-bench: one {} file by link, loopback\n", size_label(self.size));
        let _ = writeln!(
            out,
            "{} bytes, {} interleaved round{} (plain, peerbox, sendme) after one untimed warm-up copy; \
             MB/s = 10^6 bytes/s; \
             ratio = median over rounds of the case's MB/s ÷ the plain copy's in the same round; \
             RSS = highest peak over rounds. {}.\n",
            self.size,
            self.rounds.len(),
            if self.rounds.len() == 1 { "" } else { "s" },
            crate::report::versions(peerbox_version, sendme_version),
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
        let (get, share, rss_ok) = self.peak_rss();
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

/// "peerbox 0.1.0, sendme 0.37.1": the versions compared, for a report's intro.
pub(crate) fn versions(peerbox: &str, reference: Option<&str>) -> String {
    let peerbox = if peerbox.is_empty() { "peerbox" } else { peerbox };
    match reference {
        Some(r) => format!("{peerbox}, {r}"),
        None => peerbox.to_owned(),
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

/// A count with thousands separators: "10,000".
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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
        assert!(text.contains("peerbox/plain ratio 0.50 (goal >= 0.8): NOT met"), "{text}");
        assert!(text.contains("peak RSS get 40 MiB / share 60 MiB (goal < 100): met"), "{text}");
        assert!(!text.contains("sendme ratio"), "{text}");
    }

    #[test]
    fn file_headlines() {
        let mut r = Report::new(1 << 30, 3);
        for (round, plain) in [(1, 1.0), (2, 2.0), (3, 1.0)] {
            r.add(round, Case::Plain, s(plain));
            r.add(round, Case::Peerbox, s(plain * 1.25));
            r.add(round, Case::Sendme, s(plain * 4.0));
        }
        let h = r.headlines(None);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].case, "1 GiB file by link");
        assert_eq!(h[0].reference, "plain TCP copy + fsync");
        assert_eq!(h[0].ratio, Some(0.8));
        assert_eq!((h[0].goal.as_str(), h[0].met), ("ratio ≥ 0.8", Some(true)));
        assert_eq!(h[0].theirs, "1074 MB/s");
        assert_eq!(h[1].ratio, Some(3.2));
        assert_eq!((h[1].goal.as_str(), h[1].met), ("≥ 2.5× sendme", Some(true)));
        assert_eq!(h[2].case, "1 GiB file by link: peak RSS of get / share");
        assert_eq!((h[2].peerbox.as_str(), h[2].ratio, h[2].met), ("40 / 60 MiB", None, Some(true)));

        // Another size: the same ratios, for information; the memory goal holds at every size.
        let mut r = Report::new(10 << 30, 1);
        r.add(1, Case::Plain, s(1.0));
        r.add(1, Case::Peerbox, Sample { secs: 2.0, rss_get: Some(140 << 20), rss_share: Some(60 << 20) });
        let h = r.headlines(None);
        assert_eq!(h[0].case, "10 GiB file by link");
        assert_eq!((h[0].ratio, h[0].goal.as_str(), h[0].met), (Some(0.5), INFORMATION, None));
        assert_eq!((h[2].peerbox.as_str(), h[2].met), ("140 / 60 MiB", Some(false)));

        let mut r = Report::new(1 << 30, 1);
        r.add(1, Case::Plain, s(1.0));
        r.add(1, Case::Peerbox, s(2.0));
        let h = r.headlines(Some("not installed (cargo install sendme --locked)"));
        assert_eq!((h[0].ratio, h[0].met), (Some(0.5), Some(false)));
        assert_eq!((h[1].reference.as_str(), h[1].ratio, h[1].met), ("sendme (not installed)", None, None));
        assert_eq!(h[1].theirs, "");
    }

    fn files_report(count: usize) -> Report {
        let mut r = Report::of(Workload::Files { count, file_size: 4096 }, 3);
        // tar drifts; peerbox is 2.5× tar's time and sendme 3× peerbox's, in every round.
        for (round, tar) in [(1, 0.6), (2, 0.8), (3, 0.7)] {
            r.add(round, Case::Plain, Sample { secs: tar, rss_get: None, rss_share: None });
            r.add(round, Case::Peerbox, s(tar * 2.5));
            r.add(round, Case::Sendme, s(tar * 7.5));
        }
        r
    }

    #[test]
    fn files_table_and_goals() {
        let r = files_report(10_000);
        let text = r.render("peerbox 0.1.0", Some("sendme 0.37.1"));
        assert!(text.contains("## peerbox-bench: 10,000 files of 4 KiB by link, loopback"), "{text}");
        assert!(text.contains("| tar over TCP + sync -f | 0.70 | 0.60, 0.80, 0.70 | 14286 | 1.00 | – | – |"), "{text}");
        assert!(text.contains("| peerbox share → get | 1.75 | 1.50, 2.00, 1.75 | 5714 | 0.40 | 40 | 60 |"), "{text}");
        assert!(text.contains("| sendme send → receive | 5.25 | 4.50, 6.00, 5.25 | 1905 | 0.13 | 40 | 60 |"), "{text}");
        assert!(text.contains("peerbox median 1.75 s (goal <= 2 s): met"), "{text}");
        assert!(text.contains("peerbox/tar ratio 0.40 (goal >= 0.5): NOT met"), "{text}");
        assert!(text.contains("peerbox/sendme ratio 3.00 (goal >= 2): met"), "{text}");

        let other = files_report(100).render("", None);
        assert!(other.contains("(goal <= 2 s): unknown (the goal is for 10,000 × 4 KiB)"), "{other}");
    }

    #[test]
    fn files_headlines() {
        let h = files_report(10_000).headlines(None);
        assert_eq!(h.len(), 3);
        assert!(h.iter().all(|h| h.case == "10,000 × 4 KiB files by link"), "{h:?}");
        assert_eq!(h[0].reference, "tar over TCP + sync -f");
        assert_eq!((h[0].peerbox.as_str(), h[0].theirs.as_str()), ("1.75 s", "0.70 s"));
        assert_eq!((h[0].ratio.map(|r| (r * 100.0).round()), h[0].met), (Some(40.0), Some(false)));
        assert_eq!(h[0].goal, "≥ 0.5 of tar");
        assert_eq!((h[1].ratio.map(|r| (r * 100.0).round()), h[1].met), (Some(300.0), Some(true)));
        assert_eq!((h[1].goal.as_str(), h[1].theirs.as_str()), ("≥ 2× sendme", "5.25 s"));
        assert_eq!((h[2].reference.as_str(), h[2].ratio, h[2].met), ("", None, Some(true)));
        assert_eq!(h[2].goal, "≤ 2 s");
        assert_eq!(files_report(100).headlines(None)[2].met, None);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn size_labels() {
        assert_eq!(size_label(1 << 30), "1 GiB");
        assert_eq!(size_label(256 << 20), "256 MiB");
        assert_eq!(size_label(1_000_000_000), "953.67 MiB");
        assert_eq!(size_label(12), "12 B");
    }
}
