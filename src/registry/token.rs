//! Registry authentication on the wire: the challenge a registry answers
//! with (`WWW-Authenticate`, RFC 9110 §11.6.1: `Basic realm=…` or the
//! distribution token spec's `Bearer realm=…,service=…`), the token
//! server's answer, and the tokens held per scope until they expire.
//! [`super::transport`] does the exchanges.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// A token server's answer is refused beyond this: a token is a few KiB.
pub const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

/// What a registry wants before it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Nothing: anyone may ask.
    Open,
    /// HTTP Basic credentials on every request.
    Basic,
    /// A bearer token from `realm` (the token spec), asked for with the
    /// credentials, if any, as HTTP Basic.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// The challenge of `WWW-Authenticate` header values: Bearer if one is
    /// offered, else Basic; None if neither (or nothing) is.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        let mut basic = false;
        for value in values {
            for (scheme, params) in challenges(value) {
                if scheme.eq_ignore_ascii_case("bearer") {
                    let param = |name: &str| {
                        params
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.clone())
                    };
                    if let Some(realm) = param("realm") {
                        return Some(Challenge::Bearer {
                            realm,
                            service: param("service"),
                        });
                    }
                } else if scheme.eq_ignore_ascii_case("basic") {
                    basic = true;
                }
            }
        }
        basic.then_some(Challenge::Basic)
    }
}

/// The challenges of one header value: `Scheme k=v, k="v", Scheme2 …`.
fn challenges(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        let end = rest.find([' ', '\t', ',', '=']).unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start_matches([' ', '\t']);
        if token.is_empty() {
            break;
        }
        if let Some(value) = after.strip_prefix('=') {
            // A parameter of the current challenge.
            let value = value.trim_start_matches([' ', '\t']);
            let (v, remainder) = match value.strip_prefix('"') {
                Some(quoted) => quoted_string(quoted),
                None => {
                    let end = value.find([',', ' ', '\t']).unwrap_or(value.len());
                    (value[..end].to_string(), &value[end..])
                }
            };
            if let Some((_, params)) = out.last_mut() {
                params.push((token.to_string(), v));
            }
            rest = remainder;
        } else {
            out.push((token.to_string(), Vec::new()));
            rest = after;
        }
    }
    out
}

/// A quoted-string's content (after its opening quote) and what follows
/// its closing quote.
fn quoted_string(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, &s[i + 1..]),
            '\\' => {
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            c => out.push(c),
        }
    }
    (out, "")
}

/// A token server's answer (distribution token spec): `token`, or the
/// OAuth2 name `access_token`, and its lifetime.
#[derive(Debug, serde::Deserialize)]
struct Answer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// A bearer token and its lifetime, as the token server gave them.
pub fn parse_answer(body: &[u8]) -> Result<(String, Duration), String> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| format!("not a token response: {e}"))?;
    let token = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or("no token in the response")?;
    // The spec's default, and its floor: a token lives at least 60 s.
    let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).max(60));
    Ok((token, lifetime))
}

/// Tokens by scope, until shortly before they expire.
#[derive(Debug, Default)]
pub struct Tokens {
    by_scope: BTreeMap<String, (String, Instant)>,
}

impl Tokens {
    /// Renewed this long before its end, so it does not expire in flight.
    const MARGIN: Duration = Duration::from_secs(10);

    pub fn get(&self, scope: &str) -> Option<&str> {
        self.by_scope
            .get(scope)
            .filter(|(_, until)| Instant::now() + Self::MARGIN < *until)
            .map(|(token, _)| token.as_str())
    }

    pub fn insert(&mut self, scope: &str, token: String, lifetime: Duration) {
        self.by_scope
            .insert(scope.to_string(), (token, Instant::now() + lifetime));
    }

    pub fn forget(&mut self, scope: &str) {
        self.by_scope.remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_give_realm_and_service() {
        let c = Challenge::parse([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull""#,
        ]);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        // Unquoted values, spaces, another scheme first, any case.
        let c = Challenge::parse([
            r#"Basic realm="r", bearer  realm=http://h/t , service = "a \"b\"""#,
        ]);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "http://h/t".into(),
                service: Some("a \"b\"".into()),
            })
        );
    }

    #[test]
    fn basic_only_when_no_bearer_is_offered() {
        assert_eq!(
            Challenge::parse([r#"Basic realm="registry""#]),
            Some(Challenge::Basic)
        );
        // A Bearer without a realm says nothing usable.
        assert_eq!(
            Challenge::parse(["Bearer service=x", "Basic"]),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse(["Negotiate", ""]), None);
        assert_eq!(Challenge::parse(std::iter::empty()), None);
    }

    #[test]
    fn token_answers() {
        let (t, life) = parse_answer(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!((t.as_str(), life), ("abc", Duration::from_secs(300)));
        let (t, life) = parse_answer(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!((t.as_str(), life), ("xyz", Duration::from_secs(60)));
        let (_, life) = parse_answer(br#"{"token":"a","expires_in":5}"#).unwrap();
        assert_eq!(life, Duration::from_secs(60));
        assert!(parse_answer(br#"{"token":""}"#).is_err());
        assert!(parse_answer(b"<html>").is_err());
    }

    #[test]
    fn tokens_expire_before_their_end() {
        let mut tokens = Tokens::default();
        tokens.insert("s", "t".into(), Duration::from_secs(60));
        assert_eq!(tokens.get("s"), Some("t"));
        tokens.insert("short", "t".into(), Duration::from_secs(5));
        assert_eq!(tokens.get("short"), None);
        tokens.forget("s");
        assert_eq!(tokens.get("s"), None);
    }
}
