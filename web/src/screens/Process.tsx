// Process: drop a raw video, watch its upload and processing steps, then play and download each
// rendition with the facts ffprobe measured.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, apiUrl, ApiProblem, type ProcessingDownloadView, type ProcessingJobView } from "../api";
import { bitrate, bytes, seconds, when } from "../format";
import { live, type LiveEvent } from "../live";
import { go, href } from "../router";
import { ErrorBox, ProgressBar, StatusChip } from "../ui";
import { findProcessingJob, uploadVideo, type UploadProgress } from "../upload";

const STEPS = ["probe", "trim", "watermark", "renditions", "thumbnail", "publish"] as const;

export function Process({ id }: { id?: string }) {
  return id ? <ProcessJob id={id} /> : <ProcessUpload />;
}

function ProcessUpload() {
  const [project, setProject] = useState("web");
  const [file, setFile] = useState<File | null>(null);
  const [drag, setDrag] = useState(false);
  const [prog, setProg] = useState<UploadProgress | null>(null);
  const [phase, setPhase] = useState<"idle" | "uploading" | "finding" | "error">("idle");
  const [error, setError] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);

  async function start(f: File) {
    setFile(f);
    setError(null);
    setPhase("uploading");
    const since = Date.now();
    abort.current = new AbortController();
    try {
      const done = await uploadVideo(f, project, setProg, abort.current.signal);
      setPhase("finding");
      const job = await findProcessingJob(done.key, since, abort.current.signal);
      go({ name: "process", id: job.id });
    } catch (e) {
      setPhase("error");
      if (e instanceof ApiProblem && e.fieldErrors.length) setError(e.fieldErrors.map((fe) => `${fe.field}: ${fe.rule}`).join("; "));
      else setError(e instanceof Error ? e.message : String(e));
    }
  }

  useEffect(() => () => abort.current?.abort(), []);

  const pct = prog && prog.total ? (prog.sent / prog.total) * 100 : 0;
  return (
    <section class="process" aria-labelledby="process-title">
      <h1 id="process-title">Process a raw video</h1>
      <p>Trimmed, watermarked and rendered for YouTube, Reels and TikTok.</p>
      <div class="field">
        <label for="f-project">Project</label>
        <input id="f-project" type="text" value={project} pattern="[a-z0-9][a-z0-9_-]{0,63}" onInput={(e) => setProject(e.currentTarget.value)} />
        <small class="hint">Lowercase letters, digits, - and _.</small>
      </div>
      <label
        class={`dropzone ${drag ? "drag" : ""}`}
        for="process-file"
        onDragOver={(e) => {
          e.preventDefault();
          setDrag(true);
        }}
        onDragLeave={() => setDrag(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDrag(false);
          const f = e.dataTransfer?.files[0];
          if (f && phase !== "uploading") void start(f);
        }}
      >
        <span>{file ? file.name : "Drop a video here, or choose one"}</span>
        <input
          id="process-file"
          class="visually-hidden"
          type="file"
          accept="video/*,.mov,.mkv,.mts,.ts"
          disabled={phase === "uploading" || phase === "finding"}
          onChange={(e) => {
            const f = (e.currentTarget as HTMLInputElement).files?.[0];
            if (f) void start(f);
          }}
        />
      </label>
      {prog && (
        <div class="upload-progress" data-phase={phase}>
          <ProgressBar percent={pct} label="Upload progress" />
          <small>
            {bytes(prog.sent)} of {bytes(prog.total)}
            {prog.parts > 1 && ` · part ${prog.partsDone} of ${prog.parts}`}
            {prog.resumed && " · resumed"}
            {phase === "finding" && " · uploaded, waiting for processing to start…"}
          </small>
        </div>
      )}
      <ErrorBox error={error} />
      {phase === "error" && file && (
        <button type="button" onClick={() => void start(file)}>
          Resume upload
        </button>
      )}
      <RecentProcessing />
    </section>
  );
}

function RecentProcessing() {
  const [items, setItems] = useState<ProcessingJobView[] | null>(null);
  useEffect(() => {
    api.listProcessingJobs(10).then((p) => setItems(p.items), () => setItems([]));
  }, []);
  if (!items?.length) return null;
  return (
    <>
      <h2>Recent</h2>
      <ul class="history">
        {items.map((j) => (
          <li key={j.id}>
            <a href={href({ name: "process", id: j.id })}>{j.source_key.split("/").pop()}</a> <StatusChip status={j.status} />
            <small>{when(j.created_at)}</small>
          </li>
        ))}
      </ul>
    </>
  );
}

function ProcessJob({ id }: { id: string }) {
  const [job, setJob] = useState<ProcessingJobView | null>(null);
  const [dl, setDl] = useState<ProcessingDownloadView | null>(null);
  const [step, setStep] = useState<string | null>(null);
  const [percent, setPercent] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [failure, setFailure] = useState<string | null>(null);

  async function refresh() {
    try {
      const j = await api.getProcessingJob(id);
      setJob(j);
      if (j.error) setFailure(`${j.error.reason} (${j.error.error})`);
      if (j.status === "succeeded") {
        setPercent(100);
        setDl(await api.downloadProcessingJob(id));
      }
    } catch (e) {
      setError(e instanceof ApiProblem ? e.message : String(e));
    }
  }

  useEffect(() => {
    void refresh();
    const off = live().subscribe(id, (e: LiveEvent) => {
      if (e.type === "stage") setStep(e.stage);
      else if (e.type === "progress") setPercent((p) => Math.max(p, e.percent));
      else if (e.type === "completed" || e.type === "failed") void refresh();
      else if (e.type === "error") setError(e.message);
    });
    // While running and the socket is down, poll.
    const poll = window.setInterval(() => {
      if (live().state !== "open") void refresh();
    }, 3000);
    return () => {
      off();
      window.clearInterval(poll);
    };
  }, [id]);

  if (!job) return error ? <ErrorBox error={error} /> : <p aria-busy="true">Loading…</p>;
  const status = job.status;
  const current = status === "succeeded" ? STEPS.length : step ? STEPS.indexOf(step as (typeof STEPS)[number]) : -1;
  const urlOf = (name: string) => dl?.outputs.find((o) => o.name === name)?.url;
  const thumb = urlOf("thumbnail");

  return (
    <section class="process-job" aria-labelledby="pj-title" data-job={id}>
      <header class="row">
        <h1 id="pj-title">{job.source_key.split("/").pop()}</h1>
        <StatusChip status={status} />
      </header>
      <ErrorBox error={error} />
      {failure && (
        <div class="error-box" role="alert" id="failure">
          Failed: {failure}
        </div>
      )}
      <ol class="stages" aria-label="Steps">
        {STEPS.map((s, i) => {
          const state = i < current ? "done" : i === current ? "current" : "waiting";
          return (
            <li key={s} class={`stage stage-${state}`} data-stage={s} data-state={state}>
              {s}
            </li>
          );
        })}
      </ol>
      <ProgressBar percent={percent} label="Processing progress" />
      {job.source_duration_seconds != null && (
        <p>
          Source: {job.source_width}×{job.source_height}, {seconds(job.source_duration_seconds)}
          {job.route && `, ${job.route.replace("_", " ")}`}
        </p>
      )}
      {thumb && <img class="thumb" src={apiUrl(thumb)} alt="Thumbnail" id="thumbnail" />}
      <ul class="renditions" aria-label="Renditions">
        {job.renditions.map((r) => {
          const url = urlOf(r.rendition);
          return (
            <li key={r.rendition} class="rendition" data-rendition={r.rendition}>
              <h2>{r.rendition}</h2>
              {url && <video controls playsInline preload="metadata" src={apiUrl(url)} aria-label={`${r.rendition} rendition`} style={{ aspectRatio: `${r.width} / ${r.height}` }} />}
              <dl class="facts">
                <dt>Size</dt>
                <dd>{bytes(r.size_bytes)}</dd>
                <dt>Bitrate</dt>
                <dd>{bitrate(r.video_bitrate)}</dd>
                <dt>Duration</dt>
                <dd>{r.duration_seconds.toFixed(2)} s</dd>
                <dt>Frame</dt>
                <dd>
                  {r.width}×{r.height} {r.video_codec}
                  {r.audio_codec ? ` + ${r.audio_codec}` : ""}
                </dd>
              </dl>
              {url && (
                <a href={apiUrl(url)} download class="download">
                  Download {r.rendition}
                </a>
              )}
            </li>
          );
        })}
      </ul>
      {job.steps.length > 0 && (
        <table>
          <caption>Step times</caption>
          <tbody>
            {job.steps.map((s, i) => (
              <tr key={i}>
                <td>
                  {s.step}
                  {s.segment != null ? ` #${s.segment}` : ""}
                </td>
                <td>{s.seconds.toFixed(1)} s</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <a href={href({ name: "process" })}>Process another</a>
    </section>
  );
}
