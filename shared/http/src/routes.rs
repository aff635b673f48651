//! The route table and the router over it. The router matches the raw request path itself rather
//! than API Gateway's path parameters, because the same function also serves Lambda function URLs
//! (in emulation), which have none. The OpenAPI test walks this same table, so a route cannot be
//! served without being documented, nor documented without being served.

use lambda_http::http::Method;

/// What a route does; the handler dispatch matches on it exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    SubmitGeneration,
    ListGenerations,
    GetGeneration,
    CancelGeneration,
    DownloadGeneration,
    CreateAsset,
    GetAsset,
    CreateUpload,
    CompleteUpload,
    AbortUpload,
    ListProcessingJobs,
    GetProcessingJob,
    DownloadProcessingJob,
    RetryProcessingJob,
    GetWebhookSecret,
    RotateWebhookSecret,
    ListGenerationDeliveries,
    ListProcessingDeliveries,
    SubmitGenerationBatch,
    GetGenerationBatch,
    RecomposeGeneration,
    ListCompositions,
    CreateComposition,
    GetComposition,
}

/// One method and path template. `{name}` matches exactly one non-empty path segment.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub operation: Operation,
}

/// Every route the API serves, in the form the OpenAPI document uses.
pub static ROUTES: &[Route] = &[
    Route {
        method: Method::POST,
        path: "/v1/generations",
        operation: Operation::SubmitGeneration,
    },
    Route {
        method: Method::GET,
        path: "/v1/generations",
        operation: Operation::ListGenerations,
    },
    Route {
        method: Method::GET,
        path: "/v1/generations/{id}",
        operation: Operation::GetGeneration,
    },
    Route {
        method: Method::POST,
        path: "/v1/generations/{id}/cancel",
        operation: Operation::CancelGeneration,
    },
    Route {
        method: Method::GET,
        path: "/v1/generations/{id}/download",
        operation: Operation::DownloadGeneration,
    },
    Route {
        method: Method::POST,
        path: "/v1/assets",
        operation: Operation::CreateAsset,
    },
    Route {
        method: Method::GET,
        path: "/v1/assets/{id}",
        operation: Operation::GetAsset,
    },
    Route {
        method: Method::POST,
        path: "/v1/uploads",
        operation: Operation::CreateUpload,
    },
    Route {
        method: Method::POST,
        path: "/v1/uploads/{id}/complete",
        operation: Operation::CompleteUpload,
    },
    Route {
        method: Method::DELETE,
        path: "/v1/uploads/{id}",
        operation: Operation::AbortUpload,
    },
    Route {
        method: Method::GET,
        path: "/v1/processing-jobs",
        operation: Operation::ListProcessingJobs,
    },
    Route {
        method: Method::GET,
        path: "/v1/processing-jobs/{id}",
        operation: Operation::GetProcessingJob,
    },
    Route {
        method: Method::GET,
        path: "/v1/processing-jobs/{id}/download",
        operation: Operation::DownloadProcessingJob,
    },
    Route {
        method: Method::POST,
        path: "/v1/processing-jobs/{id}/retry",
        operation: Operation::RetryProcessingJob,
    },
    Route {
        method: Method::GET,
        path: "/v1/webhook-secret",
        operation: Operation::GetWebhookSecret,
    },
    Route {
        method: Method::POST,
        path: "/v1/webhook-secret/rotate",
        operation: Operation::RotateWebhookSecret,
    },
    Route {
        method: Method::GET,
        path: "/v1/generations/{id}/deliveries",
        operation: Operation::ListGenerationDeliveries,
    },
    Route {
        method: Method::GET,
        path: "/v1/processing-jobs/{id}/deliveries",
        operation: Operation::ListProcessingDeliveries,
    },
    Route {
        method: Method::POST,
        path: "/v1/generations/batch",
        operation: Operation::SubmitGenerationBatch,
    },
    Route {
        method: Method::GET,
        path: "/v1/generations/batches/{id}",
        operation: Operation::GetGenerationBatch,
    },
    Route {
        method: Method::POST,
        path: "/v1/generations/{id}/recompose",
        operation: Operation::RecomposeGeneration,
    },
    Route {
        method: Method::GET,
        path: "/v1/generations/{id}/compositions",
        operation: Operation::ListCompositions,
    },
    Route {
        method: Method::POST,
        path: "/v1/compositions",
        operation: Operation::CreateComposition,
    },
    Route {
        method: Method::GET,
        path: "/v1/compositions/{id}",
        operation: Operation::GetComposition,
    },
];

/// The outcome of routing one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Matched<'a> {
    /// The route, the captured `{id}` if the template has one, and the path prefix that was
    /// stripped (stage or base path) so links can be built the way the caller reached us.
    Found {
        operation: Operation,
        id: Option<&'a str>,
        prefix: &'a str,
    },
    /// The path exists but not for this method; the methods it does accept.
    WrongMethod {
        allow: Vec<Method>,
    },
    NotFound,
}

/// Routes `path` (the URI path as received) for `method`. Each prefix in `prefixes` (the
/// configured base path, the API Gateway stage) is stripped when the path starts with it, so
/// `/prod/v1/generations` and `/v1/generations` reach the same route.
pub fn route<'a>(method: &Method, path: &'a str, prefixes: &[&str]) -> Matched<'a> {
    let mut rest = path;
    for prefix in prefixes {
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() || !prefix.starts_with('/') {
            continue;
        }
        if let Some(after) = rest.strip_prefix(prefix).filter(|a| a.starts_with('/')) {
            rest = after;
        }
    }
    let stripped = &path[..path.len() - rest.len()];
    // A trailing slash is tolerated; an empty segment elsewhere is not a route.
    let rest = rest
        .strip_suffix('/')
        .filter(|r| !r.is_empty())
        .unwrap_or(rest);
    let mut allow = Vec::new();
    for r in ROUTES {
        let Some(id) = match_template(r.path, rest) else {
            continue;
        };
        if r.method == method {
            return Matched::Found {
                operation: r.operation,
                id,
                prefix: stripped,
            };
        }
        allow.push(r.method.clone());
    }
    if allow.is_empty() {
        Matched::NotFound
    } else {
        Matched::WrongMethod { allow }
    }
}

/// `Some(captured id)` when `path` fits `template`; the outer `None` when it does not.
fn match_template<'a>(template: &str, path: &'a str) -> Option<Option<&'a str>> {
    let mut captured = None;
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(captured),
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') => {
                if ps.is_empty() {
                    return None;
                }
                captured = Some(ps);
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_trailing_slashes_are_tolerated() {
        let found = |path: &'static str, prefixes: &[&str]| route(&Method::GET, path, prefixes);
        assert_eq!(
            found("/prod/v1/generations/job_1/", &["/prod"]),
            Matched::Found {
                operation: Operation::GetGeneration,
                id: Some("job_1"),
                prefix: "/prod"
            }
        );
        assert_eq!(
            found("/api/prod/v1/assets/a", &["/api", "/prod"]),
            Matched::Found {
                operation: Operation::GetAsset,
                id: Some("a"),
                prefix: "/api/prod"
            }
        );
        // A prefix only counts at a segment boundary.
        assert_eq!(found("/prodv1/generations", &["/prod"]), Matched::NotFound);
        assert_eq!(found("/v1/generations//download", &[]), Matched::NotFound);
        assert_eq!(found("/v1/generations/x/y", &[]), Matched::NotFound);
    }

    #[test]
    fn batch_routes_are_told_apart_from_a_generation_id() {
        let post = route(&Method::POST, "/v1/generations/batch", &[]);
        assert!(matches!(
            post,
            Matched::Found {
                operation: Operation::SubmitGenerationBatch,
                id: None,
                ..
            }
        ));
        let get = route(
            &Method::GET,
            "/v1/generations/batches/bat_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e",
            &[],
        );
        assert!(matches!(
            get,
            Matched::Found {
                operation: Operation::GetGenerationBatch,
                id: Some("bat_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e"),
                ..
            }
        ));
    }

    #[test]
    fn a_known_path_with_another_method_lists_the_allowed_ones() {
        assert_eq!(
            route(&Method::DELETE, "/v1/generations", &[]),
            Matched::WrongMethod {
                allow: vec![Method::POST, Method::GET]
            }
        );
        assert_eq!(
            route(&Method::GET, "/v1/generations/j/cancel", &[]),
            Matched::WrongMethod {
                allow: vec![Method::POST]
            }
        );
    }
}
