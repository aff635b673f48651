// Result: the finished video, its thumbnail, the downloads, the timeline (stages and clips) and
// what it cost.
import { useEffect, useState } from "preact/hooks";
import { api, apiUrl, ApiProblem, type DownloadView, type JobView } from "../api";
import { bytes, seconds, usd, when } from "../format";
import { href } from "../router";
import { ErrorBox, StatusChip } from "../ui";
import { Versions } from "./Versions";

export function Result({ id }: { id: string }) {
  const [job, setJob] = useState<JobView | null>(null);
  const [dl, setDl] = useState<DownloadView | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let gone = false;
    (async () => {
      try {
        const j = await api.getGeneration(id);
        if (gone) return;
        setJob(j);
        if (j.status === "completed") {
          const d = await api.downloadGeneration(id);
          if (!gone) setDl(d);
        }
      } catch (e) {
        if (!gone) setError(e instanceof ApiProblem ? e.message : String(e));
      }
    })();
    return () => {
      gone = true;
    };
  }, [id]);

  if (error) return <ErrorBox error={error} />;
  if (!job) return <p aria-busy="true">Loading…</p>;
  if (job.status !== "completed") {
    return (
      <section>
        <h1>Not finished</h1>
        <p>
          This job is <StatusChip status={job.status} />. <a href={href({ name: "watch", id })}>Watch it</a>.
        </p>
      </section>
    );
  }
  const total = job.outputs?.duration_seconds ?? job.request.duration_seconds;
  const per = job.clips.length ? total / job.clips.length : total;
  const stageSecs = job.stages.reduce((s, t) => s + (t.seconds ?? 0), 0);

  return (
    <section class="result" aria-labelledby="result-title" data-job={id}>
      <header class="row">
        <h1 id="result-title">Your video</h1>
        <StatusChip status={job.status} />
      </header>
      <p class="prompt-line">“{job.request.prompt}”</p>
      <div class="result-grid">
        <div class="player-wrap" style={{ aspectRatio: job.request.aspect_ratio.replace(":", " / ") }}>
          {dl && (
            <video id="player" controls playsInline preload="auto" src={apiUrl(dl.video.url)} poster={apiUrl(dl.thumbnail.url)}>
              <a href={apiUrl(dl.video.url)}>Download the video</a>
            </video>
          )}
        </div>
        <aside>
          <h2>Downloads</h2>
          {dl ? (
            <ul class="downloads">
              <li>
                <a id="download-final" href={apiUrl(dl.video.url)} download>
                  Video (MP4{dl.video.size_bytes != null ? `, ${bytes(dl.video.size_bytes)}` : ""})
                </a>
              </li>
              <li>
                <a id="download-thumbnail" href={apiUrl(dl.thumbnail.url)} download>
                  Thumbnail
                </a>
              </li>
            </ul>
          ) : (
            <p aria-busy="true">Signing links…</p>
          )}
          {dl && <img class="thumb" id="thumbnail" src={apiUrl(dl.thumbnail.url)} alt="Thumbnail of the video" />}
          <dl class="facts">
            <dt>Duration</dt>
            <dd>{seconds(total)}</dd>
            <dt>Shape</dt>
            <dd>
              {job.request.aspect_ratio}, {job.request.resolution}, {job.request.fps} fps
            </dd>
            <dt>Size</dt>
            <dd>{bytes(job.outputs?.size_bytes)}</dd>
            <dt>Planner</dt>
            <dd id="planner">
              {job.planner ?? "–"}
              {job.request.planner && <small class="chosen"> (chosen)</small>}
              {job.planner_fallback && <small class="fallback"> (fallback: {job.planner_fallback})</small>}
            </dd>
            <dt>Provider</dt>
            <dd id="provider">
              {job.request.provider ? (
                <>
                  {job.request.provider} <small class="chosen">(chosen)</small>
                </>
              ) : (
                [...new Set(job.clips.map((c) => c.provider))].join(", ") || "–"
              )}
            </dd>
            <dt>Made</dt>
            <dd>{when(job.created_at)}</dd>
          </dl>
        </aside>
      </div>

      <Versions id={id} aspect={job.request.aspect_ratio} transition={job.request.transition} captions={job.request.captions} />

      <h2>Timeline</h2>
      <ol class="timeline" aria-label="Clips on the timeline">
        {job.clips.map((c) => (
          <li key={c.index} style={{ flexGrow: 1 }} title={`${c.provider}${c.fallback ? ` (fallback: ${c.fallback})` : ""}`}>
            <strong>Clip {c.index + 1}</strong>
            <span>
              {seconds(c.index * per)}–{seconds((c.index + 1) * per)}
            </span>
            <small>
              {c.provider}
              {c.cache_hit ? ", cached" : ""}
            </small>
          </li>
        ))}
      </ol>
      <table class="stage-times">
        <caption>Stages ({seconds(stageSecs)} in all)</caption>
        <thead>
          <tr>
            <th scope="col">Stage</th>
            <th scope="col">Took</th>
          </tr>
        </thead>
        <tbody>
          {job.stages.map((s) => (
            <tr key={s.stage}>
              <td>{s.stage}</td>
              <td>{s.seconds != null ? `${s.seconds.toFixed(1)} s` : "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>

      {job.cost && (
        <table class="cost">
          <caption>
            Cost: <strong id="cost-total">{usd(job.cost.total_usd)}</strong> ({bytes(job.cost.bytes_moved)} moved)
          </caption>
          <thead>
            <tr>
              <th scope="col">Item</th>
              <th scope="col">USD</th>
              <th scope="col">Basis</th>
            </tr>
          </thead>
          <tbody>
            {job.cost.lines.map((l, i) => (
              <tr key={i}>
                <td>{l.item}</td>
                <td>{usd(l.usd)}</td>
                <td>{l.basis}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="actions">
        <a class="button" href={href({ name: "create" })}>
          Make another video
        </a>
      </div>
    </section>
  );
}
