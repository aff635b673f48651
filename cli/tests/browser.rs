//! The web app in a real browser: Debian's Chromium driven over WebDriver (chromedriver) against
//! `vidpipe serve`, as a user would use it. Outputs are judged by measurement (ffprobe, decoded
//! pixels, loudness), the page by what it shows and what the API then holds. Screenshots of each
//! main screen land in `$CARGO_TARGET_DIR/browser-artifacts/` (default `target/`).
//!
//! The tests take turns (one browser and one server at a time: the machine is small), and every
//! wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use thirtyfour::prelude::*;
use vidpipe_tests::{ebur128, frame_at, probe, test_clip, write_logo, write_music};

/// One scenario at a time: each starts a server, a driver and a browser. (An async lock: each
/// test's runtime waits on it without blocking, and a failed test does not poison it.)
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A child process ended (and reaped) when dropped, so a failed assertion leaves nothing running.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `vidpipe serve` on a free loopback port, with its own home; or, with
/// `VIDPIPE_BROWSER_BASE_URL`, a server already running there (which must answer without
/// credentials and start empty).
struct Serve {
    _proc: Option<Proc>,
    url: String,
    _home: Option<tempfile::TempDir>,
}

impl Serve {
    fn start() -> Serve {
        if let Ok(url) = std::env::var("VIDPIPE_BROWSER_BASE_URL") {
            return Serve {
                _proc: None,
                url: url.trim_end_matches('/').to_owned(),
                _home: None,
            };
        }
        let home = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vidpipe"))
            .arg("--home")
            .arg(home.path())
            .args(["serve", "--port", "0", "--bind", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vidpipe serve");
        // Both pipes are drained for the server's whole life, so it never blocks on a full pipe;
        // the first http:// URL printed is where it listens.
        let (tx, rx) = mpsc::channel::<String>();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(i) = line.find("http://") {
                        let url: String = line[i..]
                            .chars()
                            .take_while(|c| !c.is_whitespace())
                            .collect();
                        break url.trim_end_matches('/').to_owned();
                    }
                    seen.push(line);
                }
                Err(_) => panic!("vidpipe serve printed no URL within 60 s: {seen:?}"),
            }
        };
        Serve {
            _proc: Some(proc),
            url,
            _home: Some(home),
        }
    }

    fn get_json(&self, path: &str) -> serde_json::Value {
        ureq::get(&format!("{}{path}", self.url))
            .timeout(Duration::from_secs(30))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_json()
            .unwrap()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a free port, and one headless Chromium session through it.
struct Browser {
    driver: Option<WebDriver>,
    _chromedriver: Proc,
}

impl Browser {
    async fn start(width: u32, height: u32) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "chromium and chromium-driver are missing: run scripts/setup.sh"
        );
        let port = free_port();
        let chromedriver = Proc(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        let status = format!("http://127.0.0.1:{port}/status");
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&status)
            .timeout(Duration::from_secs(2))
            .call()
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(CHROMIUM).unwrap();
        for arg in [
            "--headless=new",
            // Tests run as root in CI, where Chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required",
            "--mute-audio",
            &format!("--window-size={width},{height}"),
        ] {
            caps.add_arg(arg).unwrap();
        }
        let driver = WebDriver::new(format!("http://127.0.0.1:{port}"), caps)
            .await
            .expect("a Chromium session");
        driver
            .set_script_timeout(Duration::from_secs(30))
            .await
            .unwrap();
        let b = Browser {
            driver: Some(driver),
            _chromedriver: chromedriver,
        };
        b.viewport(width, height).await;
        b
    }

    fn d(&self) -> &WebDriver {
        self.driver.as_ref().unwrap()
    }

    /// Sizes the window so the page's viewport is exactly `width` x `height` CSS pixels.
    async fn viewport(&self, width: u32, height: u32) {
        for _ in 0..3 {
            let inner = self
                .js("return [window.innerWidth, window.innerHeight]")
                .await;
            let (iw, ih) = (inner[0].as_i64().unwrap(), inner[1].as_i64().unwrap());
            if (iw, ih) == (width as i64, height as i64) {
                return;
            }
            let r = self.d().get_window_rect().await.unwrap();
            let w = (r.width + width as i64 - iw).max(100) as u32;
            let h = (r.height + height as i64 - ih).max(100) as u32;
            self.d().set_window_rect(0, 0, w, h).await.unwrap();
        }
        let inner = self.js("return window.innerWidth").await;
        assert_eq!(inner, width as i64, "viewport width");
    }

    async fn js(&self, script: &str) -> serde_json::Value {
        self.d()
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
            .json()
            .clone()
    }

    async fn el(&self, css: &str) -> WebElement {
        self.d()
            .find(By::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    /// Sets an input's text as typing would.
    async fn type_into(&self, css: &str, text: &str) {
        let e = self.el(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Polls a script until it returns something other than null/false, or fails after `limit`.
    async fn until(&self, what: &str, limit: Duration, script: &str) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.js(script).await;
            if !(v.is_null() || v == false) {
                return v;
            }
            if Instant::now() > deadline {
                let shot = self.shot(&format!("timeout-{}", slug(what))).await;
                let text = self.js("return document.body.innerText").await;
                panic!(
                    "timed out after {limit:?} waiting for {what}; page: {text}; screenshot {}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    async fn shot(&self, name: &str) -> PathBuf {
        let dir = artifacts();
        let path = dir.join(format!("{name}.png"));
        self.d().screenshot(&path).await.unwrap();
        path
    }

    async fn quit(mut self) {
        if let Some(d) = self.driver.take() {
            let _ = d.quit().await;
        }
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Records every live event the Watch screen lists, across screen changes (the page is one
/// document), so a test sees them all even after the app moves on to the result.
const RECORD_LIVE: &str = r#"
window.__live = [];
new MutationObserver((ms) => {
  for (const m of ms) for (const n of m.addedNodes) {
    if (n.nodeType === 1 && n.matches('#live-log > li')) {
      window.__live.push({ type: n.dataset.type, percent: n.dataset.percent ? Number(n.dataset.percent) : null, text: n.textContent });
    }
  }
}).observe(document.body, { childList: true, subtree: true });
return true;
"#;

/// Records each clip tile's picture once it has loaded (index -> its natural size), across
/// screen changes, so the tiles are judged even after the app has moved on to the result.
const RECORD_TILES: &str = r#"
window.__tiles = {};
window.setInterval(() => {
  for (const img of document.querySelectorAll('.tiles li[data-clip] img.tile-picture')) {
    const li = img.closest('li');
    if (img.complete && img.naturalWidth > 0 && li.dataset.status === 'done') {
      window.__tiles[li.dataset.clip] = [img.naturalWidth, img.naturalHeight];
    }
  }
}, 100);
return true;
"#;

/// Picks `value` in a `<select>` as a user would, by its option.
async fn choose(b: &Browser, css: &str, value: &str) {
    b.el(&format!("{css} option[value=\"{value}\"]"))
        .await
        .click()
        .await
        .unwrap();
}

async fn open_create(b: &Browser, serve: &Serve) {
    b.d().goto(format!("{}/#/create", serve.url)).await.unwrap();
    b.until(
        "the Create form",
        Duration::from_secs(20),
        "return !!document.querySelector('form.create #submit')",
    )
    .await;
}

/// Fills the prompt and shape; other fields keep the form's defaults.
async fn fill_quick(b: &Browser, prompt: &str, duration: &str, clips: &str) {
    b.type_into("#f-prompt", prompt).await;
    b.type_into("#f-duration_seconds", duration).await;
    b.type_into("#f-clip_count", clips).await;
    // Captions off keeps these runs short; the caption path has its own tests.
    let captions = b.el("#f-captions-on").await;
    if captions.is_selected().await.unwrap() {
        captions.click().await.unwrap();
    }
}

/// Submits and returns the job id from the Watch screen's address.
async fn submit(b: &Browser) -> String {
    b.el("#submit").await.click().await.unwrap();
    let id = b
        .until(
            "the Watch screen",
            Duration::from_secs(30),
            "const m = location.hash.match(/^#\\/watch\\/(.+)$/); return m ? decodeURIComponent(m[1]) : null",
        )
        .await;
    id.as_str().unwrap().to_owned()
}

/// Checks that a `<video>` plays: with `buffered`, it must first reach readyState >= 3 on its own
/// (a `preload="auto"` player); then, played muted, its `currentTime` must advance.
async fn assert_player_plays(b: &Browser, css: &str, buffered: bool) {
    let ready = if buffered { 3 } else { 1 };
    b.until(
        &format!("{css} to reach readyState >= {ready}"),
        Duration::from_secs(60),
        &format!(
            "const v = document.querySelector('{css}'); return !!v && v.readyState >= {ready}"
        ),
    )
    .await;
    let t0 = b
        .js(&format!(
            "const v = document.querySelector('{css}'); v.muted = true; return v.play().then(() => v.currentTime)"
        ))
        .await
        .as_f64()
        .unwrap();
    b.until(
        &format!("{css} to have data while playing (readyState >= 3)"),
        Duration::from_secs(30),
        &format!("return document.querySelector('{css}').readyState >= 3"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (t1, err) = {
        let v = b
            .js(&format!(
                "const v = document.querySelector('{css}'); return [v.currentTime, v.error && v.error.message]"
            ))
            .await;
        (v[0].as_f64().unwrap(), v[1].clone())
    };
    assert!(
        t1 > t0 + 0.5,
        "{css}: currentTime {t0} -> {t1} in 1.5 s of play (error {err})"
    );
}

/// Downloads a URL to a file.
fn download(url: &str, to: &Path) {
    let resp = ureq::get(url)
        .timeout(Duration::from_secs(60))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let mut file = std::fs::File::create(to).unwrap();
    std::io::copy(&mut resp.into_reader(), &mut file).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_streams_stages_to_100_then_plays_and_downloads_an_mp4() {
    let _turn = TURN.lock().await;
    let serve = Serve::start();
    let b = Browser::start(1280, 900).await;
    open_create(&b, &serve).await;
    fill_quick(
        &b,
        "A paper boat drifts down a rainy street. It reaches a puddle.",
        "5",
        "2",
    )
    .await;
    // The provider and planner this server offers (`/app-config.json`), chosen by hand.
    let config = serve.get_json("/app-config.json");
    assert_eq!(config["providers"], serde_json::json!(["procedural"]));
    assert_eq!(config["planners"], serde_json::json!(["rules"]));
    choose(&b, "#f-provider", "procedural").await;
    choose(&b, "#f-planner", "rules").await;
    b.shot("01-create").await;
    b.js(RECORD_LIVE).await;
    b.js(RECORD_TILES).await;
    let id = submit(&b).await;
    b.until(
        "the first live event",
        Duration::from_secs(30),
        "return window.__live.length > 0",
    )
    .await;
    b.shot("02-watch").await;
    // Each done clip's tile shows its picture: a loaded JPEG 320 px wide, 16:9 like the clip.
    let tiles = b
        .until(
            "both clip tiles' pictures",
            Duration::from_secs(240),
            "return Object.keys(window.__tiles).length >= 2 && window.__tiles",
        )
        .await;
    if b.js("return location.hash.startsWith('#/watch/')").await == true {
        b.shot("02b-watch-tiles").await;
    }
    for clip in ["0", "1"] {
        assert_eq!(
            tiles[clip],
            serde_json::json!([320, 180]),
            "tile {clip}: {tiles}"
        );
    }
    b.until(
        "the Result screen",
        Duration::from_secs(240),
        "return location.hash.startsWith('#/result/') && !!document.querySelector('#player')",
    )
    .await;

    // The socket carried the stages in order and progress up to 100 %, never going back.
    let live = b.js("return window.__live").await;
    let live = live.as_array().unwrap();
    let stages: Vec<&str> = live
        .iter()
        .filter(|e| e["type"] == "stage")
        .map(|e| {
            e["text"]
                .as_str()
                .unwrap()
                .trim_start_matches("stage")
                .trim()
        })
        .collect();
    let order = ["planning", "generating", "composing"];
    let seen: Vec<&str> = order
        .iter()
        .copied()
        .filter(|s| stages.contains(s))
        .collect();
    assert!(
        seen.len() >= 2 && stages.contains(&"composing"),
        "stages over the socket: {stages:?}"
    );
    let mut positions: Vec<usize> = stages
        .iter()
        .filter_map(|s| order.iter().position(|o| o == s))
        .collect();
    let sorted = {
        let mut p = positions.clone();
        p.sort();
        p
    };
    positions.dedup();
    assert_eq!(positions, {
        let mut s = sorted;
        s.dedup();
        s
    });
    let percents: Vec<f64> = live.iter().filter_map(|e| e["percent"].as_f64()).collect();
    assert!(
        percents.len() >= 2,
        "progress events over the socket: {live:?}"
    );
    assert!(
        percents.windows(2).all(|w| w[1] >= w[0]),
        "progress must never go back: {percents:?}"
    );
    assert_eq!(percents.last().copied(), Some(100.0), "{percents:?}");
    assert!(
        live.iter().any(|e| e["type"] == "completed"),
        "completed over the socket: {live:?}"
    );

    assert_player_plays(&b, "#player", true).await;
    b.shot("03-result").await;

    // The download link fetches the job's MP4, which ffprobe accepts.
    let href = b
        .el("#download-final")
        .await
        .prop("href")
        .await
        .unwrap()
        .expect("download link");
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("final.mp4");
    download(&href, &mp4);
    let f = probe(&mp4);
    assert!(f.format.contains("mp4"), "format {}", f.format);
    assert_eq!(f.video_codec, "h264");
    assert_eq!((f.width, f.height), (1280, 720));
    assert!((f.duration - 5.0).abs() < 0.2, "duration {}", f.duration);
    let job = serve.get_json(&format!("/v1/generations/{id}"));
    assert_eq!(job["status"], "completed");
    // The choices went with the request, and the result shows them.
    assert_eq!(job["request"]["provider"], "procedural");
    assert_eq!(job["request"]["planner"], "rules");
    let shown = b
        .js("return [document.querySelector('#provider').textContent, document.querySelector('#planner').textContent]")
        .await;
    assert!(
        shown[0].as_str().unwrap().contains("procedural (chosen)")
            && shown[1].as_str().unwrap().contains("rules"),
        "{shown}"
    );
    assert_eq!(
        job["outputs"]["size_bytes"],
        std::fs::metadata(&mp4).unwrap().len()
    );

    // History lists it, newest first, with its chip.
    b.el("#nav-history").await.click().await.unwrap();
    b.until(
        "History's list",
        Duration::from_secs(20),
        &format!(
            "const li = document.querySelector('#history-list li'); return !!li && li.dataset.job === '{id}' && !!li.querySelector('[data-status=\"completed\"]')"
        ),
    )
    .await;
    b.shot("04-history").await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_duration_is_shown_beside_the_field_and_creates_no_job() {
    let _turn = TURN.lock().await;
    let serve = Serve::start();
    let b = Browser::start(1280, 900).await;
    open_create(&b, &serve).await;
    fill_quick(&b, "A short clip", "2", "").await;
    b.el("#submit").await.click().await.unwrap();
    let text = b
        .until(
            "the duration's error",
            Duration::from_secs(20),
            "const e = document.getElementById('err-duration_seconds'); return e && !e.hidden && e.textContent.trim()",
        )
        .await;
    assert!(
        !text.as_str().unwrap().is_empty(),
        "error text beside the duration"
    );
    // Beside the field: in the field's own block, just under its input, which is marked invalid
    // and names the error as its description; no other field shows one.
    let placement = b
        .js(r#"
            const input = document.getElementById('f-duration_seconds');
            const err = document.getElementById('err-duration_seconds');
            const a = input.getBoundingClientRect(), e = err.getBoundingClientRect();
            const others = [...document.querySelectorAll('.field-error')].filter(x => x !== err && !x.hidden && x.textContent.trim());
            return {
              same_field: err.closest('.field') === input.closest('.field'),
              below: e.top >= a.bottom - 1 && e.top - a.bottom < 60,
              overlaps_x: e.left < a.right && e.right > a.left,
              invalid: input.getAttribute('aria-invalid'),
              described: (input.getAttribute('aria-describedby') || '').split(' ').includes('err-duration_seconds'),
              others: others.length,
              hash: location.hash,
            };
        "#)
        .await;
    assert_eq!(placement["same_field"], true, "{placement}");
    assert_eq!(placement["below"], true, "{placement}");
    assert_eq!(placement["overlaps_x"], true, "{placement}");
    assert_eq!(placement["invalid"], "true", "{placement}");
    assert_eq!(placement["described"], true, "{placement}");
    assert_eq!(placement["others"], 0, "{placement}");
    assert_eq!(placement["hash"], "#/create", "stays on Create");
    b.shot("05-create-field-error").await;
    let list = serve.get_json("/v1/generations");
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "no job was created: {list}"
    );
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_logo_lands_in_the_corner_and_music_is_heard() {
    let _turn = TURN.lock().await;
    let serve = Serve::start();
    let media = tempfile::tempdir().unwrap();
    // Magenta: a colour the procedural provider's frames do not have in bulk.
    let logo = write_logo(&media.path().join("logo.png"), 200, 100, [255, 0, 255]);
    let music = write_music(&media.path().join("bed.mp3"), 4.0);
    let b = Browser::start(1280, 900).await;
    open_create(&b, &serve).await;
    fill_quick(&b, "Morning light over a harbour. Boats leave.", "5", "2").await;
    b.el("#asset-logo")
        .await
        .send_keys(logo.to_str().unwrap())
        .await
        .unwrap();
    b.el("#asset-music")
        .await
        .send_keys(music.to_str().unwrap())
        .await
        .unwrap();
    for kind in ["logo", "music"] {
        b.until(
            &format!("the {kind} upload"),
            Duration::from_secs(30),
            &format!(
                "return document.querySelector('[data-asset={kind}]').dataset.state === 'uploaded'"
            ),
        )
        .await;
    }
    // The preview shows the picked file.
    let preview = b
        .js("const i = document.querySelector('[data-asset=logo] img'); return i && i.complete && i.naturalWidth")
        .await;
    assert_eq!(preview, 200, "logo preview");
    b.type_into("#f-logo-opacity", "1").await;
    b.type_into("#f-logo-scale", "0.15").await;
    b.shot("06-create-brand").await;
    let id = submit(&b).await;
    b.until(
        "the Result screen",
        Duration::from_secs(240),
        "return location.hash.startsWith('#/result/') && !!document.querySelector('#download-final')",
    )
    .await;
    let href = b
        .el("#download-final")
        .await
        .prop("href")
        .await
        .unwrap()
        .unwrap();
    download(&href, &media.path().join("final.mp4"));
    let mp4 = media.path().join("final.mp4");
    let f = probe(&mp4);
    assert_eq!((f.width, f.height), (1280, 720));
    assert_eq!(f.audio_codec.as_deref(), Some("aac"), "music track");
    let r = ebur128(&mp4);
    assert!(
        r.integrated > -35.0,
        "the music is heard: {} LUFS",
        r.integrated
    );

    // The logo's magenta pixels: a logo-sized patch in the top-right quadrant, none elsewhere.
    let img = frame_at(&mp4, 2.5);
    let (w, h) = img.dimensions();
    let is_logo = |p: &image::Rgb<u8>| p[0] > 200 && p[1] < 70 && p[2] > 200;
    let (mut corner, mut elsewhere, mut sx, mut sy) = (0u64, 0u64, 0u64, 0u64);
    for (x, y, p) in img.enumerate_pixels() {
        if is_logo(p) {
            if x >= w / 2 && y < h / 2 {
                corner += 1;
                sx += x as u64;
                sy += y as u64;
            } else {
                elsewhere += 1;
            }
        }
    }
    let logo_w = (w as f64 * 0.15) as u64;
    let expected = logo_w * logo_w / 2;
    assert!(
        corner as f64 > 0.7 * expected as f64 && (corner as f64) < 1.3 * expected as f64,
        "logo pixels in the top-right quadrant: {corner}, expected about {expected}"
    );
    assert!(
        (elsewhere as f64) < 0.02 * expected as f64,
        "logo-coloured pixels outside the corner: {elsewhere}"
    );
    let (cx, cy) = (sx / corner, sy / corner);
    assert!(
        cx > (w as u64) * 3 / 4 && cy < (h as u64) / 4,
        "the logo's centre ({cx},{cy}) is in the top-right corner"
    );
    let job = serve.get_json(&format!("/v1/generations/{id}"));
    assert_eq!(job["status"], "completed");
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_tab_upload_gives_three_playable_renditions() {
    let _turn = TURN.lock().await;
    let serve = Serve::start();
    let media = tempfile::tempdir().unwrap();
    // Longer than the 3 s intro plus the 5 s outro that processing trims.
    let raw = test_clip(&media.path().join("raw take.mp4"), (640, 360), 30, 12.0);
    let b = Browser::start(1280, 900).await;
    b.d()
        .goto(format!("{}/#/process", serve.url))
        .await
        .unwrap();
    b.until(
        "the Process screen",
        Duration::from_secs(20),
        "return !!document.getElementById('process-file')",
    )
    .await;
    b.type_into("#f-project", "browser").await;
    b.shot("07-process").await;
    b.el("#process-file")
        .await
        .send_keys(raw.to_str().unwrap())
        .await
        .unwrap();
    let id = b
        .until(
            "the processing job's screen",
            Duration::from_secs(90),
            "const m = location.hash.match(/^#\\/process\\/(.+)$/); return m && decodeURIComponent(m[1])",
        )
        .await;
    let id = id.as_str().unwrap().to_owned();
    b.until(
        "three renditions with players",
        Duration::from_secs(240),
        "return document.querySelectorAll('li.rendition video').length === 3",
    )
    .await;
    let names = b
        .js("return [...document.querySelectorAll('li.rendition')].map(li => li.dataset.rendition).sort()")
        .await;
    assert_eq!(names, serde_json::json!(["reels", "tiktok", "youtube"]));
    for name in ["youtube", "reels", "tiktok"] {
        assert_player_plays(&b, &format!("li[data-rendition={name}] video"), false).await;
    }
    // Each tile names its probe facts, and they are the API's.
    let job = serve.get_json(&format!("/v1/processing-jobs/{id}"));
    assert_eq!(job["status"], "succeeded");
    let tile = b
        .js("return document.querySelector('li[data-rendition=youtube] .facts').textContent")
        .await;
    let youtube = job["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rendition"] == "youtube")
        .unwrap();
    let secs = format!("{:.2} s", youtube["duration_seconds"].as_f64().unwrap());
    assert!(
        tile.as_str().unwrap().contains(&secs),
        "tile {tile} names {secs}"
    );
    b.shot("08-process-renditions").await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_run_shows_cancelled() {
    let _turn = TURN.lock().await;
    let serve = Serve::start();
    let b = Browser::start(1280, 900).await;
    open_create(&b, &serve).await;
    // Long enough that it is still running when Cancel is pressed.
    fill_quick(
        &b,
        "A long walk through a forest. Leaves fall. A river appears. Night comes.",
        "120",
        "12",
    )
    .await;
    let id = submit(&b).await;
    b.el("#cancel").await.click().await.unwrap();
    b.until(
        "the cancelled chip",
        Duration::from_secs(60),
        "return !!document.querySelector('.watch header [data-status=cancelled]')",
    )
    .await;
    b.shot("09-watch-cancelled").await;
    let gone = b.js("return !document.getElementById('cancel')").await;
    assert_eq!(gone, true, "no Cancel button on an ended job");
    let job = serve.get_json(&format!("/v1/generations/{id}"));
    assert_eq!(job["status"], "cancelled", "{job}");
    b.quit().await;
}

/// Tabs through the page from its start and checks that every enabled control takes the focus
/// (a radio group counts once: arrows move inside it) and is then inside the viewport.
async fn assert_keyboard_reaches_everything(b: &Browser, screen: &str) {
    let total = b
        .js(r#"
            const sel = 'a[href], button, input, select, textarea, summary, [tabindex]:not([tabindex="-1"])';
            const els = [...document.querySelectorAll(sel)].filter(e => !e.disabled && e.getClientRects().length > 0 && !e.closest('[hidden]'));
            const keys = new Set();
            els.forEach((e, i) => {
              const key = e.type === 'radio' ? 'radio:' + e.name : 'k' + i;
              e.dataset.kbd = key;
              keys.add(key);
            });
            document.activeElement && document.activeElement.blur();
            window.__kbd = { want: [...keys], got: new Set(), outside: [] };
            return keys.size;
        "#)
        .await
        .as_u64()
        .unwrap();
    assert!(total > 3, "{screen}: controls found: {total}");
    for _ in 0..(total + 15) {
        b.d()
            .action_chain()
            .send_keys(Key::Tab)
            .perform()
            .await
            .unwrap();
        b.js(r#"
            const a = document.activeElement;
            if (a && a.dataset.kbd) {
              window.__kbd.got.add(a.dataset.kbd);
              const r = a.getBoundingClientRect();
              const box = a.closest('.visually-hidden') || a.classList.contains('visually-hidden') ? a.parentElement.getBoundingClientRect() : r;
              if (box.left < -1 || box.right > window.innerWidth + 1) window.__kbd.outside.push(a.outerHTML.slice(0, 80));
            }
            return null;
        "#)
        .await;
    }
    let report = b
        .js("const k = window.__kbd; return { missed: k.want.filter(x => !k.got.has(x)).map(x => document.querySelector(`[data-kbd=\"${x}\"]`).outerHTML.slice(0, 100)), outside: k.outside }")
        .await;
    assert_eq!(
        report["missed"],
        serde_json::json!([]),
        "{screen}: controls the keyboard never reached"
    );
    assert_eq!(
        report["outside"],
        serde_json::json!([]),
        "{screen}: focused controls outside the viewport"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_viewport_has_no_horizontal_scroll_and_every_control_is_keyboard_reachable() {
    let _turn = TURN.lock().await;
    let serve = Serve::start();
    let b = Browser::start(390, 844).await;
    for (screen, ready) in [
        ("create", "#submit"),
        ("history", ".pager"),
        ("process", "#process-file"),
    ] {
        b.d()
            .goto(format!("{}/#/{screen}", serve.url))
            .await
            .unwrap();
        b.until(
            screen,
            Duration::from_secs(20),
            &format!("return !!document.querySelector('{ready}')"),
        )
        .await;
        let widths = b
            .js("return [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]")
            .await;
        let (doc, body, inner) = (
            widths[0].as_i64().unwrap(),
            widths[1].as_i64().unwrap(),
            widths[2].as_i64().unwrap(),
        );
        assert_eq!(inner, 390);
        assert!(
            doc <= inner && body <= inner,
            "{screen}: content {doc}/{body} px wide in a {inner} px viewport"
        );
        // Nothing sticks out either (overflow-x hidden on the page would hide it).
        let wide = b
            .js("return [...document.querySelectorAll('main *')].filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.right > window.innerWidth + 1 || r.left < -1) && !e.closest('.visually-hidden, .timeline, .activity ol'); }).map(e => e.outerHTML.slice(0, 80))")
            .await;
        assert_eq!(
            wide,
            serde_json::json!([]),
            "{screen}: elements past the edge"
        );
        b.shot(&format!("10-phone-{screen}")).await;
        assert_keyboard_reaches_everything(&b, screen).await;
    }
    b.quit().await;
}

/// A finished generation made over the API (the Create form has its own test): one short clip.
fn generate_quickly(serve: &Serve, prompt: &str) -> String {
    let job: serde_json::Value = ureq::post(&format!("{}/v1/generations", serve.url))
        .timeout(Duration::from_secs(30))
        .send_json(serde_json::json!({
            "prompt": prompt, "duration_seconds": 5, "aspect_ratio": "16:9",
            "resolution": "720p", "clip_count": 1, "captions": false, "transition": "cut"
        }))
        .expect("submit")
        .into_json()
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let status = serve.get_json(&format!("/v1/generations/{id}"))["status"].clone();
        if status == "completed" {
            return id;
        }
        assert!(
            status != "failed" && Instant::now() < deadline,
            "generation {id}: {status}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_version_at_9_16_renders_and_plays() {
    let _turn = TURN.lock().await;
    let serve = Serve::start();
    let id = generate_quickly(&serve, "A red kite over green hills. The wind picks up.");
    let b = Browser::start(1280, 900).await;
    b.d()
        .goto(format!("{}/#/result/{id}", serve.url))
        .await
        .unwrap();
    b.until(
        "the first version listed",
        Duration::from_secs(30),
        "return document.querySelectorAll('#versions-list > li').length === 1",
    )
    .await;
    b.el("#make-version").await.click().await.unwrap();
    choose(&b, "#f-aspect_ratio", "9:16").await;
    b.shot("11-version-form").await;
    b.el("#recompose-submit").await.click().await.unwrap();
    let second = "#versions-list > li:nth-child(2)";
    b.until(
        "the 9:16 version to render",
        Duration::from_secs(120),
        &format!(
            "const li = document.querySelector('{second}'); return !!li && li.dataset.status === 'completed' && !!li.querySelector('video')"
        ),
    )
    .await;
    let video = format!("{second} video");
    assert_player_plays(&b, &video, false).await;
    let size = b
        .js(&format!(
            "const v = document.querySelector('{video}'); return [v.videoWidth, v.videoHeight]"
        ))
        .await;
    assert_eq!(
        size,
        serde_json::json!([720, 1280]),
        "the new version's frame"
    );
    b.shot("12-versions").await;

    // Its download is that version's MP4: 9:16, as long as the first.
    let href = b
        .el(&format!("{second} a.version-download"))
        .await
        .prop("href")
        .await
        .unwrap()
        .expect("download link");
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("version.mp4");
    download(&href, &mp4);
    let f = probe(&mp4);
    assert_eq!((f.width, f.height), (720, 1280));
    assert!((f.duration - 5.0).abs() < 0.2, "duration {}", f.duration);
    let versions = serve.get_json(&format!("/v1/generations/{id}/compositions"));
    let items = versions["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1]["parent_composition_id"],
        items[0]["composition_id"]
    );
    assert_eq!(items[1]["edits"]["aspect_ratio"], "9:16");
    b.quit().await;
}
