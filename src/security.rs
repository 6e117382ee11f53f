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
}
