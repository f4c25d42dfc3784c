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
    /// The kernel's boot id when the term was stored: a copy of the directory on another
    /// machine (a cloned VM, a shared volume) or after a reboot is told apart by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot_id: Option<String>,
    /// The node the term's elector commanded (`--iotex-admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

/// The state directory: `--state-dir`, else systemd's `StateDirectory=` (the first of
/// `$STATE_DIRECTORY`), else a directory of the user's: `/var/lib/elector` for root, else
/// `$XDG_STATE_HOME/elector`, else `~/.local/state/elector`. `None` only when none of these can
/// be named (no home directory): the feature is then off.
pub fn state_dir(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = flag {
        return Some(dir.to_owned());
    }
    if let Some(dirs) = std::env::var_os("STATE_DIRECTORY")
        && let Some(first) = dirs.to_str().and_then(|d| d.split(':').next())
        && !first.is_empty()
    {
        return Some(PathBuf::from(first));
    }
    default_state_dir()
}

/// The per-user default of [`state_dir`].
fn default_state_dir() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from("/var/lib/elector"));
    }
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(state) = var("XDG_STATE_HOME") {
        return Some(PathBuf::from(state).join("elector"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".local/state/elector"))
}

/// Tries of a lock, and the pause between them (a few milliseconds in all: the process
/// starts, nothing waits on it yet).
const LOCK_ATTEMPTS: u32 = 5;
const LOCK_ATTEMPT_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// The lock of one value's state in a state directory, held for the life of the process that
/// took it (the kernel lets go when it exits, however it exits).
#[derive(Debug)]
pub struct StateLock {
    _file: fs::File,
    path: PathBuf,
}

impl StateLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why a lock was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum LockError {
    /// Another live process holds it; what it wrote about itself.
    Held { path: PathBuf, owner: String },
    /// The directory or the lock file could not be used.
    Unusable(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { path, owner } => write!(
                f,
                "{} is held by a live process ({owner}): two electors share one state (the same \
                 --state-dir and --value); give each replica its own --value",
                path.display()
            ),
            LockError::Unusable(why) => f.write_str(why),
        }
    }
}

/// Where this elector keeps its term, for one key and value.
#[derive(Clone, Debug)]
pub struct StateFile {
    path: PathBuf,
    key: String,
    value: String,
    /// The node this process commands ([`StateFile::for_node`]).
    node: Option<String>,
    /// This boot's id (`/proc/sys/kernel/random/boot_id`), if the kernel tells it.
    boot_id: Option<String>,
}

impl StateFile {
    pub fn new(dir: &Path, key: &str, value: &str) -> Self {
        StateFile {
            path: dir.join(file_name(value)),
            key: key.to_owned(),
            value: value.to_owned(),
            node: None,
            boot_id: boot_id(),
        }
    }

    /// The node this process commands (its `--iotex-admin`): a remembered term may end with a
    /// handover record only when it was stored for the same node on this same boot.
    pub fn for_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_owned());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes this value's lock (`term-<value>.lock` beside the term file) for the life of the
    /// process, or says who holds it: one owner per state (rule `end_dead_term` must never end
    /// a term whose owner is alive). `who` says what the owner is (`elector`, `force-standby`),
    /// written into the file with the process id for the next one to read. Creates the
    /// directory (mode 0700) if needed. Also returns the other values whose lock a live
    /// process holds in the same directory: two replicas on one host, or a cloned host.
    pub fn lock(&self, who: &str) -> Result<(StateLock, Vec<String>), LockError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let path = self.path.with_extension("lock");
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LockError::Unusable(format!("cannot open {}: {e}", path.display())))?;
        // A neighbour's start-up briefly takes a shared lock on every lock file of the
        // directory to see which are held (`live_neighbours`): try again over a few
        // milliseconds before calling this one held.
        let granted = (0..LOCK_ATTEMPTS).any(|attempt| {
            if attempt > 0 {
                std::thread::sleep(LOCK_ATTEMPT_PAUSE);
            }
            try_flock(&file, libc::LOCK_EX)
        });
        if !granted {
            let owner = fs::read_to_string(&path)
                .map(|t| t.trim().to_owned())
                .ok()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "unknown process".into());
            return Err(LockError::Held { path, owner });
        }
        let mut file = file;
        let note = format!(
            "pid {} ({who} for value {})\n",
            std::process::id(),
            self.value
        );
        let written = file
            .set_len(0)
            .and_then(|()| file.write_all(note.as_bytes()))
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            return Err(LockError::Unusable(format!(
                "cannot write {}: {e}",
                path.display()
            )));
        }
        let others = live_neighbours(dir, &path);
        Ok((StateLock { _file: file, path }, others))
    }

    /// Who holds this value's lock now, if a live process does (what it wrote about itself):
    /// a look that changes nothing, for `elector check`.
    pub fn holder(&self) -> Option<String> {
        let path = self.path.with_extension("lock");
        let file = fs::File::open(&path).ok()?;
        if try_flock(&file, libc::LOCK_SH) {
            return None;
        }
        Some(
            fs::read_to_string(&path)
                .map(|t| t.trim().to_owned())
                .unwrap_or_default(),
        )
    }

    /// The term the previous process remembered, if the file is there and names this election
    /// and value. `Err` says why a file that is there cannot be used (it is then ignored: the
    /// dead term, if any, expires with its lease).
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
        // Rule `end_dead_term` ends only a term whose owner is proven dead, and writes a
        // handover record only for a node it proved standby: ours. The lock proves the owner
        // dead only on this machine and boot; a term stored on another boot (a cloned VM, a
        // shared volume, before a reboot) or for another node may be a live leader's
        // elsewhere, so it is left to expire with its lease (after a reboot it has long
        // expired anyway).
        let same_origin = self.boot_id.is_some()
            && file.boot_id == self.boot_id
            && self.node.is_some()
            && file.node == self.node;
        if !same_origin {
            tracing::warn!(
                file = %self.path.display(),
                lease = format!("{:x}", file.lease),
                "the remembered term was stored on another boot or for another node: it may \
                 belong to a live elector elsewhere, so it is left to expire with its lease"
            );
            return Ok(None);
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
            boot_id: self.boot_id.clone(),
            node: self.node.clone(),
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

/// This boot's id, as the kernel gives it: new at every boot, different on a clone.
fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// Creates `dir` (and its parents) readable by its owner only, if it is not there yet.
fn create_private_dir(dir: &Path) -> Result<(), LockError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| LockError::Unusable(format!("cannot create {}: {e}", dir.display())))
}

/// `flock(LOCK_NB | mode)`: whether it was granted.
fn try_flock(file: &fs::File, mode: libc::c_int) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the call's duration; flock has no other precondition.
    unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) == 0 }
}

/// The other `term-*.lock` files of `dir` that a live process holds: what their owners wrote.
fn live_neighbours(dir: &Path, ours: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut held = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path == ours || !name.starts_with("term-") || !name.ends_with(".lock") {
            continue;
        }
        let Ok(file) = fs::File::open(&path) else {
            continue;
        };
        if try_flock(&file, libc::LOCK_SH) {
            // Nobody holds it (ours is released with the file).
            continue;
        }
        let owner = fs::read_to_string(&path).unwrap_or_default();
        held.push(owner.trim().to_owned());
    }
    held
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
        let state = StateFile::new(dir.path(), "/iotex/elect", "a").for_node("http://n:9009");
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
    fn a_term_from_another_boot_or_node_is_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ours = StateFile::new(dir.path(), "/iotex/elect", "a").for_node("http://n:9009");
        ours.store(Some(term(true))).expect("store");
        // The same boot and node: ours to end.
        assert_eq!(ours.load(), Ok(Some(term(true))));
        // Another node (the flags changed), or no node known: left to expire.
        let elsewhere = StateFile::new(dir.path(), "/iotex/elect", "a").for_node("http://m:9009");
        assert_eq!(elsewhere.load(), Ok(None));
        assert_eq!(
            StateFile::new(dir.path(), "/iotex/elect", "a").load(),
            Ok(None)
        );
        // Another boot (a clone of the machine, or after a reboot): left to expire.
        let mut cloned = ours.clone();
        cloned.boot_id = Some("another-boot".into());
        assert_eq!(cloned.load(), Ok(None));
        // A file of an earlier release, without boot id and node: left to expire.
        fs::write(
            dir.path().join(file_name("a")),
            r#"{"key":"/iotex/elect","value":"a","lease":4660,"create_revision":99,"record_allowed":true}"#,
        )
        .expect("write");
        assert_eq!(ours.load(), Ok(None));
    }

    #[test]
    fn a_damaged_file_is_reported_not_used() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(file_name("a")), "{\"key\": ").expect("write");
        let state = StateFile::new(dir.path(), "/iotex/elect", "a");
        assert!(state.load().is_err());
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn one_owner_per_state_and_neighbours_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let nested = dir.path().join("a/b");
        let a = StateFile::new(&nested, "/iotex/elect", "a");
        let (lock, others) = a.lock("elector").expect("first owner");
        assert!(others.is_empty());
        assert!(lock.path().ends_with("term-a.lock"));
        // A second owner of the same state is refused, and told who holds it. (flock locks
        // belong to open file descriptions, so a second open in this process conflicts too.)
        match a.lock("force-standby") {
            Err(LockError::Held { owner, .. }) => {
                assert!(
                    owner.contains(&format!("pid {}", std::process::id())),
                    "{owner}"
                );
                assert!(owner.contains("elector for value a"), "{owner}");
            }
            other => panic!("{other:?}"),
        }
        // Another value in the same directory is its own state, but it is named.
        let (_b, others) = StateFile::new(&nested, "/iotex/elect", "b")
            .lock("elector")
            .expect("another value");
        assert_eq!(others.len(), 1, "{others:?}");
        // Released with the process (here: the file), and taken again.
        drop(lock);
        a.lock("force-standby").expect("free again");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&nested).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn the_default_state_directory_follows_the_user() {
        let explicit = state_dir(Some(Path::new("/x/y")));
        assert_eq!(explicit.as_deref(), Some(Path::new("/x/y")));
        // With no flag and no systemd variable, a directory is always named for a user with a
        // home (root: /var/lib/elector).
        if std::env::var_os("STATE_DIRECTORY").is_none() && std::env::var_os("HOME").is_some() {
            let dir = state_dir(None).expect("a default");
            assert!(dir.ends_with("elector"), "{}", dir.display());
        }
    }
}
