// The typed client of the /v1 API. Types come from the API's OpenAPI document
// (`npm run gen:api` writes api.gen.ts); a problem+json answer becomes an ApiProblem whose
// field errors the forms show beside their fields.
import type { components } from "./api.gen";
import { onUnauthorized, token } from "./auth";

export type Schemas = components["schemas"];
export type JobView = Schemas["JobView"];
export type JobListView = Schemas["JobListView"];
export type GenerationRequestBody = Schemas["GenerationRequestBody"];
export type AssetUploadView = Schemas["AssetUploadView"];
export type AssetView = Schemas["AssetView"];
export type UploadView = Schemas["UploadView"];
export type ProcessingJobView = Schemas["ProcessingJobView"];
export type ProcessingJobListView = Schemas["ProcessingJobListView"];
export type DownloadView = Schemas["DownloadView"];
export type ProcessingDownloadView = Schemas["ProcessingDownloadView"];
export type Problem = Schemas["Problem"];
export type FieldError = Schemas["FieldError"];
export type JobStatus = Schemas["JobStatus"];

export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly problem: Partial<Problem>,
  ) {
    super(problem.detail ?? problem.title ?? `The API answered ${status}.`);
  }

  get fieldErrors(): FieldError[] {
    return this.problem.errors ?? [];
  }
}

let apiBase = "";

export function setApiBase(base: string): void {
  apiBase = base;
}

/** An API path (`/v1/...`) or an absolute URL (presigned) made absolute against the API. */
export function apiUrl(pathOrUrl: string): string {
  return /^[a-z]+:\/\//i.test(pathOrUrl) ? pathOrUrl : `${apiBase}${pathOrUrl}`;
}

export function authHeaders(): Record<string, string> {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

async function request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(apiUrl(path), {
      method,
      headers: {
        accept: "application/json, application/problem+json",
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...authHeaders(),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiProblem(0, { title: "Network error", detail: `The API could not be reached: ${String(e)}` });
  }
  if (res.status === 401) await onUnauthorized();
  const text = await res.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  if (!res.ok) {
    const p = (parsed && typeof parsed === "object" ? parsed : { detail: text.slice(0, 200) }) as Partial<Problem>;
    throw new ApiProblem(res.status, p);
  }
  return parsed as T;
}

export const api = {
  submitGeneration: (body: GenerationRequestBody, idempotencyKey: string) =>
    request<JobView>("POST", "/v1/generations", body, { "Idempotency-Key": idempotencyKey }),
  listGenerations: (limit: number, cursor?: string | null) =>
    request<JobListView>("GET", `/v1/generations?${new URLSearchParams({ limit: String(limit), ...(cursor ? { cursor } : {}) })}`),
  getGeneration: (id: string) => request<JobView>("GET", `/v1/generations/${encodeURIComponent(id)}`),
  cancelGeneration: (id: string) => request<JobView>("POST", `/v1/generations/${encodeURIComponent(id)}/cancel`),
  downloadGeneration: (id: string) => request<DownloadView>("GET", `/v1/generations/${encodeURIComponent(id)}/download`),
  recompose: (id: string, edits: Schemas["RecomposeEdits"]) =>
    request<Schemas["CompositionView"]>("POST", `/v1/generations/${encodeURIComponent(id)}/recompose`, edits),
  listCompositions: (id: string) =>
    request<Schemas["CompositionListView"]>("GET", `/v1/generations/${encodeURIComponent(id)}/compositions`),
  createAsset: (body: Schemas["CreateAssetBody"]) => request<AssetUploadView>("POST", "/v1/assets", body),
  getAsset: (id: string) => request<AssetView>("GET", `/v1/assets/${encodeURIComponent(id)}`),
  createUpload: (body: Schemas["CreateUploadBody"]) => request<UploadView>("POST", "/v1/uploads", body),
  completeUpload: (link: string) => request<UploadView>("POST", link),
  abortUpload: (link: string) => request<unknown>("DELETE", link),
  listProcessingJobs: (limit: number, cursor?: string | null) =>
    request<ProcessingJobListView>("GET", `/v1/processing-jobs?${new URLSearchParams({ limit: String(limit), ...(cursor ? { cursor } : {}) })}`),
  getProcessingJob: (id: string) => request<ProcessingJobView>("GET", `/v1/processing-jobs/${encodeURIComponent(id)}`),
  downloadProcessingJob: (id: string) =>
    request<ProcessingDownloadView>("GET", `/v1/processing-jobs/${encodeURIComponent(id)}/download`),
};

/** Headers a page may not set itself (the browser does); the rest of a signed set is sent as is. */
const FORBIDDEN = new Set(["content-length", "host", "connection", "expect"]);

export interface PutProgress {
  (sentBytes: number): void;
}

/**
 * PUTs bytes to a signed URL with exactly its headers, reporting progress (XMLHttpRequest, since
 * fetch has no upload progress). Relative URLs are taken against the API and carry the token.
 */
export function putSigned(
  url: string,
  headers: Record<string, string>,
  body: Blob,
  onProgress?: PutProgress,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", apiUrl(url));
    for (const [k, v] of Object.entries(headers)) {
      if (!FORBIDDEN.has(k.toLowerCase())) xhr.setRequestHeader(k, v);
    }
    if (!/^[a-z]+:\/\//i.test(url)) {
      for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    }
    xhr.upload.onprogress = (e) => onProgress?.(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress?.(body.size);
        resolve();
      } else {
        let p: Partial<Problem> = { detail: `The upload answered ${xhr.status}.` };
        try {
          p = JSON.parse(xhr.responseText) as Partial<Problem>;
        } catch {
          /* not a problem document: keep the status line */
        }
        reject(new ApiProblem(xhr.status, p));
      }
    };
    xhr.onerror = () => reject(new ApiProblem(0, { detail: "The upload's connection failed." }));
    xhr.onabort = () => reject(new ApiProblem(0, { detail: "The upload was stopped." }));
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(body);
  });
}

export function newIdempotencyKey(): string {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}
