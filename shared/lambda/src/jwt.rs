//! Verifies the bearer JWT of a WebSocket `$connect` against the stack's issuer, as the HTTP
//! API's JWT authorizer does for every route: an RS256 signature by a key of the issuer's JWKS
//! (found through its OpenID discovery document), the issuer, an audience among the allowed
//! ones, and the expiry and not-before times. WebSocket APIs have no JWT authorizer, so the
//! connect function does it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde::Deserialize;
use std::time::Duration;

/// Clock skew allowed on `exp` and `nbf`, as API Gateway's authorizer allows.
const LEEWAY_SECONDS: i64 = 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token's algorithm {0:?} is not RS256")]
    Algorithm(String),
    #[error("no key of the issuer signs the token")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("the token is from another issuer")]
    Issuer,
    #[error("the token is for another audience")]
    Audience,
    #[error("the token has expired or is not valid yet")]
    Time,
    #[error("the token names no tenant")]
    NoTenant,
    #[error("the issuer's keys could not be read: {0}")]
    Keys(String),
}

#[derive(Debug, Clone, Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
    kty: String,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    sub: Option<String>,
    tenant: Option<String>,
}

/// The issuer's keys and the rules a token must meet.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    issuer: String,
    audiences: Vec<String>,
    keys: Vec<Jwk>,
}

impl JwtVerifier {
    /// From a JWKS document already in hand.
    pub fn from_jwks(issuer: &str, audiences: &[String], jwks: &str) -> Result<Self, JwtError> {
        let jwks: Jwks = serde_json::from_str(jwks).map_err(|e| JwtError::Keys(e.to_string()))?;
        Ok(Self {
            issuer: issuer.to_owned(),
            audiences: audiences.to_vec(),
            keys: jwks.keys.into_iter().filter(|k| k.kty == "RSA").collect(),
        })
    }

    /// Reads `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`.
    pub async fn discover(issuer: &str, audiences: &[String]) -> Result<Self, JwtError> {
        #[derive(Deserialize)]
        struct Discovery {
            jwks_uri: String,
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| JwtError::Keys(e.to_string()))?;
        let get = |url: String| {
            let http = http.clone();
            async move {
                http.get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| JwtError::Keys(format!("{url}: {e}")))?
                    .text()
                    .await
                    .map_err(|e| JwtError::Keys(format!("{url}: {e}")))
            }
        };
        let discovery = get(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))
        .await?;
        let discovery: Discovery =
            serde_json::from_str(&discovery).map_err(|e| JwtError::Keys(e.to_string()))?;
        let jwks = get(discovery.jwks_uri).await?;
        Self::from_jwks(issuer, audiences, &jwks)
    }

    /// The token's tenant (its `tenant` claim, else `sub`, as over HTTP) if it verifies at `now`
    /// (epoch seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<String, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwtError::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(h)?).map_err(|_| JwtError::Malformed)?;
        if header.alg != "RS256" {
            return Err(JwtError::Algorithm(header.alg));
        }
        let signature = decode(s)?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        let candidates = self
            .keys
            .iter()
            .filter(|k| header.kid.is_none() || k.kid == header.kid);
        let mut verified = false;
        let mut any = false;
        for key in candidates {
            let (Some(n), Some(e)) = (&key.n, &key.e) else {
                continue;
            };
            any = true;
            let public = RsaPublicKeyComponents {
                n: decode(n)?,
                e: decode(e)?,
            };
            if public
                .verify(&RSA_PKCS1_2048_8192_SHA256, signed, &signature)
                .is_ok()
            {
                verified = true;
                break;
            }
        }
        if !any {
            return Err(JwtError::UnknownKey);
        }
        if !verified {
            return Err(JwtError::Signature);
        }
        let claims: Claims =
            serde_json::from_slice(&decode(p)?).map_err(|_| JwtError::Malformed)?;
        if claims.iss.as_deref() != Some(self.issuer.as_str()) {
            return Err(JwtError::Issuer);
        }
        let audiences = match claims.aud {
            Some(Audience::One(a)) => vec![a],
            Some(Audience::Many(a)) => a,
            None => Vec::new(),
        };
        if !audiences.iter().any(|a| self.audiences.contains(a)) {
            return Err(JwtError::Audience);
        }
        let expired = claims.exp.is_none_or(|exp| now > exp + LEEWAY_SECONDS);
        let early = claims.nbf.is_some_and(|nbf| now + LEEWAY_SECONDS < nbf);
        if expired || early {
            return Err(JwtError::Time);
        }
        claims
            .tenant
            .filter(|t| !t.is_empty())
            .or(claims.sub.filter(|s| !s.is_empty()))
            .ok_or(JwtError::NoTenant)
    }
}

/// The token a `$connect` carries: `?token=...`, else a `bearer.<token>` subprotocol (browsers
/// cannot set headers on a WebSocket). Returns the token and the subprotocol to answer with.
pub fn connect_token(
    query_token: Option<&str>,
    protocols: Option<&str>,
) -> Option<(String, Option<String>)> {
    if let Some(t) = query_token.filter(|t| !t.is_empty()) {
        return Some((t.to_owned(), None));
    }
    protocols?.split(',').map(str::trim).find_map(|p| {
        p.strip_prefix("bearer.")
            .filter(|t| !t.is_empty())
            .map(|t| (t.to_owned(), Some(p.to_owned())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

    const ISSUER: &str = "https://issuer.example";

    /// A 2048-bit RSA key made for this test only (RSAPrivateKey DER), standing in for the
    /// identity provider's signing key.
    fn key() -> RsaKeyPair {
        RsaKeyPair::from_der(include_bytes!("../tests/fixtures/jwt-test-key.der")).unwrap()
    }

    fn jwks(kid: &str) -> String {
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(key().public());
        serde_json::json!({"keys": [
            {"kty": "EC", "kid": "other", "crv": "P-256"},
            {"kty": "RSA", "kid": kid, "n": URL_SAFE_NO_PAD.encode(&public.n),
             "e": URL_SAFE_NO_PAD.encode(&public.e)}
        ]})
        .to_string()
    }

    fn token(alg: &str, kid: &str, claims: serde_json::Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(serde_json::json!({"alg": alg, "kid": kid}).to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{h}.{p}");
        let k = key();
        let mut sig = vec![0; k.public().modulus_len()];
        k.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signed.as_bytes(),
            &mut sig,
        )
        .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn claims(extra: serde_json::Value) -> serde_json::Value {
        let mut c = serde_json::json!({"iss": ISSUER, "aud": "vidpipe", "sub": "alice",
            "exp": 2_000_000_000i64});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    }

    #[test]
    fn a_token_of_the_issuer_gives_its_tenant_and_nothing_else_does() {
        let v = JwtVerifier::from_jwks(ISSUER, &["vidpipe".into()], &jwks("k1")).unwrap();
        let now = 1_900_000_000;
        let ok = token("RS256", "k1", claims(serde_json::json!({})));
        assert_eq!(v.verify(&ok, now), Ok("alice".into()));
        let tenant = token("RS256", "k1", claims(serde_json::json!({"tenant": "acme"})));
        assert_eq!(v.verify(&tenant, now), Ok("acme".into()));
        let many = token(
            "RS256",
            "k1",
            claims(serde_json::json!({"aud": ["x", "vidpipe"]})),
        );
        assert_eq!(v.verify(&many, now), Ok("alice".into()));

        // A changed payload under the same signature.
        let mut parts: Vec<String> = ok.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(claims(serde_json::json!({"sub": "bob"})).to_string());
        assert_eq!(v.verify(&parts.join("."), now), Err(JwtError::Signature));
        let cases = [
            (
                claims(serde_json::json!({"iss": "https://evil.example"})),
                JwtError::Issuer,
            ),
            (
                claims(serde_json::json!({"aud": "other"})),
                JwtError::Audience,
            ),
            (
                claims(serde_json::json!({"exp": now - 120})),
                JwtError::Time,
            ),
            (
                claims(serde_json::json!({"nbf": now + 120})),
                JwtError::Time,
            ),
            (claims(serde_json::json!({"sub": ""})), JwtError::NoTenant),
        ];
        for (c, expected) in cases {
            assert_eq!(v.verify(&token("RS256", "k1", c), now), Err(expected));
        }
        assert_eq!(
            v.verify(&token("RS256", "k2", claims(serde_json::json!({}))), now),
            Err(JwtError::UnknownKey)
        );
        assert_eq!(
            v.verify(&token("HS256", "k1", claims(serde_json::json!({}))), now),
            Err(JwtError::Algorithm("HS256".into()))
        );
        assert_eq!(v.verify("a.b", now), Err(JwtError::Malformed));
    }

    #[test]
    fn the_token_comes_from_the_query_or_a_bearer_subprotocol() {
        assert_eq!(
            connect_token(Some("t1"), Some("bearer.t2")),
            Some(("t1".into(), None))
        );
        assert_eq!(
            connect_token(None, Some("vidpipe, bearer.t2")),
            Some(("t2".into(), Some("bearer.t2".into())))
        );
        assert_eq!(connect_token(Some(""), Some("vidpipe")), None);
        assert_eq!(connect_token(None, None), None);
    }
}
