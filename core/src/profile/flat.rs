//! The flat named view of a [`Config`](super::Config): every parameter as one
//! or more `name = value` pairs, the spelling people write in a scenario's
//! `[profile]`, in the loadgen's `--set profile.NAME=VALUE` and in
//! `gossip-node --NAME VALUE` (dashes for underscores).
//!
//! A flat name is a config field's name plus a part's suffix, mechanically:
//! `node_timeout` (a `Duration`) is `node_timeout_ms`; `section` (a
//! [`SectionPolicy`]) is `section_per_thousand`, `section_min`, `section_max`,
//! `section_byte_budget`; `rumor` is `rumor_direction`, `rumor_fanout`, ...
//! Each field's type says how it spreads over parts, by implementing [`Flat`].

use alloc::format;
use alloc::string::{String, ToString};
use core::time::Duration;

use super::{CronSchedule, Dissemination, Membership, PongGossip, Quorum, SectionPolicy};
use crate::epidemic::data::StoreLimits;
use crate::epidemic::rumor::{RumorConfig, StopRule};
use crate::wire::Direction;

/// One part of a field's flat view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// Appended to the field's name ("" for the field itself).
    pub suffix: &'static str,
    /// What a value looks like, for help texts and errors.
    pub expects: &'static str,
}

/// Why a flat `name = value` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetError {
    /// No parameter has that name.
    Unknown,
    /// The value does not parse; what a value looks like.
    Invalid(&'static str),
}

impl core::fmt::Display for SetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SetError::Unknown => f.write_str("unknown parameter"),
            SetError::Invalid(expects) => write!(f, "expected {expects}"),
        }
    }
}

/// A value type of a config field, spread over named parts.
pub trait Flat {
    /// The parts, in the order they are listed.
    const PARTS: &'static [Part];
    /// Part `part`'s value as text.
    fn get(&self, part: usize) -> String;
    /// Sets part `part` from text (range checks are the builder's).
    ///
    /// # Errors
    /// [`SetError::Invalid`] when the text does not parse.
    fn set(&mut self, part: usize, text: &str) -> Result<(), SetError>;
}

const MS: Part = Part {
    suffix: "_ms",
    expects: "milliseconds",
};
const INTEGER: Part = Part {
    suffix: "",
    expects: "an integer",
};

fn parse<T: core::str::FromStr>(text: &str, part: Part) -> Result<T, SetError> {
    text.trim()
        .parse()
        .map_err(|_| SetError::Invalid(part.expects))
}

/// Milliseconds as text: whole numbers without a fraction (`2000`), others
/// to the microsecond (`0.5`).
fn ms_text(d: Duration) -> String {
    let us = d.as_micros();
    if us % 1000 == 0 {
        (us / 1000).to_string()
    } else {
        format!("{}", us as f64 / 1000.0)
    }
}

fn ms_parse(text: &str) -> Result<Duration, SetError> {
    let ms: f64 = parse(text, MS)?;
    // A day is the longest any duration here may be; beyond a thousand years
    // the conversion itself would fail, so refuse at parse time.
    if !(ms.is_finite() && (0.0..=3.0e13).contains(&ms)) {
        return Err(SetError::Invalid(MS.expects));
    }
    // Non-negative, so adding a half and truncating rounds (no_std has no `round`).
    Ok(Duration::from_micros((ms * 1000.0 + 0.5) as u64))
}

impl Flat for Duration {
    const PARTS: &'static [Part] = &[MS];
    fn get(&self, _: usize) -> String {
        ms_text(*self)
    }
    fn set(&mut self, _: usize, text: &str) -> Result<(), SetError> {
        *self = ms_parse(text)?;
        Ok(())
    }
}

macro_rules! flat_integer {
    ($($t:ty),*) => {$(
        impl Flat for $t {
            const PARTS: &'static [Part] = &[INTEGER];
            fn get(&self, _: usize) -> String {
                self.to_string()
            }
            fn set(&mut self, _: usize, text: &str) -> Result<(), SetError> {
                *self = parse(text, INTEGER)?;
                Ok(())
            }
        }
    )*};
}
flat_integer!(u32, usize);

impl Flat for bool {
    const PARTS: &'static [Part] = &[Part {
        suffix: "",
        expects: "true or false",
    }];
    fn get(&self, _: usize) -> String {
        self.to_string()
    }
    fn set(&mut self, _: usize, text: &str) -> Result<(), SetError> {
        *self = parse(text, Self::PARTS[0])?;
        Ok(())
    }
}

/// A field that is one of a few names.
macro_rules! flat_named {
    ($t:ty, $expects:literal) => {
        impl Flat for $t {
            const PARTS: &'static [Part] = &[Part {
                suffix: "",
                expects: $expects,
            }];
            fn get(&self, _: usize) -> String {
                self.name().into()
            }
            fn set(&mut self, _: usize, text: &str) -> Result<(), SetError> {
                *self = <$t>::from_name(text.trim()).ok_or(SetError::Invalid($expects))?;
                Ok(())
            }
        }
    };
}
flat_named!(Dissemination, "off, rumor, anti-entropy or both");
flat_named!(Direction, "push, pull or push-pull");
flat_named!(PongGossip, "wall-second, age-seconds or first-hand");
flat_named!(Membership, "redis or swim");

/// An optional integer: `none` or the number.
fn opt_text<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "none".into(), |v| v.to_string())
}

fn opt_parse<T: core::str::FromStr>(text: &str, part: Part) -> Result<Option<T>, SetError> {
    match text.trim() {
        "none" => Ok(None),
        t => parse(t, part).map(Some),
    }
}

impl Flat for Quorum {
    const PARTS: &'static [Part] = &[Part {
        suffix: "",
        expects: "majority or a number of reports",
    }];
    fn get(&self, _: usize) -> String {
        match self {
            Quorum::Majority => "majority".into(),
            Quorum::AtLeast(n) => n.to_string(),
        }
    }
    fn set(&mut self, _: usize, text: &str) -> Result<(), SetError> {
        *self = match text.trim() {
            "majority" => Quorum::Majority,
            t => Quorum::AtLeast(parse(t, Self::PARTS[0])?),
        };
        Ok(())
    }
}

impl Flat for CronSchedule {
    const PARTS: &'static [Part] = &[
        Part {
            suffix: "",
            expects: "grid or after-run",
        },
        Part {
            suffix: "_slack_ms",
            expects: "milliseconds (after-run only)",
        },
    ];
    fn get(&self, part: usize) -> String {
        match (self, part) {
            (CronSchedule::Grid, 0) => "grid".into(),
            (CronSchedule::AfterRun { .. }, 0) => "after-run".into(),
            (CronSchedule::Grid, _) => "0".into(),
            (CronSchedule::AfterRun { slack }, _) => ms_text(*slack),
        }
    }
    fn set(&mut self, part: usize, text: &str) -> Result<(), SetError> {
        let invalid = SetError::Invalid(Self::PARTS[part].expects);
        *self = match (part, text.trim(), *self) {
            (0, "grid", _) => CronSchedule::Grid,
            // Keep a slack set before; Redis's 1 ms otherwise.
            (0, "after-run", CronSchedule::AfterRun { slack }) => CronSchedule::AfterRun { slack },
            (0, "after-run", CronSchedule::Grid) => CronSchedule::AfterRun {
                slack: Duration::from_millis(1),
            },
            (0, _, _) => return Err(invalid),
            (_, t, CronSchedule::AfterRun { .. }) => CronSchedule::AfterRun {
                slack: ms_parse(t)?,
            },
            (_, t, CronSchedule::Grid) if ms_parse(t)?.is_zero() => CronSchedule::Grid,
            (_, _, CronSchedule::Grid) => return Err(invalid),
        };
        Ok(())
    }
}

impl Flat for SectionPolicy {
    const PARTS: &'static [Part] = &[
        Part {
            suffix: "_per_thousand",
            expects: "an integer",
        },
        Part {
            suffix: "_min",
            expects: "an integer",
        },
        Part {
            suffix: "_max",
            expects: "an integer or none",
        },
        Part {
            suffix: "_byte_budget",
            expects: "bytes or none",
        },
    ];
    fn get(&self, part: usize) -> String {
        match part {
            0 => self.per_thousand.to_string(),
            1 => self.min.to_string(),
            2 => opt_text(self.max),
            _ => opt_text(self.byte_budget),
        }
    }
    fn set(&mut self, part: usize, text: &str) -> Result<(), SetError> {
        let p = Self::PARTS[part];
        match part {
            0 => self.per_thousand = parse(text, p)?,
            1 => self.min = parse(text, p)?,
            2 => self.max = opt_parse(text, p)?,
            _ => self.byte_budget = opt_parse(text, p)?,
        }
        Ok(())
    }
}

impl Flat for RumorConfig {
    const PARTS: &'static [Part] = &[
        Part {
            suffix: "_direction",
            expects: "push, pull or push-pull",
        },
        Part {
            suffix: "_fanout",
            expects: "an integer",
        },
        Part {
            suffix: "_stop",
            expects: "feedback-counter, feedback-coin, blind-counter or blind-coin",
        },
        Part {
            suffix: "_stop_k",
            expects: "an integer",
        },
        Part {
            suffix: "_max_hot",
            expects: "an integer",
        },
        Part {
            suffix: "_max_hot_rounds",
            expects: "an integer",
        },
    ];
    fn get(&self, part: usize) -> String {
        match part {
            0 => self.direction.name().into(),
            1 => self.fanout.to_string(),
            2 => self.stop.name().into(),
            3 => self.stop.k.to_string(),
            4 => self.max_hot.to_string(),
            _ => self.max_hot_rounds.to_string(),
        }
    }
    fn set(&mut self, part: usize, text: &str) -> Result<(), SetError> {
        let p = Self::PARTS[part];
        match part {
            0 => self.direction.set(0, text)?,
            1 => self.fanout = parse(text, p)?,
            2 => {
                let k = self.stop.k;
                self.stop =
                    StopRule::from_name(text.trim(), k).ok_or(SetError::Invalid(p.expects))?;
            }
            // Range (1..=253) is the builder's check; here only what fits a byte.
            3 => self.stop.k = parse(text, p)?,
            4 => self.max_hot = parse(text, p)?,
            _ => self.max_hot_rounds = parse(text, p)?,
        }
        Ok(())
    }
}

impl Flat for StoreLimits {
    const PARTS: &'static [Part] = &[
        Part {
            suffix: "_max_entries",
            expects: "an integer",
        },
        Part {
            suffix: "_max_key_len",
            expects: "bytes",
        },
        Part {
            suffix: "_max_value_len",
            expects: "bytes",
        },
        Part {
            suffix: "_max_bytes",
            expects: "bytes",
        },
    ];
    fn get(&self, part: usize) -> String {
        match part {
            0 => self.max_entries,
            1 => self.max_key_len,
            2 => self.max_value_len,
            _ => self.max_bytes,
        }
        .to_string()
    }
    fn set(&mut self, part: usize, text: &str) -> Result<(), SetError> {
        let v = parse(text, Self::PARTS[part])?;
        match part {
            0 => self.max_entries = v,
            1 => self.max_key_len = v,
            2 => self.max_value_len = v,
            _ => self.max_bytes = v,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_back_as_written() {
        let mut d = Duration::ZERO;
        for text in ["2000", "0.5", "1", "0"] {
            d.set(0, text).unwrap();
            assert_eq!(d.get(0), text);
        }
        assert_eq!(d.set(0, "-1"), Err(SetError::Invalid("milliseconds")));
        assert_eq!(d.set(0, "2s"), Err(SetError::Invalid("milliseconds")));
        assert!(d.set(0, "inf").is_err());
    }

    #[test]
    fn cron_slack_needs_after_run() {
        let mut c = CronSchedule::Grid;
        assert!(c.set(1, "1").is_err());
        c.set(1, "0").unwrap();
        c.set(0, "after-run").unwrap();
        assert_eq!(
            c,
            CronSchedule::AfterRun {
                slack: Duration::from_millis(1)
            }
        );
        c.set(1, "0.25").unwrap();
        c.set(0, "after-run").unwrap();
        assert_eq!(c.get(1), "0.25");
    }

    #[test]
    fn options_and_quorum_take_their_words() {
        let mut s = SectionPolicy::REDIS;
        s.set(2, "7").unwrap();
        assert_eq!(s.max, Some(7));
        s.set(2, "none").unwrap();
        assert_eq!(s.get(2), "none");
        let mut q = Quorum::Majority;
        q.set(0, "2").unwrap();
        assert_eq!(q, Quorum::AtLeast(2));
        assert!(q.set(0, "most").is_err());
    }
}
