//! Web console sessions: a random id in an `HttpOnly; SameSite=Strict` cookie, kept in the
//! server's memory (a restart signs everyone out), each with its own CSRF token that every
//! form post must carry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "cde_session";

/// How long a session lasts without being used.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    /// Put in every form; a post without it is refused.
    pub csrf: String,
    /// Who signed in: a user's name, or none for the API token's holder.
    pub user: Option<String>,
}

impl Session {
    /// Whether `given` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        bool::from(given.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The sessions a server knows.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, (Session, Instant)>>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// Starts a session for `user` (none: the API token's holder).
    pub fn start(&self, user: Option<String>) -> Session {
        let session = Session {
            id: random_hex(),
            csrf: random_hex(),
            user,
        };
        let mut live = self.live.lock().expect("not poisoned");
        let now = Instant::now();
        live.retain(|_, (_, used)| now.duration_since(*used) < IDLE);
        live.insert(session.id.clone(), (session.clone(), now));
        session
    }

    /// The live session whose id the request's cookie carries; using it keeps it alive.
    pub fn of(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let mut live = self.live.lock().expect("not poisoned");
        let (session, used) = live.get_mut(id)?;
        if used.elapsed() >= IDLE {
            live.remove(id);
            return None;
        }
        *used = Instant::now();
        Some(session.clone())
    }

    /// Ends a session: its cookie no longer signs anything in.
    pub fn end(&self, session: &Session) {
        self.live.lock().expect("not poisoned").remove(&session.id);
    }
}

/// The `Set-Cookie` value that hands `session` to the browser.
pub fn set_cookie(session: &Session, secure: bool) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session.id,
        IDLE.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that takes it back.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_session_is_found_by_its_cookie_until_it_ends() {
        let sessions = Sessions::default();
        let session = sessions.start(Some("ada".into()));
        let cookie = set_cookie(&session, false);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"));
        assert!(set_cookie(&session, true).ends_with("; Secure"));
        let headers = with_cookie(&format!("theme=dark; {COOKIE}={}", session.id));
        assert_eq!(sessions.of(&headers), Some(session.clone()));
        assert_eq!(sessions.of(&with_cookie(&format!("{COOKIE}=forged"))), None);
        assert_eq!(sessions.of(&HeaderMap::new()), None);
        sessions.end(&session);
        assert_eq!(sessions.of(&headers), None);
    }

    #[test]
    fn csrf_tokens_are_per_session_and_checked_whole() {
        let sessions = Sessions::default();
        let (a, b) = (sessions.start(None), sessions.start(None));
        assert_ne!(a.csrf, b.csrf);
        assert!(a.csrf_matches(&a.csrf));
        assert!(!a.csrf_matches(&b.csrf));
        assert!(!a.csrf_matches(&a.csrf[..10]));
        assert!(!a.csrf_matches(""));
    }
}
