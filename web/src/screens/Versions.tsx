// Versions of a finished generation: "Make another version" posts edits (aspect, transition,
// captions) to the recompose route, and the list of compositions shows each version, its parent,
// its status and, once rendered, a player and its downloads. Nothing is planned or generated
// again: the server lays the same clips out anew.
import { useEffect, useState } from "preact/hooks";
import { api, apiUrl, ApiProblem, type FieldError, type Schemas } from "../api";
import { bytes, seconds, when } from "../format";
import { described, ErrorBox, Field, StatusChip } from "../ui";

type CompositionView = Schemas["CompositionView"];
type RecomposeEdits = Schemas["RecomposeEdits"];

const ASPECTS = ["16:9", "9:16", "1:1", "4:5"];
const TRANSITIONS = [
  "cut", "fade", "fadeblack", "fadewhite", "dissolve", "wipeleft", "wiperight", "wipeup", "wipedown",
  "slideleft", "slideright", "slideup", "slidedown", "circleopen", "circleclose", "radial",
  "smoothleft", "smoothright", "pixelize", "zoomin",
];

/** The edits a version was made with, for people: `9:16, cut, no captions`. */
function describe(edits: unknown): string {
  if (!edits || typeof edits !== "object") return "the original";
  const e = edits as RecomposeEdits;
  const parts: string[] = [];
  if (e.aspect_ratio) parts.push(e.aspect_ratio);
  if (e.resolution) parts.push(e.resolution);
  if (e.transition) parts.push(e.transition);
  if (e.captions === true) parts.push("captions");
  if (e.captions === false) parts.push("no captions");
  if (e.order) parts.push(`order ${e.order.join(",")}`);
  if (e.music_asset_id) parts.push("new music");
  if (e.logo_asset_id) parts.push("new logo");
  return parts.join(", ") || "unchanged";
}

export function Versions({ id, aspect, transition, captions }: { id: string; aspect: string; transition: string; captions: boolean }) {
  const [versions, setVersions] = useState<CompositionView[] | null>(null);
  const [open, setOpen] = useState(false);
  const [newAspect, setNewAspect] = useState(aspect);
  const [newTransition, setNewTransition] = useState(transition);
  const [newCaptions, setNewCaptions] = useState(captions ? "on" : "off");
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function load() {
    try {
      setVersions((await api.listCompositions(id)).items);
    } catch (e) {
      setError(e instanceof ApiProblem ? e.message : String(e));
    }
  }

  useEffect(() => {
    void load();
  }, [id]);

  // Poll while a version renders; a finished one stays as it is.
  const rendering = (versions ?? []).some((v) => v.status === "rendering");
  useEffect(() => {
    if (!rendering) return;
    const t = window.setInterval(() => void load(), 2000);
    return () => window.clearInterval(t);
  }, [rendering, id]);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setErrors([]);
    setError(null);
    // Only what changed is sent: absent keeps the parent's choice.
    const edits: RecomposeEdits = {};
    if (newAspect !== aspect) edits.aspect_ratio = newAspect;
    if (newTransition !== transition) edits.transition = newTransition;
    if ((newCaptions === "on") !== captions) edits.captions = newCaptions === "on";
    try {
      await api.recompose(id, edits);
      setOpen(false);
      await load();
    } catch (err) {
      if (err instanceof ApiProblem) {
        setErrors(err.fieldErrors);
        setError(err.fieldErrors.length ? `${err.problem.title ?? "The edits were refused"}.` : err.message);
      } else setError(String(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="versions" aria-labelledby="versions-title">
      <header class="row">
        <h2 id="versions-title">Versions</h2>
        <button type="button" id="make-version" aria-expanded={open} aria-controls="version-form" onClick={() => setOpen(!open)}>
          Make another version
        </button>
      </header>
      <ErrorBox error={error} />
      {open && (
        <form id="version-form" class="version-form" onSubmit={submit} noValidate aria-label="Edits for a new version">
          <p class="hint">The same clips, laid out again: nothing is generated twice.</p>
          <div class="grid">
            <Field path="aspect_ratio" label="Aspect ratio" errors={errors}>
              <select {...described(errors, "aspect_ratio")} value={newAspect} onChange={(e) => setNewAspect(e.currentTarget.value)}>
                {ASPECTS.map((a) => (
                  <option value={a} key={a}>{a}</option>
                ))}
              </select>
            </Field>
            <Field path="transition" label="Transition" errors={errors}>
              <select {...described(errors, "transition")} value={newTransition} onChange={(e) => setNewTransition(e.currentTarget.value)}>
                {TRANSITIONS.map((t) => (
                  <option value={t} key={t}>{t}</option>
                ))}
              </select>
            </Field>
            <Field path="captions" label="Captions" errors={errors}>
              <select {...described(errors, "captions")} value={newCaptions} onChange={(e) => setNewCaptions(e.currentTarget.value)}>
                <option value="on">on</option>
                <option value="off">off</option>
              </select>
            </Field>
          </div>
          <div class="actions">
            <button type="submit" id="recompose-submit" class="primary" disabled={busy}>
              {busy ? "Starting…" : "Render this version"}
            </button>
          </div>
        </form>
      )}
      {versions == null ? (
        <p aria-busy="true">Loading versions…</p>
      ) : (
        <ol id="versions-list" class="version-list">
          {versions.map((v, i) => {
            const dl = v.downloads;
            const shape = (v.edits as RecomposeEdits | undefined)?.aspect_ratio;
            return (
              <li key={v.composition_id} data-composition={v.composition_id} data-status={v.status}>
                <div class="row">
                  <strong>Version {i + 1}</strong> <StatusChip status={v.status} />
                  <span>{describe(v.edits)}</span>
                  {v.parent_composition_id && <small>from version {versions.findIndex((p) => p.composition_id === v.parent_composition_id) + 1}</small>}
                  <small>{when(v.created_at)}</small>
                </div>
                {v.error && <p class="error-box">{v.error.message}</p>}
                {dl && i > 0 && (
                  <div class="player-wrap version-player" style={shape ? { aspectRatio: shape.replace(":", " / ") } : undefined}>
                    <video class="version-video" controls playsInline preload="metadata" src={apiUrl(dl.video.url)} poster={apiUrl(dl.thumbnail.url)} />
                  </div>
                )}
                {dl && (
                  <p class="downloads">
                    <a class="version-download" href={apiUrl(dl.video.url)} download>
                      Video (MP4{v.size_bytes != null ? `, ${bytes(v.size_bytes)}` : ""}
                      {v.duration_seconds != null ? `, ${seconds(v.duration_seconds)}` : ""})
                    </a>{" "}
                    <a href={apiUrl(dl.thumbnail.url)} download>
                      Thumbnail
                    </a>
                  </p>
                )}
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}
