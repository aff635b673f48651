//! The OpenAPI document, derived from the handlers' annotations and the view types. It is checked
//! in as `openapi.json`; a test fails when the code and the file disagree, so the published
//! contract can only change in a reviewed diff.

use crate::views::{
    AssetUploadView, AssetView, ClipView, CreateAssetBody, DownloadLink, DownloadView, JobLinks,
    JobListView, JobView, OutputsView, Problem, RequestSummary, StageTimingView,
};
use crate::{handlers, uploads};
use serde_json::Value;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{Object, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use vidpipe_domain::request::{
    AspectRatio, BrandBody, Corner, Fps, LogoBody, MusicBody, Resolution, TransitionKind,
};
use vidpipe_domain::{GenerationRequestBody, asset::AssetKind, error::FieldError, job};

/// Where the checked-in document lives, relative to this crate.
pub const DOCUMENT_PATH: &str = "openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vidpipe API",
        version = "1.0.0",
        description = "Generate short branded videos from a prompt. Every error is an RFC 7807 `application/problem+json` body carrying a `request_id`; validation errors list each offending field.",
    ),
    paths(
        handlers::submit_generation,
        handlers::list_generations,
        handlers::get_generation,
        handlers::cancel_generation,
        handlers::download_generation,
        handlers::create_asset,
        handlers::get_asset,
        uploads::create_upload,
        uploads::complete_upload,
        uploads::abort_upload,
        uploads::list_processing_jobs,
        uploads::get_processing_job,
        uploads::download_processing_job,
        uploads::retry_processing_job,
    ),
    components(schemas(
        Problem, FieldError, GenerationRequestBody, BrandBody, LogoBody, MusicBody, JobView, JobLinks,
        RequestSummary, ClipView, OutputsView, StageTimingView, JobListView, DownloadView, DownloadLink,
        CreateAssetBody, AssetUploadView, AssetView, AssetKind, job::JobStatus, job::Stage, job::ClipStatus,
        job::JobError, job::GenerationCost, job::CostLine, vidpipe_domain::quota::QuotaKind,
        uploads::CreateUploadBody, uploads::SignedRequestView, uploads::UploadPartView, uploads::UploadLinks,
        uploads::UploadView, uploads::StepTimingView, uploads::RenditionView, uploads::ProcessCostView,
        uploads::ProcessErrorView, uploads::ProcessLinks, uploads::ProcessingJobView,
        uploads::ProcessingJobListView, uploads::OutputLinkView, uploads::ProcessingDownloadView,
        uploads::RetryView,
    )),
    modifiers(&Conventions),
    tags(
        (name = "generations", description = "Video generation jobs."),
        (name = "assets", description = "Brand assets (logos, music) uploaded for use in generations."),
        (name = "uploads", description = "Raw videos uploaded straight to the media store, under raw/{tenant}/{project}/."),
        (name = "processing", description = "The processing of raw uploads into trimmed, watermarked renditions."),
    ),
)]
pub struct ApiDoc;

/// The generated document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as checked in: pretty JSON with a trailing newline.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

/// What holds for every operation, added once rather than repeated on each: JWT auth, and the
/// 401, 500 and 503 problems any route can answer with. Also lists the accepted values of the
/// request body's string fields from the domain's own tables, so the document cannot drift
/// from validation.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        http.description = Some("A JWT checked by the HTTP API's authorizer; the tenant is its `tenant` claim, else `sub`.".into());
        components.add_security_scheme("jwt", SecurityScheme::Http(http));
        doc.security = Some(vec![SecurityRequirement::new("jwt", Vec::<String>::new())]);

        let problem = |description: &str| {
            ResponseBuilder::new().description(description).content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
        };
        let common = [
            ("401", problem("No authenticated tenant.").build()),
            (
                "500",
                problem(
                    "Unexpected server error; the detail is generic, the request_id finds the log.",
                )
                .build(),
            ),
            (
                "503",
                problem("A backing service is temporarily unavailable.")
                    .header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(Object::with_type(Type::Integer))
                            .description(Some("Seconds to wait before retrying."))
                            .build(),
                    )
                    .build(),
            ),
        ];
        for item in doc.paths.paths.values_mut() {
            for op in operations_mut(item) {
                for (status, response) in &common {
                    op.responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| RefOr::T(response.clone()));
                }
            }
        }

        let choices = |all: Vec<String>| all.into_iter().map(Value::String).collect::<Vec<_>>();
        let enums: [(&str, &str, Vec<Value>); 5] = [
            (
                "GenerationRequestBody",
                "aspect_ratio",
                choices(AspectRatio::ALL.iter().map(|v| v.to_string()).collect()),
            ),
            (
                "GenerationRequestBody",
                "resolution",
                choices(Resolution::ALL.iter().map(|v| v.to_string()).collect()),
            ),
            (
                "GenerationRequestBody",
                "transition",
                choices(TransitionKind::ALL.iter().map(|v| v.to_string()).collect()),
            ),
            (
                "GenerationRequestBody",
                "fps",
                Fps::ALLOWED.iter().map(|v| Value::from(*v)).collect(),
            ),
            (
                "LogoBody",
                "position",
                choices(Corner::ALL.iter().map(|v| v.to_string()).collect()),
            ),
        ];
        for (schema, field, mut values) in enums {
            let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
                continue;
            };
            let Some(RefOr::T(Schema::Object(property))) = object.properties.get_mut(field) else {
                continue;
            };
            // The fields are optional (a missing one gets a default or a named error), so null
            // stays an accepted value.
            values.push(Value::Null);
            property.enum_values = Some(values);
        }
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}
