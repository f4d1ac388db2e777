//! SHA-256 digests as lowercase hex: input identities, body fingerprints, storage keys.

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A fixed-length key for any identifier (128 bits of its SHA-256), so that no input, however
/// long, passes a store's key limit.
pub fn key_of(id: &str) -> String {
    let mut hex = sha256_hex(id.as_bytes());
    hex.truncate(32);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn known_digest_and_bounded_keys() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(key_of(&"x".repeat(10_000)).len(), 32);
        assert_ne!(key_of("a"), key_of("b"));
    }
}
