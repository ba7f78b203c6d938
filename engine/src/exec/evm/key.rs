//! Private keys: from an environment variable or an encrypted keystore v3 file, never from a
//! command-line value, never printed, zeroized on drop.

use std::fmt;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, Signature};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use zeroize::Zeroizing;

use super::EvmError;

/// Where a key comes from. Holds names (of variables and files), never secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// An environment variable holding the private key as 0x-hex (32 bytes; the `0x` is
    /// optional, surrounding whitespace ignored).
    Env(String),
    /// An encrypted keystore v3 JSON file (geth, eth-account, foundry `cast wallet`).
    Keystore {
        /// The keystore file.
        path: PathBuf,
        /// Where its password comes from.
        password: PasswordSource,
    },
}

/// Where a keystore password comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    /// An environment variable holding the password (used verbatim).
    Env(String),
    /// A file holding the password; one trailing line break (`\n` or `\r\n`) is removed.
    File(PathBuf),
}

impl KeySource {
    /// Loads the key.
    pub fn load(&self) -> Result<EvmSigner, EvmError> {
        match self {
            KeySource::Env(var) => EvmSigner::from_env(var),
            KeySource::Keystore { path, password } => {
                let password = password.read()?;
                EvmSigner::from_keystore(path, password.as_slice())
            }
        }
    }
}

impl PasswordSource {
    /// Reads the password into a buffer that is zeroized on drop.
    pub fn read(&self) -> Result<Zeroizing<Vec<u8>>, EvmError> {
        match self {
            PasswordSource::Env(var) => {
                let value = Zeroizing::new(
                    std::env::var(var).map_err(|_| EvmError::EnvMissing { var: var.clone() })?,
                );
                Ok(Zeroizing::new(value.as_bytes().to_vec()))
            }
            PasswordSource::File(path) => {
                let mut bytes =
                    Zeroizing::new(std::fs::read(path).map_err(|e| EvmError::PasswordFile {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?);
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                }
                Ok(bytes)
            }
        }
    }
}

/// A secp256k1 signing key and its address. `Debug` shows the address only; the secret scalar
/// is zeroized when this is dropped (k256's `SigningKey` zeroizes on drop).
pub struct EvmSigner {
    inner: PrivateKeySigner,
}

impl fmt::Debug for EvmSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvmSigner")
            .field("address", &self.inner.address())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl EvmSigner {
    /// Parses a 0x-hex private key (the `0x` is optional, surrounding whitespace ignored).
    /// `source_name` says where it came from, for errors ("environment variable KEEL_KEY");
    /// errors never contain the key.
    pub fn from_hex(secret: &str, source_name: &str) -> Result<Self, EvmError> {
        let text = secret.trim();
        let text = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        let format_err = || EvmError::KeyFormat {
            source_name: source_name.to_string(),
        };
        if text.len() != 64 {
            return Err(format_err());
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        alloy_primitives::hex::decode_to_slice(text, bytes.as_mut_slice())
            .map_err(|_| format_err())?;
        Self::from_bytes(&bytes, source_name)
    }

    /// A key from its 32 secret bytes.
    pub fn from_bytes(secret: &[u8; 32], source_name: &str) -> Result<Self, EvmError> {
        let inner =
            PrivateKeySigner::from_slice(secret.as_slice()).map_err(|_| EvmError::KeyInvalid {
                source_name: source_name.to_string(),
            })?;
        Ok(Self { inner })
    }

    /// The key in environment variable `var` (0x-hex, 32 bytes).
    pub fn from_env(var: &str) -> Result<Self, EvmError> {
        let value = Zeroizing::new(std::env::var(var).map_err(|_| EvmError::EnvMissing {
            var: var.to_string(),
        })?);
        Self::from_hex(&value, &format!("environment variable {var}"))
    }

    /// Decrypts a keystore v3 JSON file (scrypt or pbkdf2, AES-128-CTR) with `password`.
    pub fn from_keystore(path: &Path, password: &[u8]) -> Result<Self, EvmError> {
        let name = path.display().to_string();
        let secret = Zeroizing::new(eth_keystore::decrypt_key(path, password).map_err(|e| {
            let reason = match e {
                eth_keystore::KeystoreError::MacMismatch => {
                    "wrong password (MAC mismatch)".to_string()
                }
                eth_keystore::KeystoreError::StdIo(io) => io,
                eth_keystore::KeystoreError::SerdeJson(json) => {
                    format!("not a keystore v3 JSON file ({json})")
                }
                other => other.to_string(),
            };
            EvmError::Keystore {
                path: name.clone(),
                reason,
            }
        })?);
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(secret.as_slice().try_into().map_err(
            |_| EvmError::Keystore {
                path: name.clone(),
                reason: format!("the decrypted key is {} bytes, not 32", secret.len()),
            },
        )?);
        Self::from_bytes(&bytes, &format!("keystore {name}"))
    }

    /// The key's Ethereum address.
    pub fn address(&self) -> Address {
        self.inner.address()
    }

    /// Signs a 32-byte hash as is (no prefix).
    pub fn sign_hash(&self, hash: &alloy_primitives::B256) -> Result<Signature, EvmError> {
        self.inner
            .sign_hash_sync(hash)
            .map_err(|e| EvmError::Sign(e.to_string()))
    }

    /// Signs `message` the EIP-191 way (`personal_sign`: keccak of
    /// `"\x19Ethereum Signed Message:\n" || len || message`).
    pub fn sign_message(&self, message: &[u8]) -> Result<Signature, EvmError> {
        self.inner
            .sign_message_sync(message)
            .map_err(|e| EvmError::Sign(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
    const ADDRESS: &str = "0x14791697260E4c9A71f18484C9f997B308e59325";

    #[test]
    fn hex_key_gives_the_fixture_address_with_or_without_prefix() {
        let a = EvmSigner::from_hex(KEY, "test").unwrap();
        assert_eq!(a.address().to_checksum(None), ADDRESS);
        let b = EvmSigner::from_hex(&format!("  {}\n", &KEY[2..]), "test").unwrap();
        assert_eq!(a.address(), b.address());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let s = EvmSigner::from_hex(KEY, "test").unwrap();
        let debug = format!("{s:?}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(!debug.to_lowercase().contains(&KEY[2..]), "{debug}");
        assert!(!debug.contains("0123456789"), "{debug}");
    }

    #[test]
    fn bad_keys_are_errors_that_name_the_source_not_the_key() {
        let cases = [
            ("", "KeyFormat"),
            ("0x1234", "KeyFormat"),
            (&KEY[..65], "KeyFormat"),
            (
                "0x012345678901234567890123456789012345678901234567890123456789012z",
                "KeyFormat",
            ),
            (
                "0x0000000000000000000000000000000000000000000000000000000000000000",
                "KeyInvalid",
            ),
            (
                "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "KeyInvalid",
            ),
        ];
        for (text, kind) in cases {
            let err = EvmSigner::from_hex(text, "environment variable K").unwrap_err();
            assert!(format!("{err:?}").starts_with(kind), "{text}: {err:?}");
            let msg = err.to_string();
            assert!(msg.contains("environment variable K"), "{msg}");
            if text.len() > 8 {
                assert!(!msg.contains(&text[2..10]), "{msg}");
            }
        }
    }

    #[test]
    fn missing_env_var_is_named() {
        let err = EvmSigner::from_env("KEEL_TEST_SURELY_UNSET_KEY_VAR").unwrap_err();
        assert!(
            err.to_string().contains("KEEL_TEST_SURELY_UNSET_KEY_VAR"),
            "{err}"
        );
    }

    /// Keystores written by eth-account (`Account.encrypt(KEY, "pw", kdf=..., iterations=...)`,
    /// small work factors so the test is quick).
    const KEYSTORE_SCRYPT: &str = r#"{"address": "14791697260E4c9A71f18484C9f997B308e59325", "crypto": {"cipher": "aes-128-ctr", "cipherparams": {"iv": "2bbdae493675eefd943e765a2842e0a8"}, "ciphertext": "8dbb633b4b5f8e28bf26756fca445f7133fdb1878a418c1ad19458fe0a524cc8", "kdf": "scrypt", "kdfparams": {"dklen": 32, "n": 1024, "r": 8, "p": 1, "salt": "4e84132910550e06be04ed016191136a"}, "mac": "870023cb3fab0782db28b030a2ea7cf00142db3056d37af76d22f5e1f84875a8"}, "id": "a30d0081-d12b-4e05-9b3d-b370bc149984", "version": 3}"#;
    const KEYSTORE_PBKDF2: &str = r#"{"address": "14791697260E4c9A71f18484C9f997B308e59325", "crypto": {"cipher": "aes-128-ctr", "cipherparams": {"iv": "7299e472343061498a5a8acfcd7c3760"}, "ciphertext": "6b451ce10d6918ad50cf327785fb09ebd27f4f6c20365c1703145a99639a434a", "kdf": "pbkdf2", "kdfparams": {"c": 1000, "dklen": 32, "prf": "hmac-sha256", "salt": "25bff975028d59db557cf3a5a65b8c9d"}, "mac": "eb9b7e2b4943d61ccb5f624115f90932abb32f0d85e29cd62129599b359da0f5"}, "id": "b3916f7a-b357-4736-8d81-a954c9a68e1a", "version": 3}"#;

    #[test]
    fn eth_account_keystores_decrypt_and_wrong_password_is_named() {
        let dir = std::env::temp_dir().join(format!("keel-evm-keystore-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, json) in [
            ("scrypt.json", KEYSTORE_SCRYPT),
            ("pbkdf2.json", KEYSTORE_PBKDF2),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, json).unwrap();
            let s = EvmSigner::from_keystore(&path, b"pw").unwrap();
            assert_eq!(s.address().to_checksum(None), ADDRESS);
            let err = EvmSigner::from_keystore(&path, b"nope").unwrap_err();
            assert!(err.to_string().contains("wrong password"), "{err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let pw_file = dir.join("pw.txt");
        std::fs::write(&pw_file, "pw\r\n").unwrap();
        let src = KeySource::Keystore {
            path: dir.join("scrypt.json"),
            password: PasswordSource::File(pw_file.clone()),
        };
        assert_eq!(src.load().unwrap().address().to_checksum(None), ADDRESS);
        let not_json = dir.join("not.json");
        std::fs::write(&not_json, "hello").unwrap();
        let err = EvmSigner::from_keystore(&not_json, b"pw").unwrap_err();
        assert!(err.to_string().contains("not a keystore"), "{err}");
        let err = EvmSigner::from_keystore(&dir.join("missing.json"), b"pw").unwrap_err();
        assert!(err.to_string().contains("missing.json"), "{err}");
        let src = KeySource::Keystore {
            path: dir.join("scrypt.json"),
            password: PasswordSource::File(dir.join("nopw.txt")),
        };
        assert!(src.load().unwrap_err().to_string().contains("nopw.txt"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
