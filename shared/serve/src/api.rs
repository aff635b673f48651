//! The bridge from axum to the stack's API: every `/v1/...` request is handed to
//! `vidpipe_http::handle`, the function the Lambda routes call, as the `lambda_http::Request`
//! API Gateway would make of it, with the local tenant where the JWT authorizer's claims would
//! be. So routing, validation, problem+json and status codes are the stack's, not a copy.
//! Anything else is the web app.

use crate::Shared;
use crate::access::LOCAL_TENANT;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lambda_http::RequestExt;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use std::collections::HashMap;
use std::sync::Arc;
use vidpipe_http::error::ApiError;

/// The most a request body to the API may be. The API's own limit on JSON bodies is far below
/// (`vidpipe_http::context::MAX_BODY_BYTES`); this one only stops a client streaming forever, and
/// what lies between the two is refused by the API with its own problem.
const MAX_API_BODY: usize = 1024 * 1024;

/// `/v1/...` to the API, `GET /openapi.json` to its document, any other `GET` to the app.
pub async fn or_app(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path();
    if path == "/v1" || path.starts_with("/v1/") {
        return call(&shared, req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    if path == "/openapi.json" {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            vidpipe_http::openapi::document_json(),
        )
            .into_response();
    }
    crate::web::asset(path, req.headers())
}

async fn call(shared: &Shared, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if let Err(refused) = shared.access.check_headers(req.headers()) {
        return problem(
            &ApiError::Unauthenticated {
                detail: refused.to_string(),
            },
            &path,
        );
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_API_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return problem(
                &ApiError::TooLarge {
                    detail: format!("The body is over {MAX_API_BODY} bytes."),
                    errors: vec![],
                },
                &path,
            );
        }
    };
    let body = if bytes.is_empty() {
        lambda_http::Body::Empty
    } else {
        lambda_http::Body::Binary(bytes.to_vec())
    };
    let request =
        lambda_http::Request::from_parts(parts, body).with_request_context(local_context());
    let response = vidpipe_http::handle(&shared.api, request).await;
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(s) => s.into_bytes(),
        lambda_http::Body::Binary(b) => b,
    };
    Response::from_parts(parts, Body::from(bytes))
}

/// What API Gateway's JWT authorizer would put on the request: the local tenant as the subject.
fn local_context() -> RequestContext {
    let claims = HashMap::from([("sub".to_owned(), LOCAL_TENANT.to_owned())]);
    RequestContext::ApiGatewayV2(ApiGatewayV2httpRequestContext {
        authorizer: Some(ApiGatewayRequestAuthorizer {
            jwt: Some(ApiGatewayRequestAuthorizerJwtDescription {
                claims,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A problem answered before the API is reached, in the API's own format.
fn problem(e: &ApiError, instance: &str) -> Response {
    let request_id = format!("gen-{}", uuid::Uuid::now_v7().simple());
    let (parts, body) = vidpipe_http::problem_response(e, instance, &request_id).into_parts();
    Response::from_parts(parts, Body::from(body.as_ref().to_vec()))
}
