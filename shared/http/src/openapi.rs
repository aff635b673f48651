//! The OpenAPI document, derived from the handlers' annotations and the view types. It is checked
//! in as `openapi.json`; a test fails when the code and the file disagree, so the published
//! contract can only change in a reviewed diff.

use crate::views::{
    AssetUploadView, AssetView, ClipView, CreateAssetBody, DownloadLink, DownloadView, JobLinks,
    JobListView, JobView, OutputsView, Problem, RequestSummary, StageTimingView,
};
use crate::{batches, compositions, handlers, timelines, uploads, webhooks};
use serde_json::Value;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{Object, Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use vidpipe_domain::request::{
    self as rules, AspectRatio, BrandBody, Corner, Fps, LogoBody, MusicBody, NarratorKind,
    PollyEngine, Resolution, TransitionKind,
};
use vidpipe_domain::{CaptionPosition, CaptionSize, CaptionStyle, processing, upload};
use vidpipe_domain::{GenerationRequestBody, asset::AssetKind, error::FieldError, job, webhook};

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
        webhooks::get_webhook_secret,
        webhooks::rotate_webhook_secret,
        webhooks::list_generation_deliveries,
        webhooks::list_processing_deliveries,
        batches::submit_generation_batch,
        batches::get_generation_batch,
        compositions::recompose_generation,
        compositions::list_compositions,
        timelines::create_composition,
        timelines::get_composition,
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
        webhooks::WebhookSecretView, webhooks::PreviousSecretView, webhooks::DeliveryView,
        webhooks::DeliveryListView, webhook::DeliveryOutcome, webhook::JobKind, webhook::WebhookEvent,
        webhook::WebhookFormat, webhook::WebhookPayload, webhook::WebhookJob, webhook::WebhookOutput,
        webhook::WebhookFailure,
        batches::BatchBody, batches::BatchItemBody, batches::BatchItemResult, batches::BatchItemView,
        batches::BatchLinks, batches::BatchView, vidpipe_domain::batch::ItemError,
        vidpipe_domain::batch::BatchCounts,
        vidpipe_domain::composition::RecomposeEdits, vidpipe_domain::composition::SceneEdit, vidpipe_domain::composition::SceneAsset,
        vidpipe_domain::composition::CompositionStatus,
        compositions::CompositionLinks, compositions::CompositionDownloads,
        compositions::CompositionView, compositions::CompositionListView,
    )),
    modifiers(&Conventions, &Rules),
    tags(
        (name = "generations", description = "Video generation jobs."),
        (name = "compositions", description = "JSON timelines rendered in one pass, or dry-run."),
        (name = "assets", description = "Brand assets (logos, music) uploaded for use in generations."),
        (name = "uploads", description = "Raw videos uploaded straight to the media store, under raw/{tenant}/{project}/."),
        (name = "processing", description = "The processing of raw uploads into trimmed, watermarked renditions."),
        (name = "webhooks", description = "Signed webhook deliveries: a job's `webhook_url` (or the deployment's default) is POSTed a `WebhookPayload` when the job completes or fails, signed per Standard Webhooks with the tenant's secret."),
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

/// The request bodies' rules that a schema can state, from the domain's own constants and tables:
/// which fields are required, numeric ranges, lengths, patterns and closed sets. The body types
/// keep every field optional so that a missing one is a named 422 rather than a parse failure;
/// the document still says what a request must hold to be accepted, so a client (or a fuzzer)
/// reading it builds requests the API takes. Rules that tie fields together (how many scenes
/// fit a duration, which content types a kind takes) stay in the descriptions and the 422s.
struct Rules;

impl Modify for Rules {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        let asset_id = r"^ast_[0-9a-f]{32}$";
        let names = |all: &[&str]| all.iter().map(|v| Value::from(*v)).collect::<Vec<_>>();

        let body = "GenerationRequestBody";
        require(c, body, &["prompt", "duration_seconds", "aspect_ratio"]);
        field(c, body, "prompt", |p| {
            p.min_length = Some(1);
            p.max_length = Some(rules::PROMPT_MAX_CHARS);
            // Not blank: the prompt is trimmed before its length is checked.
            p.pattern = Some(r"\S".into());
        });
        field(c, body, "duration_seconds", |p| {
            range(p, rules::DURATION_MIN_SECONDS, rules::DURATION_MAX_SECONDS);
            p.multiple_of = Some(1.into());
        });
        field(c, body, "clip_count", |p| {
            range(p, 1, rules::CLIP_COUNT_MAX)
        });
        // 0 for a cut, else TRANSITION_MIN_SECONDS and up: a range cannot say which.
        field(c, body, "transition_duration_seconds", |p| {
            range(p, 0.0, rules::TRANSITION_MAX_SECONDS)
        });

        require(c, "LogoBody", &["asset_id"]);
        field(c, "LogoBody", "asset_id", |p| {
            p.pattern = Some(asset_id.into())
        });
        field(c, "LogoBody", "opacity", |p| range(p, 0.0, 1.0));
        field(c, "LogoBody", "scale", |p| range(p, 0.02, 0.5));
        require(c, "MusicBody", &["asset_id"]);
        field(c, "MusicBody", "asset_id", |p| {
            p.pattern = Some(asset_id.into())
        });
        field(c, "MusicBody", "volume", |p| range(p, 0.0, 1.0));
        for fade in ["fade_in_seconds", "fade_out_seconds"] {
            field(c, "MusicBody", fade, |p| range(p, 0.0, 10.0));
        }

        // Optional fields with a closed set: one of the set, or null.
        let closed = |all: Vec<&'static str>| {
            move |p: &mut Object| {
                let mut values: Vec<Value> = all.into_iter().map(Value::from).collect();
                values.push(Value::Null);
                p.enum_values = Some(values);
            }
        };
        let styles = CaptionStyle::ALL.iter().map(|v| v.as_str()).collect();
        field(c, "CaptionStyleBody", "style", closed(styles));
        let positions = CaptionPosition::ALL.iter().map(|v| v.as_str()).collect();
        field(c, "CaptionStyleBody", "position", closed(positions));
        let sizes = CaptionSize::ALL.iter().map(|v| v.as_str()).collect();
        field(c, "CaptionStyleBody", "size", closed(sizes));
        let narrators = NarratorKind::ALL.iter().map(|v| v.as_str()).collect();
        field(c, "NarrationBody", "provider", closed(narrators));
        let engines = PollyEngine::ALL.iter().map(|v| v.as_str()).collect();
        field(c, "NarrationBody", "engine", closed(engines));
        field(c, "NarrationBody", "voice", |p| {
            p.pattern = Some(format!("^[A-Za-z0-9_+.-]{{1,{}}}$", rules::VOICE_MAX_CHARS));
        });

        // A batch item is a request with one field more. Written out as the request's own object
        // (its rules included) rather than an `allOf`, which the request's closed property set
        // would make unsatisfiable.
        let mut item = object(c, body).clone();
        let key = match c.schemas.get("BatchItemBody") {
            Some(RefOr::T(Schema::AllOf(all))) => all.items.iter().find_map(|part| match part {
                RefOr::T(Schema::Object(o)) => {
                    o.properties.get(crate::batches::ITEM_KEY_FIELD).cloned()
                }
                _ => None,
            }),
            _ => None,
        }
        .expect("BatchItemBody derives idempotency_key beside the request");
        item.properties
            .insert(crate::batches::ITEM_KEY_FIELD.to_owned(), key);
        item.description = Some(
            "One item of a batch: a generation request (the body of `POST /v1/generations`), optionally with its own `idempotency_key`.".into(),
        );
        c.schemas
            .insert("BatchItemBody".to_owned(), RefOr::T(Schema::Object(item)));

        let asset = "CreateAssetBody";
        require(c, asset, &["kind", "content_type", "size_bytes"]);
        let mut accepted: Vec<&str> = Vec::new();
        // Logos and images share their types: each listed once.
        for ct in vidpipe_domain::AssetKind::ALL
            .iter()
            .flat_map(|k| k.content_types().iter().map(|(ct, _)| *ct))
        {
            if !accepted.contains(&ct) {
                accepted.push(ct);
            }
        }
        field(c, asset, "content_type", |p| {
            p.enum_values = Some(names(&accepted))
        });
        field(c, asset, "size_bytes", |p| p.minimum = Some(1.into()));

        let up = "CreateUploadBody";
        require(
            c,
            up,
            &["project", "filename", "size_bytes", "content_type"],
        );
        field(c, up, "project", |p| {
            p.pattern = Some(format!(
                "^[a-z0-9][a-z0-9_-]{{0,{}}}$",
                upload::PROJECT_MAX_CHARS - 1
            ));
        });
        field(c, up, "filename", |p| {
            p.min_length = Some(1);
            // Bytes of UTF-8 in the API; a schema counts characters, so this is the bound
            // for ASCII names and the description says the rest.
            p.max_length = Some(upload::FILENAME_MAX_BYTES);
            // Not starting with a dot or a space, no '/', '\' or control character, and a
            // video extension in any case. ('..' inside a name is refused too; a pattern
            // without lookahead cannot say so.)
            let ext: Vec<String> = processing::VIDEO_EXTENSIONS
                .iter()
                .map(|e| {
                    e.chars()
                        .map(|ch| format!("[{ch}{}]", ch.to_ascii_uppercase()))
                        .collect()
                })
                .collect();
            p.pattern = Some(format!(
                r"^[^./\\\s\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]*\.(?:{})$",
                ext.join("|")
            ));
        });
        field(c, up, "size_bytes", |p| {
            p.minimum = Some(1.into());
            p.maximum = Some(utoipa::Number::UInt(upload::MAX_UPLOAD_BYTES as usize));
        });
        field(c, up, "content_type", |p| {
            p.pattern = Some(r"^video/[A-Za-z0-9!#$&^_.+-]+$".into())
        });
    }
}

/// The object schema `name` in the components; the document is generated in a test, so a
/// renamed type fails there rather than losing its rules quietly.
fn object<'a>(c: &'a mut utoipa::openapi::Components, name: &str) -> &'a mut Object {
    match c.schemas.get_mut(name) {
        Some(RefOr::T(Schema::Object(o))) => o,
        _ => panic!("the OpenAPI components have no object schema {name}"),
    }
}

/// Applies `rule` to `schema.field`, an inline property.
fn field(
    c: &mut utoipa::openapi::Components,
    schema: &str,
    name: &str,
    rule: impl FnOnce(&mut Object),
) {
    match object(c, schema).properties.get_mut(name) {
        Some(RefOr::T(Schema::Object(p))) => rule(p),
        _ => panic!("{schema} has no inline property {name}"),
    }
}

/// Marks `fields` of `schema` required and no longer nullable: `null` is a missing value to the
/// API, answered with the same 422.
fn require(c: &mut utoipa::openapi::Components, schema: &str, fields: &[&str]) {
    let object = object(c, schema);
    for name in fields {
        let property = object
            .properties
            .get_mut(*name)
            .unwrap_or_else(|| panic!("{schema} has no property {name}"));
        match property {
            RefOr::T(Schema::Object(p)) => {
                if let SchemaType::Array(types) = &p.schema_type {
                    let kept: Vec<Type> = types
                        .iter()
                        .filter(|t| **t != Type::Null)
                        .cloned()
                        .collect();
                    p.schema_type = match kept.as_slice() {
                        [one] => SchemaType::Type(one.clone()),
                        _ => SchemaType::Array(kept),
                    };
                }
                if let Some(values) = &mut p.enum_values {
                    values.retain(|v| !v.is_null());
                }
            }
            // `Option<Ref>` is `oneOf: [null, ref]`; required, it is the ref alone.
            RefOr::T(Schema::OneOf(one_of)) => {
                let not_null = one_of.items.iter().find(|item| {
                    !matches!(item, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
                });
                let Some(item) = not_null.cloned() else {
                    panic!("{schema}.{name} is only null");
                };
                *property = item;
            }
            _ => {}
        }
        object.required.push((*name).to_owned());
    }
}

fn range(p: &mut Object, min: impl Into<utoipa::Number>, max: impl Into<utoipa::Number>) {
    p.minimum = Some(min.into());
    p.maximum = Some(max.into());
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
