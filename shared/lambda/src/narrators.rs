//! Builds the narrators a deployment or a CLI run offers, from the same environment names in both
//! places: `VIDPIPE_NARRATOR` is the one used when a request names none (default `espeak`);
//! espeak-ng is offered where its binary is, Polly wherever AWS credentials are, and an
//! OpenAI-compatible server where `OPENAI_BASE_URL` or `OPENAI_API_KEY` is set.

use crate::config::ConfigError;
use aws_config::SdkConfig;
use std::sync::Arc;
use vidpipe_ai::speech::OpenAiSpeech;
use vidpipe_aws::polly::{PollyNarrator, PollySettings};
use vidpipe_domain::ports::Narrator;
use vidpipe_domain::request::NarratorKind;
use vidpipe_pipeline::generation::narration::Narrators;

pub const NARRATOR_VAR: &str = "VIDPIPE_NARRATOR";

/// The narrators on offer. `espeak` is the located binary, if any; `sdk` is absent where there
/// are no AWS credentials to call Polly with. A bad setting of an offered narrator is an error
/// naming it; a default that is not on offer is refused too, unless it is espeak-ng, which
/// narrated jobs then report missing by name.
pub fn build(
    lookup: &dyn Fn(&str) -> Option<String>,
    espeak: Option<Arc<dyn Narrator>>,
    sdk: Option<&SdkConfig>,
) -> Result<Narrators, ConfigError> {
    let get = |k: &str| {
        lookup(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let default = match get(NARRATOR_VAR) {
        None => NarratorKind::Espeak,
        Some(raw) => raw
            .parse::<NarratorKind>()
            .map_err(|why| ConfigError::Invalid {
                name: NARRATOR_VAR,
                why,
            })?,
    };
    let mut offered: Vec<(NarratorKind, Arc<dyn Narrator>)> = Vec::new();
    if let Some(e) = espeak {
        offered.push((NarratorKind::Espeak, e));
    }
    if let Some(sdk) = sdk {
        let settings = PollySettings::from_lookup(lookup).map_err(|e| ConfigError::Invalid {
            name: "VIDPIPE_POLLY_ENGINE",
            why: e.to_string(),
        })?;
        let client = settings.client(sdk);
        offered.push((
            NarratorKind::Polly,
            Arc::new(PollyNarrator::new(client, settings)),
        ));
    }
    let openai_wanted = default == NarratorKind::Openai
        || get("OPENAI_BASE_URL").is_some()
        || get("OPENAI_API_KEY").is_some();
    if openai_wanted {
        let speech = OpenAiSpeech::from_lookup(lookup).map_err(|e| ConfigError::Invalid {
            name: "VIDPIPE_OPENAI_TTS_MODEL",
            why: e.to_string(),
        })?;
        offered.push((NarratorKind::Openai, Arc::new(speech)));
    }
    if default != NarratorKind::Espeak && !offered.iter().any(|(k, _)| *k == default) {
        return Err(ConfigError::Invalid {
            name: NARRATOR_VAR,
            why: format!("{default} is not available here (it needs AWS credentials)"),
        });
    }
    Ok(Narrators::new(default, offered))
}
