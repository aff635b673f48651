// Create: the prompt and every choice of a generation, sent as the API's request body. Rules are
// the API's: the form sends what was typed and shows each problem+json field error beside its
// field, so the page and the API never disagree about what is valid.
import { useState } from "preact/hooks";
import { api, ApiProblem, newIdempotencyKey, type FieldError, type GenerationRequestBody } from "../api";
import { appConfig } from "../config";
import { go } from "../router";
import { described, ErrorBox, errorsFor, Field } from "../ui";
import { AssetUpload } from "./AssetUpload";

const ASPECTS = [
  { value: "16:9", w: 16, h: 9, use: "YouTube, web" },
  { value: "9:16", w: 9, h: 16, use: "Reels, TikTok, Shorts" },
  { value: "1:1", w: 1, h: 1, use: "Feed posts" },
  { value: "4:5", w: 4, h: 5, use: "Portrait feed" },
] as const;

const TRANSITIONS = [
  "cut", "fade", "fadeblack", "fadewhite", "dissolve", "wipeleft", "wiperight", "wipeup", "wipedown",
  "slideleft", "slideright", "slideup", "slidedown", "circleopen", "circleclose", "radial",
  "smoothleft", "smoothright", "pixelize", "zoomin",
];

const PROMPT_MAX = 2000;

/** A number input's text as the API should see it: empty is absent, anything else is sent as typed. */
function num(s: string): number | undefined {
  if (s.trim() === "") return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : (s as unknown as number);
}

export function Create() {
  const [prompt, setPrompt] = useState("");
  const [duration, setDuration] = useState("10");
  const [clips, setClips] = useState("");
  const [aspect, setAspect] = useState<(typeof ASPECTS)[number]["value"]>("16:9");
  const [resolution, setResolution] = useState("720p");
  const [fps, setFps] = useState("30");
  const [transition, setTransition] = useState("fade");
  const [transitionSecs, setTransitionSecs] = useState("");
  const [captions, setCaptions] = useState(true);
  const [captionStyle, setCaptionStyle] = useState("boxed");
  const [captionPos, setCaptionPos] = useState("bottom");
  const [captionSize, setCaptionSize] = useState("medium");
  const [narrate, setNarrate] = useState(false);
  const [narrator, setNarrator] = useState("");
  const [voice, setVoice] = useState("");
  const [seed, setSeed] = useState("");
  const [provider, setProvider] = useState("");
  const [planner, setPlanner] = useState("");
  const [logo, setLogo] = useState<string | null>(null);
  const [logoPos, setLogoPos] = useState("top-right");
  const [logoOpacity, setLogoOpacity] = useState("0.9");
  const [logoScale, setLogoScale] = useState("0.12");
  const [music, setMusic] = useState<string | null>(null);
  const [musicVolume, setMusicVolume] = useState("0.8");
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [summary, setSummary] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // One key per filled-in form: a double click or a retry after a lost answer makes one job.
  const [idemKey, setIdemKey] = useState(newIdempotencyKey);

  function body(): GenerationRequestBody {
    const b: Record<string, unknown> = {
      prompt,
      duration_seconds: num(duration),
      aspect_ratio: aspect,
      resolution,
      fps: num(fps),
      transition,
      captions: captions ? { style: captionStyle, position: captionPos, size: captionSize } : false,
    };
    const c = num(clips);
    if (c !== undefined) b.clip_count = c;
    const td = num(transitionSecs);
    if (td !== undefined) b.transition_duration_seconds = td;
    const s = num(seed);
    if (s !== undefined) b.seed = s;
    if (provider) b.provider = provider;
    if (planner) b.planner = planner;
    if (narrate) b.narration = { enabled: true, ...(narrator ? { provider: narrator } : {}), ...(voice ? { voice } : {}) };
    if (logo || music) {
      b.brand = {
        ...(logo ? { logo: { asset_id: logo, position: logoPos, opacity: num(logoOpacity), scale: num(logoScale) } } : {}),
        ...(music ? { music: { asset_id: music, volume: num(musicVolume) } } : {}),
      };
    }
    return b as unknown as GenerationRequestBody;
  }

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setErrors([]);
    setSummary(null);
    try {
      const job = await api.submitGeneration(body(), idemKey);
      setIdemKey(newIdempotencyKey());
      go({ name: "watch", id: job.id });
    } catch (err) {
      if (err instanceof ApiProblem) {
        setErrors(err.fieldErrors);
        const known = ["prompt", "duration_seconds", "clip_count", "aspect_ratio", "resolution", "fps", "transition",
          "transition_duration_seconds", "captions", "narration", "seed", "brand", "provider", "planner"];
        const placed = err.fieldErrors.filter((fe) => known.some((k) => errorsFor([fe], k).length));
        const rest = err.fieldErrors.length - placed.length;
        setSummary(
          err.fieldErrors.length
            ? `${err.problem.title ?? "The request was refused"}: ${err.fieldErrors.length} field${err.fieldErrors.length > 1 ? "s" : ""} to fix${rest ? ` (${err.fieldErrors.filter((fe) => !placed.includes(fe)).map((fe) => `${fe.field}: ${fe.rule}`).join("; ")})` : ""}.`
            : err.message,
        );
        // Take the keyboard to the first field in trouble.
        const first = err.fieldErrors[0];
        if (first) setTimeout(() => document.querySelector<HTMLElement>(`[aria-invalid="true"]`)?.focus(), 0);
      } else setSummary(String(err));
    } finally {
      setBusy(false);
    }
  }

  const offered = { providers: appConfig()?.providers ?? [], planners: appConfig()?.planners ?? [] };
  const brandErr = (k: "logo" | "music") => errorsFor(errors, `brand.${k}`).map((fe) => `${fe.field}: ${fe.rule}`);

  return (
    <form class="create" onSubmit={submit} noValidate aria-labelledby="create-title">
      <h1 id="create-title">New video</h1>
      <ErrorBox error={summary} />

      <Field path="prompt" label="Prompt" errors={errors} hint={<span id="prompt-count">{prompt.length} / {PROMPT_MAX} characters</span>}>
        <textarea
          {...described(errors, "prompt")}
          rows={4}
          value={prompt}
          maxLength={PROMPT_MAX * 2}
          placeholder="A calm ocean at sunrise. Waves roll in. Gulls circle overhead."
          onInput={(e) => setPrompt(e.currentTarget.value)}
          class={prompt.length > PROMPT_MAX ? "over" : ""}
        />
      </Field>

      <div class="grid">
        <Field path="duration_seconds" label="Duration (seconds)" errors={errors} hint="5 to 300">
          <input {...described(errors, "duration_seconds")} type="number" inputMode="numeric" step={1} value={duration} onInput={(e) => setDuration(e.currentTarget.value)} />
        </Field>
        <Field path="clip_count" label="Clips" errors={errors} hint="1 to 20; empty lets the planner choose">
          <input {...described(errors, "clip_count")} type="number" inputMode="numeric" step={1} value={clips} onInput={(e) => setClips(e.currentTarget.value)} />
        </Field>
        <Field path="resolution" label="Resolution" errors={errors}>
          <select {...described(errors, "resolution")} value={resolution} onChange={(e) => setResolution(e.currentTarget.value)}>
            <option value="720p">720p</option>
            <option value="1080p">1080p</option>
          </select>
        </Field>
        <Field path="fps" label="Frame rate" errors={errors}>
          <select {...described(errors, "fps")} value={fps} onChange={(e) => setFps(e.currentTarget.value)}>
            <option value="24">24 fps</option>
            <option value="25">25 fps</option>
            <option value="30">30 fps</option>
          </select>
        </Field>
      </div>

      <fieldset class={`aspects ${errorsFor(errors, "aspect_ratio").length ? "has-error" : ""}`} aria-describedby="err-aspect_ratio">
        <legend>Aspect ratio</legend>
        <div class="aspect-options">
          {ASPECTS.map((a) => (
            <label class={`aspect ${aspect === a.value ? "checked" : ""}`} key={a.value}>
              <input type="radio" name="aspect" value={a.value} checked={aspect === a.value} onChange={() => setAspect(a.value)} />
              <span class="frame" aria-hidden="true" style={{ aspectRatio: `${a.w} / ${a.h}`, [a.w >= a.h ? "width" : "height"]: "56px" }} />
              <span class="aspect-name">{a.value}</span>
              <small>{a.use}</small>
            </label>
          ))}
        </div>
        <p class="field-error" id="err-aspect_ratio" hidden={!errorsFor(errors, "aspect_ratio").length}>
          {errorsFor(errors, "aspect_ratio").map((e) => e.rule).join("; ")}
        </p>
      </fieldset>

      <div class="grid">
        <Field path="transition" label="Transition" errors={errors}>
          <select {...described(errors, "transition")} value={transition} onChange={(e) => setTransition(e.currentTarget.value)}>
            {TRANSITIONS.map((t) => (
              <option value={t} key={t}>{t}</option>
            ))}
          </select>
        </Field>
        <Field path="transition_duration_seconds" label="Transition length (s)" errors={errors} hint="0 to 2; empty is the default">
          <input {...described(errors, "transition_duration_seconds")} type="number" step={0.1} value={transitionSecs} onInput={(e) => setTransitionSecs(e.currentTarget.value)} />
        </Field>
        <Field path="seed" label="Seed" errors={errors} hint="Same seed, same plan">
          <input {...described(errors, "seed")} type="number" step={1} value={seed} onInput={(e) => setSeed(e.currentTarget.value)} />
        </Field>
      </div>

      {(offered.providers.length > 0 || offered.planners.length > 0) && (
        <div class="grid">
          {offered.providers.length > 0 && (
            <Field path="provider" label="Clip provider" errors={errors} hint={offered.providers.length > 1 ? "Leads the chain; the others stay its fallbacks" : "The only one configured"}>
              <select {...described(errors, "provider")} value={provider} onChange={(e) => setProvider(e.currentTarget.value)}>
                <option value="">the deployment's chain ({offered.providers.join(" → ")})</option>
                {offered.providers.map((p) => (
                  <option value={p} key={p}>{p}</option>
                ))}
              </select>
            </Field>
          )}
          {offered.planners.length > 0 && (
            <Field path="planner" label="Planner" errors={errors} hint={offered.planners.length > 1 ? "rules needs no model" : "The only one configured"}>
              <select {...described(errors, "planner")} value={planner} onChange={(e) => setPlanner(e.currentTarget.value)}>
                <option value="">the deployment's ({offered.planners[0]})</option>
                {offered.planners.map((p) => (
                  <option value={p} key={p}>{p}</option>
                ))}
              </select>
            </Field>
          )}
        </div>
      )}

      <fieldset>
        <legend>Captions and narration</legend>
        <div class="grid">
          <div class="field check">
            <input id="f-captions-on" type="checkbox" checked={captions} onChange={(e) => setCaptions(e.currentTarget.checked)} />
            <label for="f-captions-on">Captions</label>
          </div>
          <Field path="captions" label="Caption style" errors={errors}>
            <select {...described(errors, "captions")} disabled={!captions} value={captionStyle} onChange={(e) => setCaptionStyle(e.currentTarget.value)}>
              <option value="boxed">boxed</option>
              <option value="bold-outline">bold outline</option>
              <option value="karaoke">karaoke</option>
            </select>
          </Field>
          <div class="field">
            <label for="f-caption-position">Caption position</label>
            <select id="f-caption-position" disabled={!captions} value={captionPos} onChange={(e) => setCaptionPos(e.currentTarget.value)}>
              <option value="bottom">bottom</option>
              <option value="center">center</option>
              <option value="top">top</option>
            </select>
          </div>
          <div class="field">
            <label for="f-caption-size">Caption size</label>
            <select id="f-caption-size" disabled={!captions} value={captionSize} onChange={(e) => setCaptionSize(e.currentTarget.value)}>
              <option value="small">small</option>
              <option value="medium">medium</option>
              <option value="large">large</option>
            </select>
          </div>
          <div class="field check">
            <input id="f-narrate" type="checkbox" checked={narrate} onChange={(e) => setNarrate(e.currentTarget.checked)} />
            <label for="f-narrate">Narration</label>
          </div>
          <Field path="narration" label="Narrator" errors={errors}>
            <select {...described(errors, "narration")} disabled={!narrate} value={narrator} onChange={(e) => setNarrator(e.currentTarget.value)}>
              <option value="">the deployment's</option>
              <option value="espeak">espeak (offline)</option>
              <option value="polly">Amazon Polly</option>
              <option value="openai">OpenAI</option>
            </select>
          </Field>
          <div class="field">
            <label for="f-voice">Voice</label>
            <input id="f-voice" type="text" disabled={!narrate} value={voice} placeholder="picked for the language" onInput={(e) => setVoice(e.currentTarget.value)} />
          </div>
        </div>
      </fieldset>

      <fieldset>
        <legend>Brand</legend>
        <div class="grid brand">
          <div>
            <AssetUpload kind="logo" label="Logo" requestErrors={brandErr("logo")} onChange={setLogo} />
            <div class="grid tight">
              <div class="field">
                <label for="f-logo-position">Logo corner</label>
                <select id="f-logo-position" disabled={!logo} value={logoPos} onChange={(e) => setLogoPos(e.currentTarget.value)}>
                  <option value="top-left">top left</option>
                  <option value="top-right">top right</option>
                  <option value="bottom-left">bottom left</option>
                  <option value="bottom-right">bottom right</option>
                </select>
              </div>
              <div class="field">
                <label for="f-logo-opacity">Opacity</label>
                <input id="f-logo-opacity" type="number" min={0} max={1} step={0.05} disabled={!logo} value={logoOpacity} onInput={(e) => setLogoOpacity(e.currentTarget.value)} />
              </div>
              <div class="field">
                <label for="f-logo-scale">Scale</label>
                <input id="f-logo-scale" type="number" min={0.02} max={0.5} step={0.01} disabled={!logo} value={logoScale} onInput={(e) => setLogoScale(e.currentTarget.value)} />
              </div>
            </div>
          </div>
          <div>
            <AssetUpload kind="music" label="Music" requestErrors={brandErr("music")} onChange={setMusic} />
            <div class="field">
              <label for="f-music-volume">Music volume</label>
              <input id="f-music-volume" type="number" min={0} max={1} step={0.05} disabled={!music} value={musicVolume} onInput={(e) => setMusicVolume(e.currentTarget.value)} />
            </div>
          </div>
        </div>
      </fieldset>

      <div class="actions">
        <button type="submit" id="submit" class="primary" disabled={busy}>
          {busy ? "Starting…" : "Generate video"}
        </button>
      </div>
    </form>
  );
}
