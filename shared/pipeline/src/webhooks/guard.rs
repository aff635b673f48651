//! The SSRF guard: a webhook target must be `https` (loopback `http` only on a development
//! stack) and every address its host resolves to must be public. The HTTP client resolves names
//! only through [`GuardedResolver`], so the connection goes to an address that was checked, and
//! a name that changes its answer between a check and the connect (DNS rebinding) gains nothing.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use vidpipe_domain::webhook::{UrlRules, WebhookUrl, forbidden_ip};

/// Why a target is not contacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefused {
    /// The URL breaks the deployment's rules (scheme, a forbidden literal address).
    #[error("the webhook URL is refused: {0}")]
    Url(String),
    /// The host resolves to an address no webhook may reach.
    #[error("{host} resolves to {ip}, a {why} address")]
    Forbidden {
        host: String,
        ip: IpAddr,
        why: &'static str,
    },
    /// The name does not resolve (now): a passing failure.
    #[error("{host} does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
}

impl TargetRefused {
    /// Whether trying again later may get through: only a name that did not resolve.
    pub fn is_passing(&self) -> bool {
        matches!(self, TargetRefused::Unresolvable { .. })
    }
}

/// Resolves `host` and checks every address: a name with one private answer among public ones
/// is refused whole, since the client could connect to any of them.
pub async fn resolve_checked(
    host: &str,
    allow_loopback: bool,
) -> Result<Vec<SocketAddr>, TargetRefused> {
    // An address literal needs no lookup (and `lookup_host` wants IPv6 without brackets).
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, 0)],
        Err(_) => tokio::net::lookup_host((bare, 0))
            .await
            .map_err(|e| TargetRefused::Unresolvable {
                host: host.to_owned(),
                reason: e.to_string(),
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(TargetRefused::Unresolvable {
            host: host.to_owned(),
            reason: "no addresses".into(),
        });
    }
    for a in &addrs {
        if let Some(why) = forbidden_ip(a.ip(), allow_loopback) {
            return Err(TargetRefused::Forbidden {
                host: host.to_owned(),
                ip: a.ip(),
                why,
            });
        }
    }
    Ok(addrs)
}

/// Checks a target as delivery will reach it: the URL under the deployment's rules (a stored
/// URL is checked again, so a stack that stopped allowing loopback stops sending there), then
/// every address of its host.
pub async fn check_target(
    url: &WebhookUrl,
    rules: UrlRules,
) -> Result<Vec<SocketAddr>, TargetRefused> {
    let checked = WebhookUrl::parse(url.as_str(), rules).map_err(TargetRefused::Url)?;
    let parsed =
        reqwest::Url::parse(checked.as_str()).map_err(|e| TargetRefused::Url(e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| TargetRefused::Url("no host".into()))?;
    resolve_checked(host, rules.allow_loopback).await
}

/// The webhook client's only resolver: answers with the checked addresses, or fails the
/// connection with [`TargetRefused`].
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let addrs = resolve_checked(&host, allow_loopback).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The guard's refusal inside a client error, if that is what stopped the request.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<TargetRefused> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<TargetRefused>() {
            return Some(r.clone());
        }
        next = e.source();
    }
    None
}
