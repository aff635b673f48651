//! Signed webhooks in the domain's terms: the target URL and its rules (https only; no private,
//! loopback or link-local address), the per-tenant `whsec_` secrets and their rotation, the
//! stable `webhook-id` of one event of one job, the payload receivers get, and the delivery log's
//! records. Signing and sending are the pipeline's; nothing here touches the network.

use crate::error::echo;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What every secret starts with, as Standard Webhooks' libraries expect.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret (Standard Webhooks asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;
/// How long a rotated-out secret still signs and verifies.
pub const ROTATION_OVERLAP: TimeDelta = TimeDelta::hours(24);
/// Rotated-out secrets that may still be in their overlap at once. Each one adds a signature to
/// every delivery, so a rotation beyond this is refused until the oldest expires.
pub const MAX_PREVIOUS_SECRETS: usize = 4;
/// Longest webhook URL accepted.
pub const URL_MAX_BYTES: usize = 2048;

/// Which targets a deployment accepts besides public `https`. Only a development stack allows
/// `http` to loopback addresses (tests' local receivers); nothing ever allows private or
/// link-local ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlRules {
    pub allow_loopback: bool,
}

/// A webhook target: an absolute `https` URL (or, under [`UrlRules::allow_loopback`], `http` to
/// a loopback host), without credentials or a fragment, whose host is not a forbidden address
/// literal. Hosts that are names are judged again after DNS, when delivering.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(raw: &str, rules: UrlRules) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > URL_MAX_BYTES {
            return Err(format!("must be a URL of 1 to {URL_MAX_BYTES} bytes"));
        }
        let url = url::Url::parse(raw)
            .map_err(|e| format!("must be an absolute https URL ({e}) (got {})", echo(raw)))?;
        let host = url.host().ok_or_else(|| {
            format!(
                "must be an absolute https URL with a host (got {})",
                echo(raw)
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry a user name or password".into());
        }
        if url.fragment().is_some() {
            return Err("must not carry a #fragment".into());
        }
        let loopback_host = match &host {
            url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if rules.allow_loopback && loopback_host => {}
            _ => {
                return Err(format!(
                    "must be an https URL (got {})",
                    echo(&format!("{}://…", url.scheme()))
                ));
            }
        }
        let literal = match host {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = literal
            && let Some(why) = forbidden_ip(ip, rules.allow_loopback)
        {
            return Err(format!("must not point at a {why} address (got {ip})"));
        }
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `scheme://host[:port]`: what logs and delivery records show. The path and query stay
    /// out, since many receivers (Slack's among them) put their credential there.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.0)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| "invalid".into())
    }
}

impl TryFrom<String> for WebhookUrl {
    type Error = String;
    /// Stored URLs were checked when they were given; reading them back only checks their
    /// shape (the loopback allowance belongs to the deployment, and delivery checks again).
    fn try_from(v: String) -> Result<Self, String> {
        Self::parse(
            &v,
            UrlRules {
                allow_loopback: true,
            },
        )
    }
}

impl From<WebhookUrl> for String {
    fn from(u: WebhookUrl) -> String {
        u.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why `ip` must never receive a webhook, or `None` when it may. Loopback is allowed only under
/// `allow_loopback`; IPv4 inside IPv6 (mapped, compatible, NAT64, 6to4) is judged as IPv4.
pub fn forbidden_ip(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4, allow_loopback),
        IpAddr::V6(v6) => forbidden_v6(v6, allow_loopback),
    }
}

fn forbidden_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if a == 192 && b == 0 && c == 0 {
        Some("IETF protocol")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else if ip.is_documentation() {
        Some("documentation")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<&'static str> {
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible) reach the IPv4 address.
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return forbidden_v4(embedded_v4(s[6], s[7]), allow_loopback);
    }
    // NAT64 (64:ff9b::/96) translates to the embedded IPv4 address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return forbidden_v4(embedded_v4(s[6], s[7]), allow_loopback);
    }
    // 6to4 (2002::/16) tunnels to the IPv4 address in its second and third groups.
    if s[0] == 0x2002 {
        return forbidden_v4(embedded_v4(s[1], s[2]), allow_loopback);
    }
    if s[0] & 0xfe00 == 0xfc00 {
        Some("unique-local (private)")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if s[0] & 0xffc0 == 0xfec0 {
        Some("site-local")
    } else if s[0] & 0xff00 == 0xff00 {
        Some("multicast")
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Some("documentation")
    } else if s[0] == 0x2001 && s[1] == 0 {
        Some("Teredo tunnel")
    } else if s[0] == 0x0100 && s[1..4] == [0; 3] {
        Some("discard")
    } else {
        None
    }
}

/// A `whsec_` secret: the prefix and the base64 of the key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// A secret over `key`, random bytes the caller drew (the domain draws no randomness).
    pub fn from_key(key: &[u8]) -> Self {
        Self(format!(
            "{SECRET_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        ))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let key = raw
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("a webhook secret starts with {SECRET_PREFIX}"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|_| "a webhook secret is whsec_ and base64".to_owned())?;
        if !(24..=64).contains(&bytes.len()) {
            return Err("a webhook secret holds 24 to 64 bytes".into());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The HMAC key.
    pub fn key(&self) -> Vec<u8> {
        let b64 = self.0.strip_prefix(SECRET_PREFIX).unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default()
    }

    /// The secret as the tenant is shown it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(whsec_…)")
    }
}

impl TryFrom<String> for WebhookSecret {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        Self::parse(&v)
    }
}

impl From<WebhookSecret> for String {
    fn from(s: WebhookSecret) -> String {
        s.0
    }
}

/// A rotated-out secret, still valid until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub secret: WebhookSecret,
    pub expires_at: DateTime<Utc>,
}

/// A tenant's signing secrets: the current one and those rotated out less than
/// [`ROTATION_OVERLAP`] ago. Deliveries are signed with all of them, so a receiver verifying
/// with either the old or the new secret accepts them during the overlap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSecrets {
    pub tenant: String,
    pub current: WebhookSecret,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub previous: Vec<PreviousSecret>,
    /// Optimistic concurrency: 0 before the first write; each write increments it.
    #[serde(default)]
    pub version: u64,
}

/// A rotation refused because [`MAX_PREVIOUS_SECRETS`] rotated-out secrets are still valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{MAX_PREVIOUS_SECRETS} earlier secrets are still valid; the next rotation is possible at {next_at}"
)]
pub struct RotationRefused {
    pub next_at: DateTime<Utc>,
}

impl TenantSecrets {
    pub fn new(tenant: &str, secret: WebhookSecret, now: DateTime<Utc>) -> Self {
        Self {
            tenant: tenant.to_owned(),
            current: secret,
            created_at: now,
            rotated_at: None,
            previous: Vec::new(),
            version: 0,
        }
    }

    /// `fresh` becomes current; the current secret stays valid for [`ROTATION_OVERLAP`].
    /// Secrets past their overlap are dropped.
    pub fn rotate(
        &self,
        fresh: WebhookSecret,
        now: DateTime<Utc>,
    ) -> Result<Self, RotationRefused> {
        let mut previous: Vec<PreviousSecret> = self
            .previous
            .iter()
            .filter(|p| p.expires_at > now)
            .cloned()
            .collect();
        if previous.len() >= MAX_PREVIOUS_SECRETS {
            let next_at = previous.iter().map(|p| p.expires_at).min().unwrap_or(now);
            return Err(RotationRefused { next_at });
        }
        previous.push(PreviousSecret {
            secret: self.current.clone(),
            expires_at: now + ROTATION_OVERLAP,
        });
        Ok(Self {
            current: fresh,
            rotated_at: Some(now),
            previous,
            ..self.clone()
        })
    }

    /// The secrets a delivery at `now` is signed with: the current one first.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&WebhookSecret> {
        std::iter::once(&self.current)
            .chain(
                self.previous
                    .iter()
                    .filter(|p| p.expires_at > now)
                    .map(|p| &p.secret),
            )
            .collect()
    }
}

/// Which pipeline a job belongs to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Generation,
    Processing,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Generation => "generation",
            JobKind::Processing => "processing",
        }
    }
}

/// The event a delivery tells of. The names are relied on (`completed`, `failed`), and shared
/// with the live-progress events.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    Completed,
    Failed,
}

impl WebhookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Completed => "completed",
            WebhookEvent::Failed => "failed",
        }
    }
}

/// How a delivery's body is shaped.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The [`WebhookPayload`] itself.
    Standard,
    /// `{"text": summary, "vidpipe": payload}`: Slack, Mattermost and Teams' Slack mode show
    /// `text`; other receivers get the whole payload.
    Slack,
}

impl WebhookFormat {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "standard" => Ok(Self::Standard),
            "slack" => Ok(Self::Slack),
            other => Err(format!("must be standard or slack (got {})", echo(other))),
        }
    }
}

/// The `webhook-id` of `event` for run `run` of a job: the same for every attempt and every
/// duplicate invocation of the step that sends it, so receivers de-duplicate on it, and
/// different for another event or another run (a processing retry).
pub fn webhook_id(kind: JobKind, job_id: &str, run: u32, event: WebhookEvent) -> String {
    let digest = Sha256::new()
        .chain_update(b"vidpipe webhook\0")
        .chain_update(kind.as_str().as_bytes())
        .chain_update(b"\0")
        .chain_update(job_id.as_bytes())
        .chain_update(b"\0")
        .chain_update(run.to_string().as_bytes())
        .chain_update(b"\0")
        .chain_update(event.as_str().as_bytes())
        .finalize();
    format!("msg_{}", hex::encode(&digest[..16]))
}

/// One output with a link that works without credentials until `links_expire_at`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookOutput {
    /// `video`, `thumbnail`, or a rendition's name.
    pub name: String,
    pub key: String,
    pub url: String,
    pub content_type: String,
    pub size_bytes: Option<u64>,
}

/// Why a job failed: its stable error name and one sentence safe to show.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookFailure {
    pub error: String,
    pub reason: String,
}

/// The job a delivery tells of.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookJob {
    pub job_id: String,
    pub kind: JobKind,
    /// The job's own status word: `completed`/`failed` for generations, `succeeded`/`failed`
    /// for processing jobs.
    pub status: String,
    /// For processing jobs: the raw object processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
    #[serde(default)]
    pub outputs: Vec<WebhookOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links_expire_at: Option<DateTime<Utc>>,
    /// The job's total cost in US dollars, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The job's cost as its GET view shows it (lines, compute, bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub cost: Option<serde_json::Value>,
    /// Seconds per stage (generations) or step (processing).
    #[serde(default)]
    pub timings: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WebhookFailure>,
    pub created_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// The body of a delivery, in Standard Webhooks' recommended shape: `type`, `timestamp`, `data`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookPayload {
    #[serde(rename = "type")]
    pub event: WebhookEvent,
    pub timestamp: DateTime<Utc>,
    pub data: WebhookJob,
}

impl WebhookPayload {
    /// One line for chat receivers.
    pub fn summary(&self) -> String {
        let d = &self.data;
        let what = match &d.source_key {
            Some(key) => format!("{} {key}", d.kind.as_str()),
            None => format!("{} {}", d.kind.as_str(), d.job_id),
        };
        match (&self.event, &d.error) {
            (WebhookEvent::Failed, Some(e)) => {
                format!("vidpipe: {what} failed: {}: {}", e.error, e.reason)
            }
            (WebhookEvent::Failed, None) => format!("vidpipe: {what} failed"),
            (WebhookEvent::Completed, _) => {
                format!("vidpipe: {what} completed with {} outputs", d.outputs.len())
            }
        }
    }
}

/// What became of one attempt.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// A passing failure (5xx, 429, a timeout, no connection); another attempt follows.
    Retrying,
    /// No further attempt: a refusal (another 4xx, a forbidden target) or no attempts or time
    /// left.
    GaveUp,
}

/// One attempt to deliver one event, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// Unique per attempt, ordered by time (`att_` and a UUIDv7).
    pub id: String,
    pub kind: JobKind,
    pub job_id: String,
    pub tenant: String,
    pub webhook_id: String,
    pub event: WebhookEvent,
    /// The target's origin (`https://host:port`); never its path or query.
    pub target: String,
    pub format: WebhookFormat,
    /// 1-based, counted across the invocations that delivered this `webhook_id`.
    pub attempt: u32,
    pub attempted_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// What went wrong, when something did.
    pub error: Option<String>,
    pub outcome: DeliveryOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlRules = UrlRules {
        allow_loopback: false,
    };
    const DEV: UrlRules = UrlRules {
        allow_loopback: true,
    };

    #[test]
    fn urls_must_be_https_without_credentials_or_forbidden_literals() {
        assert!(WebhookUrl::parse("https://hooks.example.com/a?b=c", STRICT).is_ok());
        for bad in [
            "http://hooks.example.com/a",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/#x",
            "/relative",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:c0a8:0001::1]/",
            "https://0.0.0.0/",
            "https://100.64.0.1/",
        ] {
            assert!(WebhookUrl::parse(bad, STRICT).is_err(), "{bad} accepted");
        }
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/hook", DEV).is_ok());
        assert!(WebhookUrl::parse("http://localhost:8080/hook", DEV).is_ok());
        // The development allowance is for loopback only.
        assert!(WebhookUrl::parse("http://hooks.example.com/", DEV).is_err());
        assert!(WebhookUrl::parse("https://10.0.0.1/", DEV).is_err());
        assert!(WebhookUrl::parse("http://169.254.169.254/", DEV).is_err());
        let long = format!("https://h.example/{}", "a".repeat(URL_MAX_BYTES));
        assert!(WebhookUrl::parse(&long, STRICT).is_err());
    }

    #[test]
    fn the_origin_leaves_out_path_and_query() {
        let u =
            WebhookUrl::parse("https://hooks.slack.com/services/T0/B0/SECRET?x=1", STRICT).unwrap();
        assert_eq!(u.origin(), "https://hooks.slack.com");
        let u = WebhookUrl::parse("http://127.0.0.1:9/x", DEV).unwrap();
        assert_eq!(u.origin(), "http://127.0.0.1:9");
    }

    #[test]
    fn public_addresses_pass_and_embedded_v4_is_judged_as_v4() {
        for ok in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "::ffff:93.184.216.34",
        ] {
            assert_eq!(forbidden_ip(ok.parse().unwrap(), false), None, "{ok}");
        }
        assert_eq!(
            forbidden_ip("::ffff:169.254.169.254".parse().unwrap(), false),
            Some("link-local")
        );
        assert_eq!(
            forbidden_ip("fc00::1".parse().unwrap(), true),
            Some("unique-local (private)")
        );
        assert_eq!(forbidden_ip("127.0.0.1".parse().unwrap(), true), None);
        assert_eq!(forbidden_ip("::1".parse().unwrap(), true), None);
    }

    #[test]
    fn secrets_roundtrip_and_hide_in_debug() {
        let s = WebhookSecret::from_key(&[7; SECRET_BYTES]);
        assert!(s.expose().starts_with(SECRET_PREFIX));
        assert_eq!(WebhookSecret::parse(s.expose()), Ok(s.clone()));
        assert_eq!(s.key(), vec![7; SECRET_BYTES]);
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
        assert!(WebhookSecret::parse("whsec_short").is_err());
        assert!(WebhookSecret::parse("sk_abc").is_err());
    }

    #[test]
    fn rotation_keeps_the_old_secret_for_the_overlap_only() {
        let t0 = Utc::now();
        let a = WebhookSecret::from_key(&[1; 32]);
        let b = WebhookSecret::from_key(&[2; 32]);
        let secrets = TenantSecrets::new("acme", a.clone(), t0);
        let rotated = secrets.rotate(b.clone(), t0).unwrap();
        assert_eq!(rotated.signing_secrets(t0), vec![&b, &a]);
        let later = t0 + ROTATION_OVERLAP - TimeDelta::seconds(1);
        assert_eq!(rotated.signing_secrets(later), vec![&b, &a]);
        assert_eq!(rotated.signing_secrets(t0 + ROTATION_OVERLAP), vec![&b]);
        // Rotating again within the overlap keeps both earlier secrets, up to the cap.
        let mut s = rotated;
        for i in 3..=(MAX_PREVIOUS_SECRETS as u8 + 1) {
            s = s.rotate(WebhookSecret::from_key(&[i; 32]), t0).unwrap();
        }
        assert_eq!(s.signing_secrets(t0).len(), MAX_PREVIOUS_SECRETS + 1);
        let refused = s
            .rotate(WebhookSecret::from_key(&[99; 32]), t0)
            .unwrap_err();
        assert_eq!(refused.next_at, t0 + ROTATION_OVERLAP);
        // Once they expire, rotation is possible again and the expired ones are dropped.
        let after = s
            .rotate(WebhookSecret::from_key(&[99; 32]), t0 + ROTATION_OVERLAP)
            .unwrap();
        assert_eq!(after.previous.len(), 1);
    }

    #[test]
    fn webhook_ids_are_stable_per_job_event_and_run() {
        let a = webhook_id(JobKind::Generation, "job_1", 0, WebhookEvent::Completed);
        assert_eq!(
            a,
            webhook_id(JobKind::Generation, "job_1", 0, WebhookEvent::Completed)
        );
        assert!(a.starts_with("msg_") && a.len() == 36);
        for other in [
            webhook_id(JobKind::Generation, "job_1", 0, WebhookEvent::Failed),
            webhook_id(JobKind::Generation, "job_2", 0, WebhookEvent::Completed),
            webhook_id(JobKind::Generation, "job_1", 1, WebhookEvent::Completed),
            webhook_id(JobKind::Processing, "job_1", 0, WebhookEvent::Completed),
        ] {
            assert_ne!(a, other);
        }
    }
}
