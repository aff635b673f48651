//! How captions look: a style, a place on the frame and a size, as requests and timelines name
//! them. Pure values; the media crate draws them.

use crate::request::string_enum;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

string_enum!(
    /// The caption's look. `boxed` is white type on a translucent rounded box (readable on any
    /// footage); `bold-outline` is bold white type with a black outline and no box, as short-form
    /// platforms show; `karaoke` is `bold-outline` with the word being spoken highlighted.
    CaptionStyle { Boxed => "boxed", BoldOutline => "bold-outline", Karaoke => "karaoke" }
);

string_enum!(
    /// Where on the frame the caption sits, inside the frame's safe area.
    CaptionPosition { Bottom => "bottom", Center => "center", Top => "top" }
);

string_enum!(
    /// The caption's type size, relative to the frame's short side.
    CaptionSize { Small => "small", Medium => "medium", Large => "large" }
);

// string_enum! owns the derive list, so the default cannot be a `#[default]` variant.
#[allow(clippy::derivable_impls)]
impl Default for CaptionStyle {
    fn default() -> Self {
        CaptionStyle::Boxed
    }
}

// string_enum! owns the derive list, so the default cannot be a `#[default]` variant.
#[allow(clippy::derivable_impls)]
impl Default for CaptionPosition {
    fn default() -> Self {
        CaptionPosition::Bottom
    }
}

// string_enum! owns the derive list, so the default cannot be a `#[default]` variant.
#[allow(clippy::derivable_impls)]
impl Default for CaptionSize {
    fn default() -> Self {
        CaptionSize::Medium
    }
}

/// Everything that decides a caption's rendering besides its text and the frame size. Missing
/// fields take their defaults, so `{}` is the boxed, bottom, medium caption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptionOptions {
    pub style: CaptionStyle,
    pub position: CaptionPosition,
    pub size: CaptionSize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case_and_round_trip() {
        let json = serde_json::to_string(&CaptionOptions {
            style: CaptionStyle::BoldOutline,
            position: CaptionPosition::Center,
            size: CaptionSize::Large,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"style":"bold-outline","position":"center","size":"large"}"#
        );
        let back: CaptionOptions = serde_json::from_str(&json).unwrap();
        assert_eq!(back.style, CaptionStyle::BoldOutline);
        assert_eq!("karaoke".parse::<CaptionStyle>(), Ok(CaptionStyle::Karaoke));
        assert_eq!(" Top ".parse::<CaptionPosition>(), Ok(CaptionPosition::Top));
        assert!("bold_outline".parse::<CaptionStyle>().is_err());
    }

    #[test]
    fn missing_fields_take_the_defaults() {
        let opts: CaptionOptions = serde_json::from_str(r#"{"size":"small"}"#).unwrap();
        assert_eq!(
            opts,
            CaptionOptions {
                style: CaptionStyle::Boxed,
                position: CaptionPosition::Bottom,
                size: CaptionSize::Small,
            }
        );
        assert!(serde_json::from_str::<CaptionOptions>(r#"{"colour":"red"}"#).is_err());
    }
}
