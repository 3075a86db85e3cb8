//! What each member keeps of auth in memory: whether it is enabled (mirrored from the
//! applied state so that requests read one atomic), and etcd's `simple` tokens.
//!
//! A simple token is random text that names a user. Authenticate proposes it through
//! the log, so every member that applies the entry knows it, each with its own timer:
//! a token not used for `--auth-token-ttl` is forgotten (each use restarts the timer),
//! as are all tokens at a restart, a disable, and a user's when it is deleted or its
//! password changes. A client whose token is refused ("invalid auth token")
//! authenticates again, as etcd's clients do.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use tokio::time::Instant;

use super::state::AuthEffect;

/// The letters of a token, as etcd's simple tokens use.
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const TOKEN_LETTERS: usize = 16;

#[derive(Debug)]
struct Token {
    name: String,
    expires: Instant,
}

#[derive(Debug)]
pub struct AuthRuntime {
    enabled: AtomicBool,
    tokens: Mutex<HashMap<String, Token>>,
    ttl: Duration,
    issued: AtomicU64,
}

impl AuthRuntime {
    pub fn new(ttl: Duration, enabled: bool) -> Self {
        Self {
            enabled: AtomicBool::new(enabled),
            tokens: Mutex::new(HashMap::new()),
            ttl,
            issued: AtomicU64::new(0),
        }
    }

    /// Whether requests are checked. The only auth cost while it is off.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Follows the applied state (after a snapshot is installed, for one).
    pub fn set_enabled(&self, enabled: bool) {
        if !enabled {
            self.tokens().clear();
        }
        self.enabled.store(enabled, Ordering::Release);
    }

    /// What an applied auth command means for this member.
    pub fn applied(&self, effect: &AuthEffect) {
        match effect {
            AuthEffect::None => {}
            AuthEffect::Enabled(enabled) => self.set_enabled(*enabled),
            AuthEffect::UserChanged(name) => self.tokens().retain(|_, token| token.name != *name),
            AuthEffect::Token { name, token } => {
                let now = Instant::now();
                let mut tokens = self.tokens();
                tokens.retain(|_, token| token.expires > now);
                tokens.insert(
                    token.clone(),
                    Token {
                        name: name.clone(),
                        expires: now + self.ttl,
                    },
                );
            }
        }
    }

    /// The user a token names, if this member knows it and it has not run out; its
    /// timer starts again.
    pub fn user_of(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut tokens = self.tokens();
        match tokens.get_mut(token) {
            Some(entry) if entry.expires > now => {
                entry.expires = now + self.ttl;
                Some(entry.name.clone())
            }
            Some(_) => {
                tokens.remove(token);
                None
            }
            None => None,
        }
    }

    /// A new token: etcd's form, random letters, a dot and a number.
    pub fn new_token(&self) -> String {
        let mut random = [0u8; TOKEN_LETTERS];
        SystemRandom::new()
            .fill(&mut random)
            .expect("the system's random source works");
        let letters: String = random
            .iter()
            .map(|b| LETTERS[usize::from(*b) % LETTERS.len()] as char)
            .collect();
        format!("{letters}.{}", self.issued.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Token>> {
        self.tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
