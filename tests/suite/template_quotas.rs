//! The per-tenant quotas and the API's throttling are stack parameters that reach what enforces
//! them: the quota parameters become the environment of the function that accepts generations
//! (and its cold start reads them as the limits they say, defaults included), releasing a claim
//! is allowed by the table policy, and the throttling parameters are the HTTP API's default route
//! settings.

use serde_yaml_ng::Value as Yaml;
use std::path::Path;
use vidpipe_domain::quota::QuotaLimits;
use vidpipe_lambda::Config;

fn template() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `X` for `!Ref X` (short or long form).
fn reference(v: &Yaml) -> Option<&str> {
    match v {
        Yaml::Tagged(t) if t.tag.to_string().trim_start_matches('!') == "Ref" => t.value.as_str(),
        Yaml::Mapping(m) => m.get("Ref").and_then(Yaml::as_str),
        _ => None,
    }
}

/// The function serving `method path` through an `HttpApi` event.
fn function_serving<'a>(template: &'a Yaml, method: &str, path: &str) -> (String, &'a Yaml) {
    let resources = template["Resources"].as_mapping().unwrap();
    let found: Vec<_> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .filter(|(_, r)| {
            r["Properties"]["Events"]
                .as_mapping()
                .into_iter()
                .flatten()
                .any(|(_, e)| {
                    e["Type"].as_str() == Some("HttpApi")
                        && e["Properties"]["Method"].as_str() == Some(method)
                        && e["Properties"]["Path"].as_str() == Some(path)
                })
        })
        .map(|(k, r)| (k.as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(found.len(), 1, "one function serves {method} {path}");
    found.into_iter().next().unwrap()
}

fn parameter_default(template: &Yaml, name: &str) -> String {
    let p = &template["Parameters"][name];
    assert_eq!(p["Type"].as_str(), Some("Number"), "{name} is a number");
    match &p["Default"] {
        Yaml::Number(n) => n.to_string(),
        Yaml::String(s) => s.clone(),
        other => panic!("{name} has no default: {other:?}"),
    }
}

#[test]
fn quota_parameters_reach_the_functions_that_admit_work() {
    let t = template();
    // A recompose or a timeline render makes output as a job does, so it is admitted by the
    // same quotas.
    for path in ["/v1/generations/{id}/recompose", "/v1/compositions"] {
        let (id, function) = function_serving(&t, "POST", path);
        let env = &function["Properties"]["Environment"]["Variables"];
        for (var, parameter) in [
            ("VIDPIPE_MAX_CONCURRENT_JOBS", "MaxConcurrentJobsPerTenant"),
            (
                "VIDPIPE_DAILY_OUTPUT_MINUTES",
                "DailyOutputMinutesPerTenant",
            ),
        ] {
            assert_eq!(reference(&env[var]), Some(parameter), "{id}'s {var}");
        }
    }
    let (id, function) = function_serving(&t, "POST", "/v1/generations");
    let env = &function["Properties"]["Environment"]["Variables"];
    let mut lookup = std::collections::BTreeMap::new();
    for (var, parameter) in [
        ("VIDPIPE_MAX_CONCURRENT_JOBS", "MaxConcurrentJobsPerTenant"),
        (
            "VIDPIPE_DAILY_OUTPUT_MINUTES",
            "DailyOutputMinutesPerTenant",
        ),
    ] {
        assert_eq!(
            reference(&env[var]),
            Some(parameter),
            "{id}'s {var} is the {parameter} parameter"
        );
        let p = &t["Parameters"][parameter];
        assert_eq!(p["MinValue"].as_u64(), Some(0), "{parameter} allows 0");
        assert!(
            p["Description"]
                .as_str()
                .is_some_and(|d| d.contains("0 means unlimited")),
            "{parameter} says what 0 means"
        );
        lookup.insert(var, parameter_default(&t, parameter));
    }
    // The defaults, read as a cold start reads them.
    let config = Config::from_lookup(|k| lookup.get(k).cloned()).expect("the defaults configure");
    assert_eq!(
        config.quota_limits,
        QuotaLimits {
            concurrent_jobs: Some(5),
            daily_output_seconds: Some(120 * 60),
        }
    );
    // And 0, the unlimited value, is accepted and means unlimited.
    let zero = Config::from_lookup(|k| lookup.contains_key(k).then(|| "0".to_owned())).unwrap();
    assert!(zero.quota_limits.is_unlimited());
}

#[test]
fn the_function_that_accepts_generations_may_release_quota_claims() {
    let t = template();
    let (id, function) = function_serving(&t, "POST", "/v1/generations");
    // Its managed and inline policies' actions on the jobs table.
    let mut actions = Vec::new();
    for policy in function["Properties"]["Policies"].as_sequence().unwrap() {
        let document = match reference(policy) {
            Some(name) => &t["Resources"][name]["Properties"]["PolicyDocument"],
            None => policy,
        };
        for statement in document["Statement"].as_sequence().into_iter().flatten() {
            match &statement["Action"] {
                Yaml::String(a) => actions.push(a.clone()),
                Yaml::Sequence(list) => {
                    actions.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned)))
                }
                _ => {}
            }
        }
    }
    // Acquire puts a claim and updates two counters; release deletes the claim; both in one
    // TransactWriteItems, which is authorised per item by these actions.
    for needed in [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ] {
        assert!(
            actions.iter().any(|a| a == needed),
            "{id} needs {needed}: {actions:?}"
        );
    }
}

#[test]
fn the_http_api_throttles_every_route_by_parameter() {
    let t = template();
    let apis: Vec<_> = t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::HttpApi"))
        .collect();
    assert_eq!(apis.len(), 1, "one HTTP API");
    let settings = &apis[0].1["Properties"]["DefaultRouteSettings"];
    for (setting, parameter, default) in [
        ("ThrottlingBurstLimit", "ApiThrottlingBurstLimit", "100"),
        ("ThrottlingRateLimit", "ApiThrottlingRateLimit", "50"),
    ] {
        assert_eq!(
            reference(&settings[setting]),
            Some(parameter),
            "{setting} is the {parameter} parameter"
        );
        assert_eq!(parameter_default(&t, parameter), default);
        assert_eq!(t["Parameters"][parameter]["MinValue"].as_u64(), Some(1));
    }
}
