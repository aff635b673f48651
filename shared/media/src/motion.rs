//! Provider media made into scene clips: stills given a Ken Burns move, and videos of another
//! length, rate or shape fitted to the scene.

use crate::tools::Tools;
use std::path::Path;
use vidpipe_domain::media::{ClipSpec, Motion};
use vidpipe_domain::ports::MediaError;

pub async fn animate_still(
    tools: &Tools,
    image: &Path,
    spec: &ClipSpec,
    motion: Motion,
    output: &Path,
) -> Result<(), MediaError> {
    let _ = (tools, image, spec, motion, output);
    todo!("helper: zoompan over a cover-scaled still")
}

pub async fn fit_clip(
    tools: &Tools,
    input: &Path,
    spec: &ClipSpec,
    output: &Path,
) -> Result<(), MediaError> {
    let _ = (tools, input, spec, output);
    todo!("helper: loop or cut, retime, blur-pad")
}
