// A raw video's upload through `/v1/uploads`: one signed PUT up to 100 MiB, signed parts above.
// Parts are sent three at a time, each retried, and the parts already sent are remembered in
// sessionStorage (with the signed URLs, valid for hours), so dropping the same file again after a
// failure or a reload sends only what is missing.
import { api, ApiProblem, putSigned, type ProcessingJobView, type UploadView } from "./api";

const PARALLEL = 3;
const TRIES = 3;

interface Saved {
  view: UploadView;
  done: number[];
}

function fileKey(project: string, f: File): string {
  return `vidpipe.upload:${project}:${f.name}:${f.size}:${f.lastModified}`;
}

function load(key: string): Saved | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(key) ?? "null") as Saved | null;
    if (s && s.view.status === "pending" && s.view.expires_at && Date.parse(s.view.expires_at) - 10 * 60_000 > Date.now()) return s;
  } catch {
    /* unreadable: start over */
  }
  sessionStorage.removeItem(key);
  return null;
}

export function videoType(f: File): string {
  if (f.type.startsWith("video/")) return f.type;
  const ext = f.name.split(".").pop()?.toLowerCase() ?? "";
  return (
    ({ mp4: "video/mp4", m4v: "video/x-m4v", mov: "video/quicktime", mkv: "video/x-matroska", webm: "video/webm", avi: "video/x-msvideo", mpg: "video/mpeg", mpeg: "video/mpeg", ts: "video/mp2t", mts: "video/mp2t" } as Record<string, string>)[ext] ??
    "video/mp4"
  );
}

export interface UploadProgress {
  sent: number;
  total: number;
  parts: number;
  partsDone: number;
  resumed: boolean;
}

async function withRetries(f: () => Promise<void>, signal?: AbortSignal): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      return await f();
    } catch (e) {
      // A refusal (4xx) will not change on a retry; a dropped connection or 5xx may.
      const retryable = !(e instanceof ApiProblem) || e.status === 0 || e.status >= 500;
      if (i >= TRIES || !retryable || signal?.aborted) throw e;
      await new Promise((r) => setTimeout(r, 500 * i));
    }
  }
}

export async function uploadVideo(
  file: File,
  project: string,
  onProgress: (p: UploadProgress) => void,
  signal?: AbortSignal,
): Promise<UploadView> {
  const key = fileKey(project, file);
  let saved = load(key);
  const resumed = saved != null;
  if (!saved) {
    const view = await api.createUpload({ project, filename: file.name, size_bytes: file.size, content_type: videoType(file) });
    saved = { view, done: [] };
    sessionStorage.setItem(key, JSON.stringify(saved));
  }
  const view = saved.view;
  const progress: UploadProgress = { sent: 0, total: file.size, parts: 1, partsDone: 0, resumed };

  if (view.mode === "single" && view.upload) {
    const u = view.upload;
    await withRetries(() => putSigned(u.url, u.headers, file, (n) => onProgress({ ...progress, sent: n })), signal);
    progress.partsDone = 1;
  } else {
    const parts = view.parts ?? [];
    const partSize = view.part_size ?? 0;
    const inFlight = new Map<number, number>();
    const done = new Set(saved.done);
    progress.parts = parts.length;
    const doneBytes = () => parts.filter((p) => done.has(p.part_number)).reduce((s, p) => s + p.size_bytes, 0);
    const report = () => {
      let flying = 0;
      for (const v of inFlight.values()) flying += v;
      onProgress({ ...progress, sent: doneBytes() + flying, partsDone: done.size });
    };
    report();
    const queue = parts.filter((p) => !done.has(p.part_number));
    const worker = async () => {
      for (let p = queue.shift(); p; p = queue.shift()) {
        const part = p;
        const start = (part.part_number - 1) * partSize;
        const blob = file.slice(start, start + part.size_bytes);
        await withRetries(
          () =>
            putSigned(part.url, part.headers, blob, (n) => {
              inFlight.set(part.part_number, n);
              report();
            }, signal),
          signal,
        );
        inFlight.delete(part.part_number);
        done.add(part.part_number);
        saved.done = [...done];
        sessionStorage.setItem(key, JSON.stringify(saved));
        report();
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, queue.length) }, worker));
  }
  const completed = await api.completeUpload(view.links.complete);
  sessionStorage.removeItem(key);
  return completed;
}

/** The processing job the upload started: the newest one for its key, not older than the upload. */
export async function findProcessingJob(sourceKey: string, since: number, signal?: AbortSignal): Promise<ProcessingJobView> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && !signal?.aborted) {
    const page = await api.listProcessingJobs(20);
    const hit = page.items.find((j) => j.source_key === sourceKey && Date.parse(j.created_at) >= since - 5_000);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error("No processing job has started for this upload yet; look for it in the list below.");
}
