//! The node's `config.yaml` (`--node-config`), read for what the HA setup requires of it:
//! `system.active: false`, the admin port the elector calls, the probe port, a p2p identity
//! (`network.masterKey`) of its own, and with key custody this replica's placeholder as
//! `chain.producerPrivKey`, never the operator's key. [`judge`] says what fits and what to
//! change; `elector check` prints it, the running elector logs what does not fit and publishes
//! the identity's [`fingerprint`] in its registry record, so that replicas sharing one are
//! found.
//!
//! Key material is never printed or logged: the producer keys are shown by their IoTeX
//! address, the master key by a salted, truncated hash. Parsed with yaml-rust2 (maintained, pure
//! Rust); a parse error says where, not what.

use crate::custody::{KeyCustody, ProducerKey};
use sha3::{Digest, Sha3_256};
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

/// What the HA setup needs to know of the node's configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeConfig {
    /// `system.active` as written: `None` when absent (iotex-core then starts active).
    pub active: Option<Yaml>,
    /// `system.httpAdminPort`.
    pub admin_port: Option<Yaml>,
    /// `system.httpStatsPort` (iotex-core's default: 8080).
    pub stats_port: Option<Yaml>,
    /// `network.masterKey`; never shown.
    master_key: Option<String>,
    /// `chain.producerPrivKey`, split at commas; never shown.
    producer_keys: Vec<String>,
}

impl NodeConfig {
    /// Reads and parses `path`. The error names the flag and the file, and says where the
    /// YAML broke, never what it holds.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--node-config {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("--node-config {}: {e}", path.display()))
    }

    /// Parses the YAML text of a node configuration.
    pub fn parse(text: &str) -> Result<Self, String> {
        let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
        let Some(doc) = docs.into_iter().next() else {
            return Ok(NodeConfig::default());
        };
        if doc.as_hash().is_none() {
            return Err("not a YAML mapping (iotex-core's config.yaml is one)".to_owned());
        }
        let present = |y: &Yaml| (!y.is_badvalue() && !y.is_null()).then(|| y.clone());
        let text_of = |y: &Yaml| match y {
            Yaml::String(s) => Some(s.clone()),
            Yaml::Integer(n) => Some(n.to_string()),
            _ => None,
        };
        Ok(NodeConfig {
            active: present(&doc["system"]["active"]),
            admin_port: present(&doc["system"]["httpAdminPort"]),
            stats_port: present(&doc["system"]["httpStatsPort"]),
            master_key: text_of(&doc["network"]["masterKey"]).filter(|k| !k.trim().is_empty()),
            producer_keys: text_of(&doc["chain"]["producerPrivKey"])
                .map(|keys| {
                    keys.split(',')
                        .map(|k| k.trim().to_owned())
                        .filter(|k| !k.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The fingerprint of the p2p identity for the election at `key`, if a master key is set.
    pub fn fingerprint(&self, key: &str) -> Option<String> {
        self.master_key
            .as_deref()
            .map(|master| fingerprint(key, master))
    }
}

/// A fingerprint of a node's `network.masterKey`: the first 8 bytes of SHA3-256 over a domain
/// tag, the election key and the master key, in hex. Equal keys give equal fingerprints within
/// one election; the key cannot be recovered from it, and the salt keeps it from matching
/// anything outside the election.
pub fn fingerprint(election_key: &str, master_key: &str) -> String {
    let mut hash = Sha3_256::new();
    hash.update(b"iotex-elector node p2p identity\0");
    hash.update(election_key.as_bytes());
    hash.update(b"\0");
    hash.update(master_key.as_bytes());
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How a finding weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// What the elector knows that the configuration must agree with.
pub struct Expected<'a> {
    /// The port of `--iotex-admin`.
    pub admin_port: Option<u16>,
    /// The port of `--iotex-probe`.
    pub probe_port: Option<u16>,
    /// Key custody's keys, when the elector runs with them.
    pub custody: Option<&'a KeyCustody>,
    /// This replica's fingerprint, and the other registered replicas' (value, fingerprint),
    /// when known.
    pub others: Option<&'a [(String, String)]>,
    /// The election key (the fingerprint's salt).
    pub election_key: &'a str,
}

/// Each finding about `config`, one line each, saying what to change.
pub fn judge(config: &NodeConfig, expected: &Expected) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    match &config.active {
        Some(Yaml::Boolean(false)) => out.push((
            Level::Ok,
            "system.active: false (the node starts standby; the elector activates it)".to_owned(),
        )),
        Some(Yaml::Boolean(true)) => out.push((
            Level::Fail,
            "system.active: true: the node starts active, before its elector can say whether \
             it may; set system.active: false on every replica"
                .to_owned(),
        )),
        None => out.push((
            Level::Fail,
            "system.active is not set, and iotex-core starts active by default: set \
             system.active: false on every replica"
                .to_owned(),
        )),
        Some(other) => out.push((
            Level::Fail,
            format!(
                "system.active is {}, not a boolean: write system.active: false (unquoted)",
                shown(other)
            ),
        )),
    }
    let port = |y: &Option<Yaml>| y.as_ref().and_then(Yaml::as_i64);
    match (port(&config.admin_port), expected.admin_port) {
        (None, want) => out.push((
            Level::Fail,
            format!(
                "system.httpAdminPort is not set: the node then serves no /ha for the elector; \
                 set system.httpAdminPort: {}",
                want.unwrap_or(9009)
            ),
        )),
        (Some(0), want) => out.push((
            Level::Fail,
            format!(
                "system.httpAdminPort is 0 (off): set it to {}, the port of --iotex-admin",
                want.unwrap_or(9009)
            ),
        )),
        (Some(have), Some(want)) if have != i64::from(want) => out.push((
            Level::Fail,
            format!(
                "system.httpAdminPort is {have}, but --iotex-admin names port {want}: make them \
                 the same"
            ),
        )),
        (Some(have), _) => out.push((
            Level::Ok,
            format!("system.httpAdminPort: {have} (the node's /ha, on its 127.0.0.1)"),
        )),
    }
    let stats = port(&config.stats_port).unwrap_or(8080);
    if let Some(want) = expected.probe_port
        && stats != i64::from(want)
    {
        out.push((
            Level::Warn,
            format!(
                "system.httpStatsPort is {stats}{}, but --iotex-probe names port {want}: the \
                 readiness probe would not reach the node",
                if config.stats_port.is_none() {
                    " (iotex-core's default)"
                } else {
                    ""
                }
            ),
        ));
    }
    match (config.fingerprint(expected.election_key), expected.others) {
        (None, _) => out.push((
            Level::Warn,
            "network.masterKey is not set: give each replica a p2p identity of its own (a \
             distinct masterKey), or the node picks one at random at every start"
                .to_owned(),
        )),
        (Some(ours), Some(others)) => {
            let same: Vec<&str> = others
                .iter()
                .filter(|(_, theirs)| *theirs == ours)
                .map(|(value, _)| value.as_str())
                .collect();
            if !same.is_empty() {
                out.push((
                    Level::Fail,
                    format!(
                        "network.masterKey is the same as {}'s (fingerprint {ours}): two nodes \
                         with one p2p identity; give each replica its own masterKey",
                        same.join(", ")
                    ),
                ));
            } else if others.is_empty() {
                out.push((
                    Level::Warn,
                    format!(
                        "network.masterKey set (fingerprint {ours}); no other replica publishes \
                         its fingerprint to compare with (give every elector --node-config)"
                    ),
                ));
            } else {
                out.push((
                    Level::Ok,
                    format!(
                        "network.masterKey (fingerprint {ours}) differs from those of the {} \
                         other registered replica{}",
                        others.len(),
                        if others.len() == 1 { "" } else { "s" }
                    ),
                ));
            }
        }
        (Some(ours), None) => out.push((
            Level::Ok,
            format!("network.masterKey set (fingerprint {ours})"),
        )),
    }
    let addresses: Vec<Result<ProducerKey, String>> = config
        .producer_keys
        .iter()
        .map(|k| ProducerKey::parse(k))
        .collect();
    match (expected.custody, addresses.as_slice()) {
        (_, []) => out.push((
            Level::Warn,
            "chain.producerPrivKey is not set: the node signs nothing as a delegate".to_owned(),
        )),
        (None, keys) => {
            let shown: Vec<String> = keys
                .iter()
                .map(|k| match k {
                    Ok(key) => key.address().to_owned(),
                    Err(_) => "(not a key)".to_owned(),
                })
                .collect();
            out.push((
                Level::Ok,
                format!(
                    "chain.producerPrivKey: {} (check it is the delegate's operator address)",
                    shown.join(", ")
                ),
            ));
        }
        (Some(custody), keys) => {
            for key in keys {
                match key {
                    Ok(key) if key.address() == custody.placeholder.address() => out.push((
                        Level::Ok,
                        format!(
                            "chain.producerPrivKey is this replica's placeholder ({}): it \
                             cannot sign as the delegate until its elector installs the \
                             operator's key",
                            key.address()
                        ),
                    )),
                    Ok(key) if key.address() == custody.operator.address() => out.push((
                        Level::Fail,
                        format!(
                            "chain.producerPrivKey is the operator's key ({}): with key \
                             custody the node's configuration holds this replica's placeholder \
                             (--placeholder-key-file), so that a standby cannot sign; put the \
                             placeholder there and restart the node",
                            key.address()
                        ),
                    )),
                    Ok(key) => out.push((
                        Level::Fail,
                        format!(
                            "chain.producerPrivKey ({}) is neither this replica's placeholder \
                             ({}) nor the operator's key: put the placeholder there",
                            key.address(),
                            custody.placeholder.address()
                        ),
                    )),
                    Err(why) => out.push((
                        Level::Fail,
                        format!(
                            "chain.producerPrivKey: {why}; put this replica's placeholder there"
                        ),
                    )),
                }
            }
        }
    }
    out
}

/// A YAML scalar as the finding shows it (never a key: only `system.active` comes here).
fn shown(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => format!("the string {s:?}"),
        Yaml::Integer(n) => n.to_string(),
        Yaml::Real(r) => r.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two keys made for these tests only (no delegate's).
    const PLACEHOLDER: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const OPERATOR: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn config(active: &str, admin: &str, producer: &str, master: &str) -> String {
        format!(
            "network:\n  masterKey: \"{master}\"\n  externalPort: 4689\nchain:\n  \
             producerPrivKey: \"{producer}\"\nsystem:\n  active: {active}\n{admin}  \
             httpStatsPort: 8080\n"
        )
    }

    fn custody() -> KeyCustody {
        KeyCustody::new(
            ProducerKey::parse(OPERATOR).expect("a key"),
            ProducerKey::parse(PLACEHOLDER).expect("a key"),
            "token",
        )
    }

    fn levels(findings: &[(Level, String)]) -> Vec<Level> {
        findings.iter().map(|(l, _)| *l).collect()
    }

    fn expected<'a>(
        custody: Option<&'a KeyCustody>,
        others: Option<&'a [(String, String)]>,
    ) -> Expected<'a> {
        Expected {
            admin_port: Some(9009),
            probe_port: Some(8080),
            custody,
            others,
            election_key: "/iotex-server",
        }
    }

    #[test]
    fn a_replica_set_up_for_ha_passes() {
        let text = config("false", "  httpAdminPort: 9009\n", PLACEHOLDER, "replica-a");
        let parsed = NodeConfig::parse(&text).expect("valid");
        let custody = custody();
        let others = vec![("b".to_owned(), fingerprint("/iotex-server", "replica-b"))];
        let findings = judge(&parsed, &expected(Some(&custody), Some(&others)));
        assert_eq!(levels(&findings), [Level::Ok; 4], "{findings:#?}");
        let all = format!("{findings:?}");
        // No key material in any line, only addresses and fingerprints.
        assert!(
            !all.contains(PLACEHOLDER) && !all.contains("replica-a"),
            "{all}"
        );
        assert!(all.contains(custody.placeholder.address()), "{all}");
    }

    #[test]
    fn what_the_ha_setup_needs_is_said_with_the_fix() {
        let custody = custody();
        // Active, no admin port, the operator's key, the same identity as b.
        let text = config("true", "", OPERATOR, "shared");
        let parsed = NodeConfig::parse(&text).expect("valid");
        let others = vec![("b".to_owned(), fingerprint("/iotex-server", "shared"))];
        let findings = judge(&parsed, &expected(Some(&custody), Some(&others)));
        assert_eq!(levels(&findings), [Level::Fail; 4], "{findings:#?}");
        let all: Vec<&str> = findings.iter().map(|(_, l)| l.as_str()).collect();
        assert!(all[0].contains("set system.active: false"), "{all:?}");
        assert!(all[1].contains("set system.httpAdminPort: 9009"), "{all:?}");
        assert!(all[2].contains("the same as b's"), "{all:?}");
        assert!(all[3].contains("is the operator's key"), "{all:?}");
        assert!(!format!("{all:?}").contains(OPERATOR));

        // Absent, quoted, wrong port.
        let text = "system:\n  httpAdminPort: 9019\n  active: \"false\"\n";
        let parsed = NodeConfig::parse(text).expect("valid");
        let findings = judge(&parsed, &expected(None, None));
        assert!(findings[0].1.contains("not a boolean"), "{findings:#?}");
        assert!(
            findings[1]
                .1
                .contains("9019, but --iotex-admin names port 9009"),
            "{findings:#?}"
        );
        let parsed = NodeConfig::parse("chain: {}\n").expect("valid");
        let findings = judge(&parsed, &expected(None, None));
        assert!(
            findings[0]
                .1
                .contains("iotex-core starts active by default")
        );
    }

    #[test]
    fn a_broken_file_says_where_not_what() {
        let secret = "deadbeef";
        let e = NodeConfig::parse(&format!("chain:\n  producerPrivKey: \"{secret}\n  x: ["))
            .unwrap_err();
        assert!(e.starts_with("not valid YAML"), "{e}");
        assert!(!e.contains(secret), "{e}");
        assert!(NodeConfig::parse("- a\n- b\n").is_err());
        let e = NodeConfig::read(Path::new("/nonexistent/config.yaml")).unwrap_err();
        assert!(
            e.starts_with("--node-config /nonexistent/config.yaml:"),
            "{e}"
        );
    }

    #[test]
    fn fingerprints_tell_identities_apart_within_an_election() {
        let a = fingerprint("/iotex-server", "k");
        assert_eq!(a.len(), 16);
        assert_eq!(a, fingerprint("/iotex-server", "k"));
        assert_ne!(a, fingerprint("/iotex-server", "k2"));
        assert_ne!(a, fingerprint("/other", "k"));
    }
}
