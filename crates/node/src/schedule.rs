//! Reserved downloads, as webhards call them: a daily window of local time (say
//! 01:00–07:00) in which large downloads from links run. Outside it they wait in
//! the queue as "scheduled" and resume, from their verified blocks, when it opens.
//!
//! Only the window arithmetic lives here; the transfer queue asks [`Window::contains`]
//! and sleeps [`Window::until_change`].

use std::time::Duration;

use crate::NodeError;

const DAY: u32 = 24 * 60;

/// A daily window of local wall-clock time, minute precision; it may wrap past
/// midnight (22:00–06:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: u32,
    end: u32,
}

fn hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Window {
    /// Parses `HH:MM-HH:MM` (an en dash or `~` also separates, as people write it).
    pub fn parse(s: &str) -> Result<Self, NodeError> {
        let bad = || NodeError::BadSetting(format!("{s:?} is not a window like 01:00-07:00"));
        let (a, b) = s.split_once(['-', '–', '~']).ok_or_else(bad)?;
        let (start, end) = (hhmm(a).ok_or_else(bad)?, hhmm(b).ok_or_else(bad)?);
        if start == end {
            return Err(NodeError::BadSetting("a window must not start and end at the same minute".into()));
        }
        Ok(Self { start, end })
    }

    /// Whether local time `minute` (of the day, 0..1440) is inside.
    pub fn contains(&self, minute: u32) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// How long from local time `second` (of the day) until the window next opens
    /// or closes.
    pub fn until_change(&self, second: u32) -> Duration {
        let now = second % (DAY * 60);
        let next = [self.start * 60, self.end * 60]
            .into_iter()
            .map(|b| (b + DAY * 60 - now) % (DAY * 60))
            .filter(|d| *d > 0)
            .min()
            .unwrap_or(DAY * 60);
        Duration::from_secs(next as u64)
    }

    /// The window as `HH:MM-HH:MM`.
    pub fn text(&self) -> String {
        format!("{:02}:{:02}-{:02}:{:02}", self.start / 60, self.start % 60, self.end / 60, self.end % 60)
    }

    /// When it opens, as `HH:MM`.
    pub fn opens(&self) -> String {
        format!("{:02}:{:02}", self.start / 60, self.start % 60)
    }
}

/// The second of the local day now.
pub(crate) fn local_second() -> u32 {
    let t = jiff::ZonedDateTime::now();
    (t.hour() as u32 * 60 + t.minute() as u32) * 60 + t.second() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_as_people_write_them_and_nonsense_is_refused() {
        assert_eq!(Window::parse("01:00-07:00").unwrap().text(), "01:00-07:00");
        assert_eq!(Window::parse(" 1:30 – 6:05 ").unwrap().text(), "01:30-06:05");
        assert_eq!(Window::parse("22:00~06:00").unwrap().text(), "22:00-06:00");
        for bad in ["", "7-8", "25:00-26:00", "01:60-02:00", "01:00-01:00", "01:00", "a:bc-d:ef", "01:00-07:00-09:00"] {
            assert!(matches!(Window::parse(bad), Err(NodeError::BadSetting(_))), "{bad:?}");
        }
    }

    #[test]
    fn inside_outside_and_across_midnight() {
        let night = Window::parse("01:00-07:00").unwrap();
        assert!(!night.contains(59) && night.contains(60) && night.contains(419) && !night.contains(420));
        let wrap = Window::parse("22:00-06:00").unwrap();
        assert!(wrap.contains(23 * 60) && wrap.contains(0) && wrap.contains(359) && !wrap.contains(360));
        assert!(!wrap.contains(12 * 60));
    }

    #[test]
    fn the_next_change_is_the_nearest_edge() {
        let night = Window::parse("01:00-07:00").unwrap();
        // At 00:59:30 it opens in 30 s; just after it opens, it closes in 6 h.
        assert_eq!(night.until_change(59 * 60 + 30), Duration::from_secs(30));
        assert_eq!(night.until_change(60 * 60), Duration::from_secs(6 * 3600));
        // At 12:00 the next edge is tomorrow's 01:00.
        assert_eq!(night.until_change(12 * 3600), Duration::from_secs(13 * 3600));
        let wrap = Window::parse("22:00-06:00").unwrap();
        assert_eq!(wrap.until_change(23 * 3600), Duration::from_secs(7 * 3600));
    }
}
