// Watch: a generation's stages, a tile per clip and the progress bar, live over the socket. The
// first GET gives the state so far; the socket's events move it on. While the socket is down the
// page polls, so it never stalls.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiProblem, apiUrl, type JobView } from "../api";
import { seconds } from "../format";
import { live, type LiveEvent, type SocketState } from "../live";
import { go, href } from "../router";
import { ErrorBox, ProgressBar, StatusChip } from "../ui";

const STAGES = ["planning", "generating", "composing"] as const;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

interface Clip {
  index: number;
  status: string;
  provider: string;
  fallback: string | null;
  cache_hit: boolean;
  /** The done clip's picture: from the socket's clip event, or the job's GET. */
  thumbnail: string | null;
}

export function Watch({ id }: { id: string }) {
  const [job, setJob] = useState<JobView | null>(null);
  const [status, setStatus] = useState<string>("queued");
  const [percent, setPercent] = useState(0);
  const [clips, setClips] = useState<Clip[]>([]);
  const [log, setLog] = useState<LiveEvent[]>([]);
  const [failure, setFailure] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [socket, setSocket] = useState<SocketState>(live().state);
  const [now, setNow] = useState(Date.now());
  const [cancelling, setCancelling] = useState(false);
  const finishedAt = useRef<number | null>(null);
  const cancelAsked = useRef(false);

  function absorb(j: JobView) {
    setJob(j);
    setStatus(j.status);
    setPercent((p) => Math.max(p, j.progress_percent));
    setClips((prev) =>
      j.clips.map((c) => {
        const seen = prev.find((p) => p.index === c.index);
        return {
          index: c.index,
          status: c.status,
          provider: c.provider,
          fallback: c.fallback ?? seen?.fallback ?? null,
          cache_hit: c.cache_hit,
          thumbnail: c.thumbnail_url ?? (c.status === "done" ? (seen?.thumbnail ?? null) : null),
        };
      }),
    );
    if (j.error) setFailure(`${j.error.message} (${j.error.code})`);
    if (TERMINAL.has(j.status) && finishedAt.current == null) finishedAt.current = Date.parse(j.updated_at);
  }

  async function refresh() {
    try {
      absorb(await api.getGeneration(id));
    } catch (e) {
      setError(e instanceof ApiProblem ? e.message : String(e));
    }
  }

  useEffect(() => {
    void refresh();
    const off = live().subscribe(id, (e) => {
      setLog((l) => [...l.slice(-49), e]);
      switch (e.type) {
        case "stage":
          setStatus((s) => (TERMINAL.has(s) ? s : e.stage));
          break;
        case "progress":
          setPercent((p) => Math.max(p, e.percent));
          break;
        case "clip": {
          const picture = e.status === "done" ? (e.thumbnail?.url || null) : null;
          setClips((cs) => {
            const seen = cs.find((c) => c.index === e.index);
            const next = cs.filter((c) => c.index !== e.index);
            next.push({
              index: e.index,
              status: e.status,
              provider: e.provider,
              fallback: e.fallback,
              cache_hit: e.cache_hit,
              thumbnail: picture ?? (e.status === "done" ? (seen?.thumbnail ?? null) : null),
            });
            return next.sort((a, b) => a.index - b.index);
          });
          // A server whose events carry no picture link: the job's GET has it.
          if (e.status === "done" && !picture) void refresh();
          break;
        }
        case "completed":
          setPercent(100);
          setStatus("completed");
          finishedAt.current = Date.now();
          // Let the 100 % be seen before the result replaces it.
          setTimeout(() => go({ name: "result", id }), 600);
          break;
        case "failed":
          setFailure(`${e.reason} (${e.code})`);
          void refresh();
          break;
        case "error":
          setError(e.message);
          break;
      }
    });
    const offState = live().onState(setSocket);
    return () => {
      off();
      offState();
    };
  }, [id]);

  // Poll every 3 s while the socket is not open (every second after a cancel, which ends the job
  // on the runner's next check), and every 15 s even when it is, so a lost event cannot stall the
  // page; tick the clock while the job runs.
  useEffect(() => {
    if (TERMINAL.has(status)) return;
    const tick = window.setInterval(() => setNow(Date.now()), 1000);
    let n = 0;
    const poll = window.setInterval(() => {
      n++;
      const every = cancelAsked.current ? 1 : live().state !== "open" ? 3 : 15;
      if (n % every === 0) void refresh();
    }, 1000);
    return () => {
      window.clearInterval(tick);
      window.clearInterval(poll);
    };
  }, [status]);

  async function cancel() {
    setCancelling(true);
    cancelAsked.current = true;
    try {
      absorb(await api.cancelGeneration(id));
    } catch (e) {
      setError(e instanceof ApiProblem ? e.message : String(e));
      void refresh();
    } finally {
      setCancelling(false);
    }
  }

  const started = job ? Date.parse(job.created_at) : now;
  const end = finishedAt.current ?? now;
  const elapsed = (end - started) / 1000;
  const remaining = percent > 1 && percent < 100 ? (elapsed * (100 - percent)) / percent : null;
  const stageIndex = STAGES.indexOf(status as (typeof STAGES)[number]);
  const done = TERMINAL.has(status);

  return (
    <section class="watch" aria-labelledby="watch-title" data-job={id}>
      <header class="row">
        <h1 id="watch-title">Watching</h1>
        <StatusChip status={status} />
        <span class={`socket socket-${socket}`} title="Live updates">
          {socket === "open" ? "live" : socket === "connecting" ? "connecting…" : "polling"}
        </span>
      </header>
      {job && <p class="prompt-line">“{job.request.prompt}”</p>}
      <ErrorBox error={error} />
      {status === "cancelled" ? (
        <p class="note" role="status" id="cancelled">
          Cancelled. Nothing more will be generated for this job.
        </p>
      ) : (
        failure && (
          <div class="error-box" role="alert" id="failure">
            Failed: {failure}
          </div>
        )
      )}

      <ol class="stages" aria-label="Stages">
        {STAGES.map((s, i) => {
          const state = status === "completed" || (stageIndex >= 0 && i < stageIndex) ? "done" : i === stageIndex ? "current" : "waiting";
          return (
            <li key={s} class={`stage stage-${state}`} data-stage={s} data-state={state} aria-current={state === "current" ? "step" : undefined}>
              {s}
            </li>
          );
        })}
      </ol>

      <ProgressBar percent={percent} label="Job progress" />
      <p class="times">
        <span>Elapsed <strong id="elapsed">{seconds(elapsed)}</strong></span>
        <span>
          Estimated left <strong id="remaining">{done ? "–" : remaining == null ? "estimating…" : seconds(remaining)}</strong>
        </span>
      </p>

      <ul class="tiles" aria-label="Clips" style={job ? { "--tile-aspect": job.request.aspect_ratio.replace(":", " / ") } : undefined}>
        {clips.map((c) => (
          <li key={c.index} class={`tile tile-${c.status}`} data-clip={c.index} data-status={c.status}>
            {c.thumbnail ? (
              <img class="tile-picture" src={apiUrl(c.thumbnail)} alt={`Clip ${c.index + 1}, its middle frame`} decoding="async" />
            ) : (
              <div class="tile-picture tile-placeholder" aria-hidden="true" />
            )}
            <div class="tile-head">
              <strong>Clip {c.index + 1}</strong> <StatusChip status={c.status} />
            </div>
            <div>
              {c.provider}
              {c.cache_hit && <span class="badge">cached</span>}
            </div>
            {c.fallback && <small class="fallback">Fallback: {c.fallback}</small>}
          </li>
        ))}
      </ul>

      <div class="actions">
        {!done && (
          <button type="button" id="cancel" class="danger" onClick={cancel} disabled={cancelling}>
            {cancelling ? "Cancelling…" : "Cancel"}
          </button>
        )}
        {status === "completed" && <a href={href({ name: "result", id })}>See the result</a>}
        <a href={href({ name: "create" })}>New video</a>
      </div>

      <details class="activity">
        <summary>Live events ({log.length})</summary>
        <ol id="live-log">
          {log.map((e, i) => (
            <li key={i} data-type={e.type} data-percent={e.type === "progress" ? e.percent : undefined}>
              <code>{e.type}</code>{" "}
              {e.type === "stage" ? e.stage : e.type === "progress" ? `${e.percent.toFixed(1)} %` : e.type === "clip" ? `clip ${e.index + 1} ${e.status}` : e.type === "failed" ? e.reason : ""}
            </li>
          ))}
        </ol>
      </details>
    </section>
  );
}
