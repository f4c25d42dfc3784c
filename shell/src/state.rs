//! `--state-dir`: what an elector remembers of its own candidacy across a crash of its process
//! (`elector-core`'s rule `end_dead_term`). One small JSON file per value, replaced
//! atomically (written beside, synced, renamed), so a crash never leaves half a file; the key
//! and value are stored too, so that a file written for another election is never used.

use elector_core::{CandidateId, RememberedTerm};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The file in the state directory, for one value: `term-<value>.json`, so that two electors
/// sharing a directory keep their terms apart.
fn file_name(value: &str) -> String {
    let safe: String = value
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    format!("term-{safe}.json")
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct TermFile {
    key: String,
    value: String,
    lease: i64,
    create_revision: i64,
    record_allowed: bool,
}

/// The state directory: `--state-dir`, else systemd's `StateDirectory=` (the first of
/// `$STATE_DIRECTORY`), else none (the feature is off).
pub fn state_dir(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = flag {
        return Some(dir.to_owned());
    }
    let dirs = std::env::var_os("STATE_DIRECTORY")?;
    let first = dirs.to_str()?.split(':').next()?;
    (!first.is_empty()).then(|| PathBuf::from(first))
}

/// Where this elector keeps its term, for one key and value.
#[derive(Clone, Debug)]
pub struct StateFile {
    path: PathBuf,
    key: String,
    value: String,
}

impl StateFile {
    pub fn new(dir: &Path, key: &str, value: &str) -> Self {
        StateFile {
            path: dir.join(file_name(value)),
            key: key.to_owned(),
            value: value.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The term the previous process remembered, if the file is there and names this election
    /// and value. `Err` says why a file that is there cannot be used (it is then ignored: the
    /// dead term, if any, expires with its lease as before).
    pub fn load(&self) -> Result<Option<RememberedTerm>, String> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        let file: TermFile = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a term file: {e}", self.path.display()))?;
        if file.key != self.key || file.value != self.value {
            return Err(format!(
                "{} is for key {:?} and value {:?}, not {:?} and {:?}",
                self.path.display(),
                file.key,
                file.value,
                self.key,
                self.value
            ));
        }
        Ok(Some(RememberedTerm {
            id: CandidateId {
                lease: file.lease,
                create_revision: file.create_revision,
            },
            record_allowed: file.record_allowed,
        }))
    }

    /// Replaces the file (`None`: removes it).
    pub fn store(&self, term: Option<RememberedTerm>) -> Result<(), String> {
        let Some(term) = term else {
            return match fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("cannot remove {}: {e}", self.path.display())),
            };
        };
        let file = TermFile {
            key: self.key.clone(),
            value: self.value.clone(),
            lease: term.id.lease,
            create_revision: term.id.create_revision,
            record_allowed: term.record_allowed,
        };
        let text = serde_json::to_string(&file).map_err(|e| e.to_string())?;
        let beside = self.path.with_extension("json.new");
        let write = || -> std::io::Result<()> {
            let mut out = fs::File::create(&beside)?;
            out.write_all(text.as_bytes())?;
            out.sync_all()?;
            fs::rename(&beside, &self.path)
        };
        write().map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(record_allowed: bool) -> RememberedTerm {
        RememberedTerm {
            id: CandidateId {
                lease: 0x1234,
                create_revision: 99,
            },
            record_allowed,
        }
    }

    #[test]
    fn stores_loads_replaces_and_forgets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateFile::new(dir.path(), "/iotex/elect", "a");
        assert_eq!(state.load(), Ok(None));
        state.store(Some(term(false))).expect("store");
        assert_eq!(state.load(), Ok(Some(term(false))));
        state.store(Some(term(true))).expect("replace");
        assert_eq!(state.load(), Ok(Some(term(true))));
        state.store(None).expect("forget");
        assert_eq!(state.load(), Ok(None));
        state.store(None).expect("forgetting twice is fine");
    }

    #[test]
    fn a_file_for_another_election_or_value_is_not_used() {
        let dir = tempfile::tempdir().expect("temp dir");
        StateFile::new(dir.path(), "/iotex/elect", "a")
            .store(Some(term(true)))
            .expect("store");
        // Another value has its own file; a file renamed onto another value's is refused.
        assert_eq!(
            StateFile::new(dir.path(), "/iotex/elect", "b").load(),
            Ok(None)
        );
        fs::copy(
            dir.path().join(file_name("a")),
            dir.path().join(file_name("b")),
        )
        .expect("copy");
        let other_value = StateFile::new(dir.path(), "/iotex/elect", "b").load();
        assert!(other_value.is_err(), "{other_value:?}");
        let other_key = StateFile::new(dir.path(), "/other", "a").load();
        assert!(other_key.is_err(), "{other_key:?}");
    }

    #[test]
    fn a_damaged_file_is_reported_not_used() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(file_name("a")), "{\"key\": ").expect("write");
        let state = StateFile::new(dir.path(), "/iotex/elect", "a");
        assert!(state.load().is_err());
    }
}
