//! `peerbox-bench suite`: every case of the performance issue in one command.
//! Runs each mode of this binary as its own process (so one that fails still
//! leaves the others' figures), each writing its full report (`MODE.md`) and its
//! headline figures (`MODE.json`, see `headline.rs`) into one results folder;
//! then writes `summary.md` (one table: every case, its reference, the ratio
//! and the goal) and `chart.svg` (the ratios as bars, the reference at 1).
//!
//! Exit codes: 0 every mode ran (goals met or not: they are reported); 1 a mode
//! failed or could not start; 130 interrupted.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::headline::{self, Headline, INFORMATION};

/// Options of `peerbox-bench suite`.
#[derive(Args, Debug)]
pub(crate) struct SuiteArgs {
    /// Interleaved rounds for every mode.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Where the reports, the summary and the chart go [default: bench-results/YYYYMMDD-HHMMSS].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Smaller cases (100 MiB files, 1,000 small files, 10,000 for the scan): a quick check that
    /// every mode runs, not figures to compare with the goals.
    #[arg(long)]
    quick: bool,
    /// Run only these modes (comma-separated: transfer, files, big, sync, scan).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The peerbox binary [default: $PEERBOX_BIN, else `peerbox` next to this executable].
    #[arg(long, env = "PEERBOX_BIN", value_name = "PATH")]
    peerbox: Option<PathBuf>,
}

/// One mode run by the suite.
struct Step {
    /// Its name: the report is `NAME.md`, the headlines `NAME.json`.
    name: &'static str,
    /// What it measures, for the summary.
    what: &'static str,
    /// Its arguments to this binary (the suite adds rounds and outputs).
    args: Vec<String>,
}

fn steps(a: &SuiteArgs) -> Vec<Step> {
    let q = a.quick;
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let all = vec![
        Step {
            name: "transfer",
            what: "one file by link, share → get, against a plain TCP copy + fsync and sendme",
            args: s(&["transfer", "--size", if q { "100MiB" } else { "1GiB" }]),
        },
        Step {
            name: "files",
            what: "small files by link, share → get, against tar over TCP and sendme (fresh ext4 image per run)",
            args: s(&["transfer", "--files", if q { "1000" } else { "10000" }, "--file-size", "4KiB"]),
        },
        Step {
            name: "big",
            what: "memory of a transfer ten times larger: RSS must not grow with the file",
            args: s(&["transfer", "--size", if q { "1GiB" } else { "10GiB" }]),
        },
        Step {
            name: "sync",
            what: "folder sync A → B (latency, small files, one big file, RSS) against Syncthing",
            args: if q {
                s(&["sync", "--files", "1000", "--size", "100MiB", "--latency-samples", "3"])
            } else {
                s(&["sync", "--with-rss"])
            },
        },
        Step {
            name: "scan",
            what: "first scan + hash against the 2-core sha2 limit, rescan against Syncthing, cold start, RSS",
            args: if q { s(&["scan", "--big-files", "100", "--small-files", "10000"]) } else { s(&["scan"]) },
        },
    ];
    all.into_iter().filter(|st| a.only.is_empty() || a.only.iter().any(|o| o == st.name)).collect()
}

/// What one step left.
struct Outcome {
    step: Step,
    ok: bool,
    lines: Vec<Headline>,
    why: Option<String>,
}

pub(crate) fn main(args: SuiteArgs) -> ExitCode {
    let Some(runtime) = crate::runtime() else { return ExitCode::FAILURE };
    runtime.block_on(async {
        tokio::select! {
            r = run(args) => crate::exit_code(r, |_| false),
            // Dropping `run` kills the running mode, whose own clean-up runs on SIGTERM.
            () = crate::interrupted() => {
                eprintln!("\npeerbox-bench suite: interrupted");
                ExitCode::from(130)
            }
        }
    })
}

async fn run(args: SuiteArgs) -> Result<bool> {
    let me = std::env::current_exe().context("cannot tell where this executable is")?;
    let peerbox = crate::find_peerbox(args.peerbox.clone())?;
    let version = crate::proc::probe(&peerbox, &["--version"]).await.unwrap_or_default().trim().to_owned();
    let dir = match &args.out_dir {
        Some(d) => d.clone(),
        None => PathBuf::from("bench-results").join(jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string()),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir)?;
    eprintln!("peerbox-bench suite: {version}; results in {}", dir.display());

    let mut outcomes = Vec::new();
    for step in steps(&args) {
        let md = dir.join(format!("{}.md", step.name));
        let json = dir.join(format!("{}.json", step.name));
        let _ = std::fs::remove_file(&json);
        eprintln!("\n== {}: {}", step.name, step.what);
        let status = tokio::process::Command::new(&me)
            .args(&step.args)
            .args(["--rounds", &args.rounds.to_string()])
            .arg("--peerbox")
            .arg(&peerbox)
            .arg("--out")
            .arg(&md)
            .arg("--headlines")
            .arg(&json)
            .kill_on_drop(true)
            .status()
            .await;
        let lines = headline::read(&json).unwrap_or_default();
        let (ok, why) = match status {
            Ok(s) if s.success() => (true, None),
            Ok(s) => (false, Some(format!("exited with {s}; see {}.md or the output above", step.name))),
            Err(e) => (false, Some(format!("could not start: {e}"))),
        };
        outcomes.push(Outcome { step, ok, lines, why });
    }

    let all_ok = outcomes.iter().all(|o| o.ok);
    let summary = render_summary(&outcomes, &version, args.rounds, args.quick);
    std::fs::write(dir.join("summary.md"), &summary)?;
    let lines: Vec<Headline> = outcomes.iter().flat_map(|o| o.lines.iter().cloned()).collect();
    std::fs::write(dir.join("chart.svg"), render_chart(&lines, &version))?;
    println!();
    print!("{summary}");
    eprintln!("wrote {0}/summary.md and {0}/chart.svg", dir.display());
    Ok(all_ok)
}

fn render_summary(outcomes: &[Outcome], version: &str, rounds: u32, quick: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## peerbox-bench suite\n");
    let _ = writeln!(
        out,
        "{} on this machine ({} cores), {rounds} interleaved round{} per mode{}. \
         ratio = how many times better Peerbox did than the reference run beside it in the same round \
         (its time ÷ Peerbox's time), median over rounds: above 1 Peerbox is faster. \
         Each mode's full report (per-round figures, method) is in MODE.md next to this file.\n",
        crate::report::versions(version, None),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if rounds == 1 { "" } else { "s" },
        if quick { "; QUICK sizes (a check that everything runs, not figures for the goals)" } else { "" },
    );
    let _ = writeln!(out, "| case | Peerbox | reference | reference's figure | ratio | goal | met |");
    let _ = writeln!(out, "|---|---:|---|---:|---:|---|---|");
    for o in outcomes {
        for h in &o.lines {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(&h.case),
                cell(&h.peerbox),
                cell(&h.reference),
                cell(&h.theirs),
                crate::report::fmt(h.ratio, 2),
                cell(&h.goal),
                if h.goal == INFORMATION { "–" } else { crate::report::verdict(h.met) },
            );
        }
        if o.lines.is_empty() {
            let _ = writeln!(out, "| {} | FAILED | – | – | – | – | unknown |", cell(o.step.what));
        }
    }
    out.push('\n');
    for o in outcomes {
        let _ = writeln!(
            out,
            "- `{}` ({}): {}{}",
            o.step.name,
            o.step.args.join(" "),
            if o.ok { "ran" } else { "FAILED" },
            o.why.as_ref().map(|w| format!(" — {w}")).unwrap_or_default(),
        );
    }
    out
}

/// A table cell: text as text (no pipes breaking the row), `–` when empty.
fn cell(s: &str) -> String {
    if s.is_empty() { "–".to_owned() } else { s.replace('|', "/") }
}

/// A horizontal bar per case that has a ratio, on a log scale around 1 (the
/// reference), with the goal marked; green where the goal is met, red where not.
fn render_chart(lines: &[Headline], version: &str) -> String {
    let rows: Vec<&Headline> = lines.iter().filter(|h| h.ratio.is_some_and(|r| r > 0.0)).collect();
    let (label_w, bar_w, row_h, top) = (430.0, 420.0, 26.0, 54.0);
    let width = label_w + bar_w + 90.0;
    let height = top + row_h * rows.len().max(1) as f64 + 40.0;
    // Log scale from 1/8 to 16: ratios far apart (0.3 and 10) both stay readable.
    let (lo, hi) = (0.125f64.log2(), 16f64.log2());
    let x = |r: f64| label_w + (r.clamp(0.125, 16.0).log2() - lo) / (hi - lo) * bar_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{}: times better than the reference (log scale; 1 = as fast)</text>"#,
        xml(&crate::report::versions(version, None))
    );
    for tick in [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0] {
        let tx = x(tick);
        let stroke = if tick == 1.0 { "#333" } else { "#ddd" };
        let _ = writeln!(
            s,
            r#"<line x1="{tx:.1}" y1="{}" x2="{tx:.1}" y2="{}" stroke="{stroke}"/><text x="{tx:.1}" y="{}" text-anchor="middle" fill="dimgray">{tick}</text>"#,
            top - 8.0,
            top + row_h * rows.len() as f64,
            top - 12.0
        );
    }
    for (i, h) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let r = h.ratio.unwrap_or(1.0);
        let color = match h.met {
            Some(true) => "#2e7d32",
            Some(false) => "#c62828",
            None => "#888",
        };
        let (a, b) = (x(1.0), x(r));
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y + 17.0,
            xml(&format!("{} vs {}", h.case, h.reference))
        );
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}</title></rect>"#,
            a.min(b),
            y + 5.0,
            (b - a).abs().max(1.0),
            row_h - 10.0,
            xml(&format!("{}: {} vs {} — goal {}", h.case, h.peerbox, h.theirs, h.goal))
        );
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}">{r:.2}</text>"#, label_w + bar_w + 8.0, y + 17.0);
        if let Some(g) = goal_ratio(&h.goal) {
            let gx = x(g);
            let _ = writeln!(
                s,
                r#"<line x1="{gx:.1}" y1="{:.1}" x2="{gx:.1}" y2="{:.1}" stroke="black" stroke-width="2" stroke-dasharray="3,2"/>"#,
                y + 2.0,
                y + row_h - 2.0
            );
        }
    }
    let _ = writeln!(
        s,
        r#"<text x="10" y="{:.1}" fill="dimgray">green: goal met; red: missed; dashed mark: the goal's ratio</text>"#,
        height - 14.0
    );
    s.push_str("</svg>\n");
    s
}

/// The ratio a goal asks for, if it states one ("ratio ≥ 0.8", "≥ 2.5× sendme",
/// "≥ 0.5 of tar", "faster than …" = 1).
fn goal_ratio(goal: &str) -> Option<f64> {
    if goal.starts_with("faster than") {
        return Some(1.0);
    }
    // The last "≥ N" in the text: "≤ 1.5 s and ≥ 5× Syncthing" asks 5 of the ratio.
    let at = goal.rfind('≥')?;
    let num: String =
        goal[at + '≥'.len_utf8()..].trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    num.parse().ok()
}

/// Text for SVG: `<`, `&` and quotes escaped.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(case: &str, ratio: Option<f64>, goal: &str, met: Option<bool>) -> Headline {
        Headline {
            case: case.into(),
            reference: "ref <x>".into(),
            peerbox: "1 s".into(),
            theirs: "2 s".into(),
            ratio,
            goal: goal.into(),
            met,
        }
    }

    #[test]
    fn goals_name_their_ratio() {
        assert_eq!(goal_ratio("ratio ≥ 0.8"), Some(0.8));
        assert_eq!(goal_ratio("≥ 2.5× sendme"), Some(2.5));
        assert_eq!(goal_ratio("≤ 1.5 s and ≥ 5× Syncthing"), Some(5.0));
        assert_eq!(goal_ratio("faster than Syncthing"), Some(1.0));
        assert_eq!(goal_ratio("< 150 MiB"), None);
    }

    #[test]
    fn the_chart_has_a_bar_per_ratio_and_escapes_text() {
        let lines = [
            h("a & b", Some(2.0), "≥ 2× x", Some(true)),
            h("rss", None, "< 150 MiB", None),
            h("c", Some(0.5), "", None),
        ];
        let svg = render_chart(&lines, "peerbox 0.1.0");
        assert_eq!(svg.matches("<rect x=").count(), 2, "{svg}");
        assert!(svg.contains("a &amp; b vs ref &lt;x&gt;"), "{svg}");
        assert!(svg.contains("#2e7d32") && svg.contains("#888"), "{svg}");
        assert!(!svg.contains("rss vs"), "{svg}");
    }

    #[test]
    fn the_summary_lists_every_line_and_every_failure() {
        let step = |name| Step { name, what: "what it does", args: vec!["transfer".into()] };
        let outcomes = vec![
            Outcome {
                step: step("transfer"),
                ok: true,
                lines: vec![h("one", Some(1.5), "≥ 2× x", Some(false)), h("two", Some(0.5), INFORMATION, None)],
                why: None,
            },
            Outcome { step: step("sync"), ok: false, lines: vec![], why: Some("exited with 1".into()) },
        ];
        let text = render_summary(&outcomes, "peerbox 0.1.0", 3, false);
        assert!(text.contains("| one | 1 s | ref <x> | 2 s | 1.50 | ≥ 2× x | NOT met |"), "{text}");
        assert!(text.contains("| two | 1 s | ref <x> | 2 s | 0.50 | (information) | – |"), "{text}");
        assert!(text.contains("| what it does | FAILED |"), "{text}");
        assert!(text.contains("- `sync` (transfer): FAILED — exited with 1"), "{text}");
    }
}
