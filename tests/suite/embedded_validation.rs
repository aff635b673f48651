//! Bad input is refused before any work starts, with an error naming the field and the rule,
//! and nothing is left behind: no job, no blob.

use vidpipe_domain::asset::AssetKind;
use vidpipe_domain::request::{BrandBody, GenerationRequestBody, LogoBody, MusicBody};
use vidpipe_pipeline::ServiceError;
use vidpipe_pipeline::local::LocalStack;
use vidpipe_tests::*;

const OWNER: &str = "local";

fn valid() -> GenerationRequestBody {
    GenerationRequestBody {
        prompt: Some("Snow falling on a quiet village".into()),
        duration_seconds: Some(10.0),
        aspect_ratio: Some("9:16".into()),
        ..Default::default()
    }
}

fn logo(id: &str) -> Option<BrandBody> {
    Some(BrandBody {
        logo: Some(LogoBody {
            asset_id: Some(id.into()),
            ..Default::default()
        }),
        music: None,
    })
}

async fn nothing_left(stack: &LocalStack) {
    let page = stack.service().list(OWNER, 100, None).await.unwrap();
    assert!(
        page.jobs.is_empty(),
        "no job may exist: {:?}",
        page.jobs.iter().map(|j| &j.id).collect::<Vec<_>>()
    );
    let blobs = stack.deps().blobs.list("").await.unwrap();
    assert!(blobs.is_empty(), "no blob may exist: {blobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_field_is_named_and_nothing_is_created() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack(home.path()).await;
    type Edit = fn(&mut GenerationRequestBody);
    let cases: Vec<(&str, Edit)> = vec![
        ("prompt", |b| b.prompt = None),
        ("prompt", |b| b.prompt = Some("  \n\t ".into())),
        ("prompt", |b| b.prompt = Some("ß".repeat(2001))),
        ("duration_seconds", |b| b.duration_seconds = None),
        ("duration_seconds", |b| b.duration_seconds = Some(4.0)),
        ("duration_seconds", |b| b.duration_seconds = Some(301.0)),
        ("duration_seconds", |b| b.duration_seconds = Some(7.5)),
        ("duration_seconds", |b| b.duration_seconds = Some(f64::NAN)),
        ("aspect_ratio", |b| b.aspect_ratio = None),
        ("aspect_ratio", |b| b.aspect_ratio = Some("21:9".into())),
        ("resolution", |b| b.resolution = Some("4k".into())),
        ("fps", |b| b.fps = Some(60)),
        ("fps", |b| b.fps = Some(-24)),
        ("clip_count", |b| b.clip_count = Some(0)),
        ("clip_count", |b| b.clip_count = Some(21)),
        ("clip_count", |b| {
            b.duration_seconds = Some(5.0);
            b.clip_count = Some(8);
        }),
        ("transition", |b| b.transition = Some("spin".into())),
        ("transition_duration_seconds", |b| {
            b.transition_duration_seconds = Some(0.05)
        }),
        ("transition_duration_seconds", |b| {
            b.transition_duration_seconds = Some(2.5)
        }),
        ("transition_duration_seconds", |b| {
            b.transition = Some("cut".into());
            b.transition_duration_seconds = Some(0.5);
        }),
        ("brand.logo.asset_id", |b| b.brand = logo("not-an-id")),
        ("brand.logo.asset_id", |b| {
            b.brand = Some(BrandBody {
                logo: Some(LogoBody::default()),
                music: None,
            })
        }),
        ("brand.logo.asset_id", |b| {
            b.brand = logo("ast_0000000000000000000000000000abcd")
        }),
        ("brand.logo.position", |b| {
            b.brand = logo("ast_0000000000000000000000000000abcd");
            b.brand.as_mut().unwrap().logo.as_mut().unwrap().position = Some("middle".into());
        }),
        ("brand.logo.opacity", |b| {
            b.brand = logo("ast_0000000000000000000000000000abcd");
            b.brand.as_mut().unwrap().logo.as_mut().unwrap().opacity = Some(1.5);
        }),
        ("brand.logo.scale", |b| {
            b.brand = logo("ast_0000000000000000000000000000abcd");
            b.brand.as_mut().unwrap().logo.as_mut().unwrap().scale = Some(0.9);
        }),
        ("brand.music.asset_id", |b| {
            b.brand = Some(BrandBody {
                logo: None,
                music: Some(MusicBody {
                    asset_id: Some("ast_0000000000000000000000000000abcd".into()),
                    ..Default::default()
                }),
            })
        }),
        ("brand.music.volume", |b| {
            b.brand = Some(BrandBody {
                logo: None,
                music: Some(MusicBody {
                    asset_id: Some("ast_0000000000000000000000000000abcd".into()),
                    volume: Some(3.0),
                    ..Default::default()
                }),
            })
        }),
        ("brand.music.fade_in_seconds", |b| {
            b.brand = Some(BrandBody {
                logo: None,
                music: Some(MusicBody {
                    asset_id: Some("ast_0000000000000000000000000000abcd".into()),
                    fade_in_seconds: Some(-1.0),
                    ..Default::default()
                }),
            })
        }),
        ("brand.music.fade_out_seconds", |b| {
            b.brand = Some(BrandBody {
                logo: None,
                music: Some(MusicBody {
                    asset_id: Some("ast_0000000000000000000000000000abcd".into()),
                    fade_out_seconds: Some(11.0),
                    ..Default::default()
                }),
            })
        }),
    ];
    for (field, edit) in cases {
        let mut b = valid();
        edit(&mut b);
        match stack.service().submit(OWNER, &b, None).await {
            Err(ServiceError::Invalid(e)) => {
                assert!(e.names(field), "expected an error naming {field}, got {e}");
                assert!(e.errors.iter().all(|f| !f.rule.is_empty()));
            }
            Err(other) => panic!("{field}: expected a validation error, got {other}"),
            Ok(s) => panic!("{field}: accepted invalid body as {}", s.job().id),
        }
    }
    nothing_left(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_of_the_wrong_kind_or_tenant_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack(home.path()).await;
    let media = tempfile::tempdir().unwrap();
    let music = write_music(&media.path().join("song.wav"), 2.0);
    let asset = stack
        .service()
        .ingest_asset(OWNER, AssetKind::Music, &music, "music")
        .await
        .unwrap();
    let mut b = valid();
    b.brand = logo(asset.id.as_str());
    let err = stack
        .service()
        .submit(OWNER, &b, None)
        .await
        .expect_err("music is not a logo");
    assert!(
        matches!(&err, ServiceError::Invalid(e) if e.names("brand.logo.asset_id")),
        "{err}"
    );
    // Another tenant cannot use it either, and learns nothing about it.
    let mut b = valid();
    b.brand = Some(BrandBody {
        logo: None,
        music: Some(MusicBody {
            asset_id: Some(asset.id.to_string()),
            ..Default::default()
        }),
    });
    let err = stack
        .service()
        .submit("someone-else", &b, None)
        .await
        .expect_err("foreign asset");
    assert!(err.to_string().contains("no asset"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logo_that_is_not_an_image_and_music_that_is_not_audio_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack(home.path()).await;
    let media = tempfile::tempdir().unwrap();
    let svc = stack.service();

    let text_png = media.path().join("logo.png");
    std::fs::write(&text_png, "this is not an image\n").unwrap();
    let err = svc
        .ingest_asset(OWNER, AssetKind::Logo, &text_png, "brand.logo")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::Invalid(e) if e.names("brand.logo")),
        "{err}"
    );
    assert!(err.to_string().contains("not a valid image"), "{err}");

    let gif = media.path().join("logo.gif");
    std::fs::write(&gif, "GIF89a").unwrap();
    let err = svc
        .ingest_asset(OWNER, AssetKind::Logo, &gif, "brand.logo")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PNG or JPEG"), "{err}");

    // Audio passed off as a logo: real media, wrong kind.
    let wav_as_png = media.path().join("tone.png");
    write_music(&media.path().join("tone.wav"), 1.0);
    std::fs::copy(media.path().join("tone.wav"), &wav_as_png).unwrap();
    let err = svc
        .ingest_asset(OWNER, AssetKind::Logo, &wav_as_png, "brand.logo")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::Invalid(e) if e.names("brand.logo")),
        "{err}"
    );

    let png_as_mp3 = media.path().join("song.mp3");
    write_logo(&media.path().join("real.png"), 16, 16, [1, 2, 3]);
    std::fs::copy(media.path().join("real.png"), &png_as_mp3).unwrap();
    let err = svc
        .ingest_asset(OWNER, AssetKind::Music, &png_as_mp3, "brand.music")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::Invalid(e) if e.names("brand.music")),
        "{err}"
    );

    let silent_video = media.path().join("clip.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:duration=1",
        "-f",
        "mp4",
        silent_video.to_str().unwrap(),
    ]);
    let err = svc
        .ingest_asset(OWNER, AssetKind::Music, &silent_video, "brand.music")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no audio"), "{err}");

    let empty = media.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let err = svc
        .ingest_asset(OWNER, AssetKind::Music, &empty, "brand.music")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    nothing_left(&stack).await;
}
