//! Protocol parameters as people write them: a scenario's `[profile]`
//! section, and what a loadgen sends an agent to start nodes with. A profile
//! name and the parameters set, by the core's flat names
//! ([`gossip_core::profile::params`]: `node_timeout_ms = 2000`,
//! `random_ping_fanout = 2`); every other parameter is the profile's. Turned
//! into a validated core [`Config`] by [`ProfileParams::config`].

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{anyhow, Result};
use gossip_core::profile::{params, SetError};
use gossip_core::{Config, Dissemination, Profile};
use serde::{Deserialize, Serialize};

/// A profile and the parameters set over it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "Written")]
pub struct ProfileParams {
    /// Profile name: `redis` or `lean`.
    pub name: String,
    /// Parameters set, by flat name; the others are the profile's.
    #[serde(flatten)]
    pub set: BTreeMap<String, Value>,
    /// Old spellings met while reading, as (old, new): a caller that reads
    /// what people wrote warns about them.
    #[serde(skip)]
    pub renamed: Vec<(String, String)>,
}

impl Default for ProfileParams {
    /// The redis profile, nothing set.
    fn default() -> Self {
        ProfileParams {
            name: Profile::Redis.name().into(),
            set: BTreeMap::new(),
            renamed: Vec::new(),
        }
    }
}

/// A parameter's value as written: TOML and JSON keep numbers and booleans
/// apart from text; the core reads them all as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(u64),
    /// A fraction (milliseconds below one).
    Float(f64),
    /// A name (`push-pull`, `majority`, `none`).
    Text(String),
}

impl Value {
    /// The value the core's text means: a whole number, a boolean, or text.
    pub fn from_text(text: &str) -> Value {
        if let Ok(n) = text.parse() {
            Value::Int(n)
        } else if let Ok(b) = text.parse() {
            Value::Bool(b)
        } else if let Ok(f) = text.parse::<f64>() {
            Value::Float(f)
        } else {
            Value::Text(text.into())
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

/// What a file or a report holds, before old spellings are brought up to date.
#[derive(Deserialize)]
struct Written {
    #[serde(default)]
    name: Option<String>,
    #[serde(flatten)]
    set: BTreeMap<String, Value>,
}

/// Spellings before parameters were declared once (reports and scenario
/// files of that time), and their flat names now.
const RENAMED: [(&str, &str); 7] = [
    ("fanout", "random_ping_fanout"),
    ("sample", "random_ping_sample"),
    ("view", "max_peers"),
    ("section_bytes", "section_byte_budget"),
    ("rumor_mode", "rumor_direction"),
    ("rumor_k", "rumor_stop_k"),
    ("anti_entropy_mode", "anti_entropy_direction"),
];

/// Old parameters where 0 meant "the profile's value" or "none".
const ZERO_MEANT_UNSET: [&str; 5] = [
    "ping_interval_ms",
    "quorum",
    "max_peers",
    "section_max",
    "section_byte_budget",
];

impl From<Written> for ProfileParams {
    fn from(w: Written) -> Self {
        let old = w.set.keys().any(|k| RENAMED.iter().any(|(o, _)| o == k));
        let mut p = ProfileParams::default();
        if let Some(name) = w.name {
            p.name = name;
        }
        for (k, v) in w.set {
            let new = RENAMED.iter().find(|(o, _)| *o == k).map(|(_, n)| *n);
            let key = new.map_or_else(|| k.clone(), String::from);
            if new.is_some() {
                p.renamed.push((k, key.clone()));
            }
            // The old format wrote every field, 0 for "the profile's".
            if old && v == Value::Int(0) && ZERO_MEANT_UNSET.contains(&key.as_str()) {
                continue;
            }
            p.set.insert(key, v);
        }
        p
    }
}

impl ProfileParams {
    /// The named profile with nothing set.
    pub fn named(profile: Profile) -> Self {
        ProfileParams {
            name: profile.name().into(),
            ..ProfileParams::default()
        }
    }

    /// Sets one parameter, by flat name, from text.
    pub fn with(mut self, name: &str, text: &str) -> Self {
        self.set.insert(name.into(), Value::from_text(text));
        self
    }

    /// The profile named.
    ///
    /// # Errors
    /// An unknown name, listing the known ones.
    pub fn profile(&self) -> Result<Profile> {
        Profile::from_name(&self.name).ok_or_else(|| {
            let known: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
            anyhow!(
                "profile.name: unknown profile {:?} (known: {})",
                self.name,
                known.join(", ")
            )
        })
    }

    /// The validated core `Config`.
    ///
    /// # Errors
    /// An unknown profile or parameter, a value that does not parse, or the
    /// core's `ConfigError`, each naming the parameter as `profile.NAME`.
    pub fn config(&self) -> Result<Config> {
        let mut b = self.profile()?.builder();
        for (name, v) in &self.set {
            b.set(name, &v.to_string()).map_err(|e| match e {
                SetError::Unknown => anyhow!(
                    "profile.{name}: unknown parameter (known: name, {})",
                    params().map(|p| p.name()).collect::<Vec<_>>().join(", ")
                ),
                SetError::Invalid(_) => anyhow!("profile.{name}: {:?}: {e}", v.to_string()),
            })?;
        }
        b.build()
            .map_err(|e| anyhow!("profile.{}: {}", e.param(), e.problem))
    }

    /// Every parameter, resolved: what the profile and the settings make,
    /// as a report records it.
    ///
    /// # Errors
    /// As [`ProfileParams::config`].
    pub fn resolved(&self) -> Result<ProfileParams> {
        let c = self.config()?;
        Ok(ProfileParams {
            name: self.name.clone(),
            set: c
                .flat()
                .into_iter()
                .map(|(n, v)| (n, Value::from_text(&v)))
                .collect(),
            renamed: Vec::new(),
        })
    }

    /// One parameter's value as text, set or the profile's.
    ///
    /// # Errors
    /// As [`ProfileParams::config`], or a name no parameter has.
    pub fn get(&self, name: &str) -> Result<String> {
        self.config()?
            .flat()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| anyhow!("profile.{name}: unknown parameter"))
    }

    /// Whether published updates spread (a `publish` action needs it).
    pub fn disseminates(&self) -> bool {
        self.config()
            .is_ok_and(|c| c.dissemination() != Dissemination::Off)
    }
}

/// `gossip-node`'s flags for the protocol parameters, one per flat name with
/// dashes for underscores (`--node-timeout-ms`, `--random-ping-fanout`),
/// added to a command mechanically from the core's list.
pub fn add_flags(mut cmd: clap::Command) -> clap::Command {
    for p in params() {
        let name = p.name();
        let e = p.part.expects;
        let value = if e.starts_with("milliseconds") {
            "MS"
        } else if e.starts_with("an integer") {
            "N"
        } else if e.starts_with("bytes") {
            "BYTES"
        } else if e == "true or false" {
            "BOOL"
        } else {
            "NAME"
        };
        // The doc's first sentence, and what the value looks like.
        let doc: Vec<&str> = p.doc.lines().map(str::trim).collect();
        let doc = doc.join(" ");
        let summary = doc.split(". ").next().unwrap_or_default();
        let summary = summary.trim_end_matches('.');
        cmd = cmd.arg(
            clap::Arg::new(name.clone())
                .long(name.replace('_', "-"))
                .value_name(value)
                .help(format!("{summary} ({})", p.part.expects))
                .help_heading("Protocol parameters (default: the profile's)"),
        );
    }
    cmd
}

/// The protocol parameters given as flags to a command made by [`add_flags`],
/// by flat name.
pub fn flags(m: &clap::ArgMatches) -> Vec<(String, String)> {
    params()
        .filter_map(|p| {
            let name = p.name();
            let v = m.get_one::<String>(&name)?.clone();
            Some((name, v))
        })
        .collect()
}

/// `docs/parameters.md`: every parameter, its values in each profile and
/// its documentation, made from the core's one declaration (a test keeps the
/// file in step).
pub fn reference() -> String {
    let flats: Vec<(Profile, Vec<(String, String)>)> = Profile::ALL
        .iter()
        .map(|&p| {
            let c = p.builder().build().expect("the profiles' values are valid");
            (p, c.flat())
        })
        .collect();
    let mut o = String::from(
        "# Protocol parameters\n\n\
         Generated from `core/src/profile/mod.rs` (the one declaration) by\n\
         `GOSSIP_BLESS=1 cargo test -p gossip-node --test parameters`; do not edit.\n\n\
         One name per parameter everywhere: a scenario's `[profile]` section\n\
         (`node_timeout_ms = 2000`), the loadgen's `--set profile.NAME=VALUE` and\n\
         `--sweep profile.NAME=V1,V2`, and `gossip-node --NAME VALUE` with dashes\n\
         for underscores (`--node-timeout-ms 2000`). Durations are milliseconds\n\
         (fractions allowed); derived parameters follow node_timeout unless set.\n\n",
    );
    o.push_str("| parameter |");
    for (p, _) in &flats {
        o.push_str(&format!(" {} |", p.name()));
    }
    o.push_str(" value | meaning |\n|---|");
    for _ in &flats {
        o.push_str("---|");
    }
    o.push_str("---|---|\n");
    for (i, param) in params().enumerate() {
        o.push_str(&format!("| `{}` |", param.name()));
        for (_, flat) in &flats {
            o.push_str(&format!(" {} |", flat[i].1));
        }
        let doc: Vec<&str> = param.doc.lines().map(str::trim).collect();
        o.push_str(&format!(
            " {} | {} |\n",
            param.part.expects,
            doc.join(" ").replace('|', "\\|")
        ));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_use_the_core_flat_names() {
        let p = ProfileParams::named(Profile::Lean)
            .with("node_timeout_ms", "2000")
            .with("random_ping_fanout", "2")
            .with("quorum", "majority");
        let c = p.config().unwrap();
        assert_eq!(c.node_timeout().as_millis(), 2000);
        assert_eq!(c.random_ping_fanout(), 2);
        assert_eq!(c.max_peers(), 32); // lean's
        let e = ProfileParams::named(Profile::Redis)
            .with("fanout", "2")
            .config()
            .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("profile.fanout: unknown parameter"));
        let e = ProfileParams::named(Profile::Redis)
            .with("tick_ms", "0")
            .config()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "profile.tick_ms: must be between 1 ms and 10 s"
        );
        let e = ProfileParams::named(Profile::Redis)
            .with("partial_view", "maybe")
            .config()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "profile.partial_view: \"maybe\": expected true or false"
        );
    }

    #[test]
    fn old_spellings_are_read_with_their_zeros() {
        // As a report from before the flat names recorded a lean run.
        let old: ProfileParams = serde_json::from_str(
            r#"{"name":"lean","node_timeout_ms":3000,"fanout":2,"view":0,"quorum":0,
                "section_max":0,"section_bytes":0,"ping_interval_ms":0,"rumor_mode":"push"}"#,
        )
        .unwrap();
        let c = old.config().unwrap();
        assert_eq!(c.random_ping_fanout(), 2);
        assert_eq!(c.max_peers(), 32);
        assert_eq!(c.section().max, None);
        assert_eq!(c.ping_interval().as_millis(), 1500);
        assert!(old
            .renamed
            .contains(&("fanout".into(), "random_ping_fanout".into())));
        // Written now, a 0 is a 0.
        let new: ProfileParams = serde_json::from_str(r#"{"quorum":0}"#).unwrap();
        assert_eq!(new.name, "redis");
        assert!(new.config().is_err());
    }

    #[test]
    fn resolved_records_every_parameter_and_reads_back() {
        let p = ProfileParams::named(Profile::Lean).with("node_timeout_ms", "2000");
        let r = p.resolved().unwrap();
        assert_eq!(r.set.len(), params().count());
        let json = serde_json::to_string(&r).unwrap();
        let back: ProfileParams = serde_json::from_str(&json).unwrap();
        assert_eq!(back.config().unwrap(), p.config().unwrap());
        assert_eq!(r.get("max_peers").unwrap(), "32");
    }
}
