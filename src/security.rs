//! Secrets parley makes and checks: visitor tokens (stored only as hashes) and the signature
//! that authenticates Mattermost's button callbacks.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new random secret: 256 bits, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a visitor token. A fast hash is right here: the token has 256 random
/// bits, so nothing can be guessed from the hash.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Signs Accept buttons so only Mattermost (which keeps `context` from clients) can call back.
#[derive(Clone)]
pub struct ActionSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for ActionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActionSigner(<redacted>)")
    }
}

impl ActionSigner {
    pub fn new(key: &str) -> Self {
        Self {
            key: key.as_bytes().to_vec(),
        }
    }

    fn mac(&self, action: &str, chat_id: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(action.as_bytes());
        mac.update(b"\n");
        mac.update(chat_id.as_bytes());
        mac
    }

    /// The signature for `action` on `chat_id`.
    pub fn sign(&self, action: &str, chat_id: &str) -> String {
        hex::encode(self.mac(action, chat_id).finalize().into_bytes())
    }

    /// Checks a signature in constant time.
    pub fn verify(&self, action: &str, chat_id: &str, signature: &str) -> bool {
        let Ok(bytes) = hex::decode(signature) else {
            return false;
        };
        self.mac(action, chat_id).verify_slice(&bytes).is_ok()
    }
}

/// Signed, expiring download links for attached files, so an `<img src>` works without a
/// header while a link copied elsewhere stops working within the hour.
#[derive(Clone, Debug)]
pub struct FileLinks {
    base: String,
    signer: ActionSigner,
}

/// How long a link works at least.
const LINK_LIFETIME_S: i64 = 3600;
/// Expiry times are rounded up to this step so a link stays the same (and cacheable) for a
/// while.
const LINK_STEP_S: i64 = 600;

impl FileLinks {
    /// `base` is parley's public URL without a trailing slash.
    pub fn new(base: String, signer: ActionSigner) -> Self {
        Self { base, signer }
    }

    /// A download link for a file, valid for at least an hour from `now_s` (Unix seconds).
    pub fn url(&self, file_id: &str, now_s: i64) -> String {
        let expires = (now_s + LINK_LIFETIME_S).div_euclid(LINK_STEP_S) * LINK_STEP_S + LINK_STEP_S;
        let signature = self.signer.sign(&format!("file {expires}"), file_id);
        format!(
            "{}/api/v1/files/{file_id}?expires={expires}&signature={signature}",
            self.base
        )
    }

    /// Whether a link's signature is right and it has not expired.
    pub fn verify(&self, file_id: &str, expires: i64, signature: &str, now_s: i64) -> bool {
        expires >= now_s
            && expires <= now_s + LINK_LIFETIME_S + 2 * LINK_STEP_S
            && self
                .signer
                .verify(&format!("file {expires}"), file_id, signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let a = random_token();
        assert_ne!(a, random_token());
        assert!(a.len() >= 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn signatures_bind_action_and_chat() {
        let s = ActionSigner::new("key");
        let sig = s.sign("accept", "chat1");
        assert!(s.verify("accept", "chat1", &sig));
        assert!(!s.verify("accept", "chat2", &sig));
        assert!(!s.verify("close", "chat1", &sig));
        assert!(!ActionSigner::new("other").verify("accept", "chat1", &sig));
        assert!(!s.verify("accept", "chat1", "zz"));
    }

    #[test]
    fn file_links_expire_and_bind_the_file() {
        let links = FileLinks::new("https://p.example".into(), ActionSigner::new("key"));
        let url = links.url("f1", 1_000_000);
        let query = url.split_once('?').unwrap().1;
        let (expires, signature) = query.split_once('&').unwrap();
        let expires: i64 = expires.trim_start_matches("expires=").parse().unwrap();
        let signature = signature.trim_start_matches("signature=");
        assert!(url.starts_with("https://p.example/api/v1/files/f1?"));
        assert!(expires >= 1_000_000 + 3600);
        assert!(links.verify("f1", expires, signature, 1_000_000));
        assert!(!links.verify("f2", expires, signature, 1_000_000));
        assert!(!links.verify("f1", expires + 600, signature, 1_000_000));
        assert!(!links.verify("f1", expires, signature, expires + 1));
        // The same link for ten minutes.
        assert_eq!(links.url("f1", 1_000_000), links.url("f1", 1_000_000 + 1));
    }
}
