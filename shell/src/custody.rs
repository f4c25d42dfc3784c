//! Key custody (`--producer-key-file`, `--placeholder-key-file`, `--admin-token-file`): the
//! operator's producer key, this replica's placeholder key and the node's admin token, read
//! from files that only their owner may read; the IoTeX address of a key; and what the node's
//! `/producer-keys` (iotex-core v2.5.0 and later) lists, judged against the two addresses.
//! The core decides when a key goes in or out (rules `install_key_last`,
//! `withdraw_key_when_demoting`, `reconcile_keys`); this only knows the keys.
//!
//! No key and no token is ever logged or printed: `Debug` shows the address only.

use elector_core::NodeKeys;
use k256::elliptic_curve::sec1::ToSec1Point;
use sha3::{Digest, Keccak256};
use std::fmt;
use std::path::Path;

/// A secp256k1 private key as iotex-core takes it (`producerPrivKey`: 64 hex digits), and its
/// address.
#[derive(Clone)]
pub struct ProducerKey {
    hex: String,
    address: String,
}

impl ProducerKey {
    /// Parses 64 hex digits (an `0x` in front and blanks around are allowed).
    pub fn parse(text: &str) -> Result<Self, String> {
        let hex = text.trim();
        let hex = hex.strip_prefix("0x").unwrap_or(hex).to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "not a private key: expected 64 hex digits, found {} characters",
                hex.len()
            ));
        }
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("not a private key: {e}"))?;
        let secret = k256::SecretKey::from_slice(&bytes)
            .map_err(|_| "not a private key: out of the curve's range".to_string())?;
        let point = secret.public_key().to_sec1_point(false);
        Ok(ProducerKey {
            address: address_of_public_key(point.as_bytes()),
            hex,
        })
    }

    /// Its IoTeX address (`io1...`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The key as `/producer-keys` takes it.
    pub(crate) fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Debug for ProducerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProducerKey({})", self.address)
    }
}

/// The IoTeX address of an uncompressed secp256k1 public key (`04 || x || y`): the last 20
/// bytes of the Keccak-256 hash of `x || y`, in bech32 with the human-readable part `io`
/// (go-pkgs' `Hash160b` and iotex-address's v1 encoding).
pub fn address_of_public_key(uncompressed: &[u8]) -> String {
    let hash = Keccak256::digest(uncompressed.get(1..).unwrap_or_default());
    let hrp = bech32::Hrp::parse("io").expect("a valid human-readable part");
    bech32::encode::<bech32::Bech32>(hrp, &hash[12..]).expect("20 bytes fit bech32")
}

/// Everything key custody needs: the operator's key, this replica's placeholder (the key its
/// node's configuration holds), and the node's admin token (`IOTEX_ADMIN_TOKEN`).
#[derive(Clone)]
pub struct KeyCustody {
    pub operator: ProducerKey,
    pub placeholder: ProducerKey,
    token: String,
}

impl fmt::Debug for KeyCustody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCustody")
            .field("operator", &self.operator)
            .field("placeholder", &self.placeholder)
            .finish_non_exhaustive()
    }
}

impl KeyCustody {
    /// From the three files (each readable by its owner only); the error names the flag.
    pub fn load(
        producer_key: &Path,
        placeholder_key: &Path,
        admin_token: &Path,
    ) -> Result<Self, String> {
        let key = |flag: &str, path: &Path| {
            ProducerKey::parse(&read_secret(flag, path)?)
                .map_err(|e| format!("{flag} {}: {e}", path.display()))
        };
        let operator = key("--producer-key-file", producer_key)?;
        let placeholder = key("--placeholder-key-file", placeholder_key)?;
        if operator.address == placeholder.address {
            return Err(format!(
                "--placeholder-key-file {}: the same key as --producer-key-file; the placeholder \
                 must be a key of its own that is no delegate's",
                placeholder_key.display()
            ));
        }
        let token = read_secret("--admin-token-file", admin_token)?;
        if token.is_empty() {
            return Err(format!(
                "--admin-token-file {}: empty; it must hold the node's IOTEX_ADMIN_TOKEN",
                admin_token.display()
            ));
        }
        Ok(KeyCustody {
            operator,
            placeholder,
            token,
        })
    }

    /// Custody from keys and a token already in hand (tests, the simulation).
    pub fn new(operator: ProducerKey, placeholder: ProducerKey, token: &str) -> Self {
        KeyCustody {
            operator,
            placeholder,
            token: token.to_owned(),
        }
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// What the node's list of operator addresses means: the operator's key is there, or only
    /// the placeholder; any other address is an answer we cannot trust.
    pub fn judge(&self, listed: &[String]) -> Result<NodeKeys, String> {
        if listed.contains(&self.operator.address) {
            return Ok(NodeKeys::Operator);
        }
        match listed.iter().find(|a| **a != self.placeholder.address) {
            None if !listed.is_empty() => Ok(NodeKeys::Placeholder),
            None => Err("/producer-keys lists no key at all".into()),
            Some(other) => Err(format!(
                "/producer-keys lists {other}, neither the operator's {} nor this replica's \
                 placeholder {}",
                self.operator.address, self.placeholder.address
            )),
        }
    }
}

/// A file holding a secret: it must exist and be readable by its owner only (no group or
/// other permission bits), so that a key or token never lies around for anyone on the host.
fn read_secret(flag: &str, path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{flag} {}: readable by others (mode {mode:03o}); chmod 600 it",
                path.display()
            ));
        }
    }
    let _ = meta;
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|e| format!("{flag} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn addresses_match_iotex_cores_test_vectors() {
        // iotex-core blockchain/block/header_test.go: a producer's public key and address.
        let public = hex(
            "04755ce6d8903f6b3793bddb4ea5d3589d637de2d209ae0ea930815c82db564ee8cc448886f639e8\
             a0c7e94e99a5c1335b583c0bc76ef30dd6a1038ed9da8daf33",
        );
        assert_eq!(
            address_of_public_key(&public),
            "io1mflp9m6hcgm2qcghchsdqj3z3eccrnekx9p0ms"
        );
        // iotex-core tools/minicluster/gentsfaddrs.yaml: a private key and its public key.
        let key =
            ProducerKey::parse("bace9b2435db45b119e1570b4ea9c57993b2311e0c408d743d87cd22838ae892")
                .unwrap();
        let public = hex(
            "04e93b5b1c8fba69263652a483ad55318e4eed5b5122314cb7fdb077d8c7295097cec92ee50b1108\
             dc7495a9720e5921e56d3048e37abe6a6716d7c9b913e9f2e6",
        );
        assert_eq!(key.address(), address_of_public_key(&public));
        assert!(key.address().starts_with("io1") && key.address().len() == 41);
        // Never in Debug output.
        assert!(!format!("{key:?}").contains("bace9b"));
    }

    #[test]
    fn keys_are_parsed_strictly() {
        assert!(
            ProducerKey::parse(
                " 0xBACE9B2435DB45B119E1570B4EA9C57993B2311E0C408D743D87CD22838AE892\n"
            )
            .is_ok()
        );
        for bad in [
            "",
            "12",
            &"zz".repeat(32),
            &"00".repeat(32),
            &"ff".repeat(32),
        ] {
            assert!(ProducerKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_node_list_is_judged_against_both_addresses() {
        let operator = ProducerKey::parse(&"01".repeat(32)).unwrap();
        let placeholder = ProducerKey::parse(&"02".repeat(32)).unwrap();
        let custody = KeyCustody::new(operator.clone(), placeholder.clone(), "t");
        let list = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            custody.judge(&list(&[operator.address()])),
            Ok(NodeKeys::Operator)
        );
        assert_eq!(
            custody.judge(&list(&[placeholder.address(), operator.address()])),
            Ok(NodeKeys::Operator)
        );
        assert_eq!(
            custody.judge(&list(&[placeholder.address()])),
            Ok(NodeKeys::Placeholder)
        );
        assert!(custody.judge(&[]).is_err());
        let other = custody.judge(&list(&["io1someoneelse"])).unwrap_err();
        assert!(other.contains("io1someoneelse"), "{other}");
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let operator = write("op", &"01".repeat(32), 0o600);
        let placeholder = write("ph", &"02".repeat(32), 0o400);
        let token = write("tok", "s3cret\n", 0o600);
        let custody = KeyCustody::load(&operator, &placeholder, &token).unwrap();
        assert_eq!(custody.token(), "s3cret");
        let open = write("open", "s3cret", 0o644);
        let e = KeyCustody::load(&operator, &placeholder, &open).unwrap_err();
        assert!(e.contains("--admin-token-file") && e.contains("644"), "{e}");
        let e = KeyCustody::load(&operator, &operator, &token).unwrap_err();
        assert!(e.contains("--placeholder-key-file"), "{e}");
        let missing = dir.path().join("nope");
        assert!(
            KeyCustody::load(&missing, &placeholder, &token)
                .unwrap_err()
                .contains("--producer-key-file")
        );
    }
}
