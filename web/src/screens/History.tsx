// History: the tenant's generations, newest first, a page at a time (the API's cursors; a stack of
// them lets the page go back).
import { useEffect, useState } from "preact/hooks";
import { api, ApiProblem, type JobView } from "../api";
import { seconds, when } from "../format";
import { href } from "../router";
import { ErrorBox, StatusChip } from "../ui";

const PAGE = 10;
const RUNNING = new Set(["queued", "planning", "generating", "composing"]);

export function History() {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [items, setItems] = useState<JobView[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const cursor = cursors[cursors.length - 1] ?? null;

  useEffect(() => {
    let gone = false;
    setItems(null);
    api
      .listGenerations(PAGE, cursor)
      .then((p) => {
        if (gone) return;
        setItems(p.items);
        setNext(p.next_cursor ?? null);
      })
      .catch((e) => !gone && setError(e instanceof ApiProblem ? e.message : String(e)));
    return () => {
      gone = true;
    };
  }, [cursor]);

  return (
    <section aria-labelledby="history-title">
      <h1 id="history-title">History</h1>
      <ErrorBox error={error} />
      {items == null ? (
        <p aria-busy="true">Loading…</p>
      ) : items.length === 0 ? (
        <p>
          No videos yet. <a href={href({ name: "create" })}>Make the first one</a>.
        </p>
      ) : (
        <ul class="history" id="history-list">
          {items.map((j) => (
            <li key={j.id} data-job={j.id}>
              <a href={href({ name: j.status === "completed" ? "result" : "watch", id: j.id })}>
                <span class="history-prompt">{j.request.prompt}</span>
              </a>
              <StatusChip status={j.status} />
              <small>
                {when(j.created_at)} · {seconds(j.request.duration_seconds)} · {j.request.aspect_ratio}
                {RUNNING.has(j.status) ? ` · ${j.progress_percent.toFixed(0)} %` : ""}
              </small>
            </li>
          ))}
        </ul>
      )}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Newer
        </button>
        <span>Page {cursors.length}</span>
        <button type="button" disabled={!next} onClick={() => next && setCursors((c) => [...c, next])}>
          Older
        </button>
      </nav>
    </section>
  );
}
