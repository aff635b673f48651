// The live-progress socket (`/v1/live` locally, the WebSocket API in the stack): one connection
// per page, subscriptions by job id, repeats dropped by `seq`, and a reconnect with backoff
// that subscribes again (the server then sends the catch-up sequence).
import { authMode, token } from "./auth";

export type JobKind = "generation" | "processing";

interface Base {
  job_id: string;
  kind: JobKind;
  seq?: number;
}
export type LiveEvent =
  | (Base & { type: "stage"; stage: string; at?: string })
  | (Base & {
      type: "clip";
      index: number;
      status: "pending" | "generating" | "done" | "failed";
      provider: string;
      fallback: string | null;
      cache_hit: boolean;
      /** A done clip's picture, when it has one. */
      thumbnail?: { name: string; url: string };
    })
  | (Base & { type: "progress"; percent: number })
  | (Base & { type: "completed"; downloads: { name: string; url: string }[] })
  | (Base & { type: "failed"; reason: string; code: string })
  | (Base & { type: "subscribed" })
  | { type: "error"; message: string; job_id: string | null; seq?: number };

type Listener = (e: LiveEvent) => void;
export type SocketState = "connecting" | "open" | "closed";

export class LiveSocket {
  private ws: WebSocket | null = null;
  private listeners = new Map<string, Set<Listener>>();
  /** Last seq seen per job in the current connection (seq counts per subscription). */
  private lastSeq = new Map<string, number>();
  private stateListeners = new Set<(s: SocketState) => void>();
  private retry = 0;
  private timer: number | undefined;
  state: SocketState = "closed";

  /** `url` null: the deployment has no socket; the screens poll instead. */
  constructor(private readonly url: string | null) {}

  private setState(s: SocketState) {
    this.state = s;
    for (const l of this.stateListeners) l(s);
  }

  onState(l: (s: SocketState) => void): () => void {
    this.stateListeners.add(l);
    return () => this.stateListeners.delete(l);
  }

  private connect() {
    if (this.ws || this.listeners.size === 0 || this.url == null) return;
    const t = token();
    this.setState("connecting");
    // `vidpipe serve` takes its start-up token as ?token=; the stack's OIDC token goes as the
    // subprotocol `bearer.<token>` (a browser cannot set headers on a socket).
    let ws: WebSocket;
    if (!t) ws = new WebSocket(this.url);
    else if (authMode() === "token") {
      const u = new URL(this.url);
      u.searchParams.set("token", t);
      ws = new WebSocket(u.toString());
    } else ws = new WebSocket(this.url, [`bearer.${t}`]);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 0;
      this.lastSeq.clear();
      this.setState("open");
      for (const id of this.listeners.keys()) this.send({ action: "subscribe", job_id: id });
    };
    ws.onmessage = (m) => {
      if (typeof m.data !== "string") return;
      let e: LiveEvent;
      try {
        e = JSON.parse(m.data) as LiveEvent;
      } catch {
        return;
      }
      const id = e.job_id;
      if (!id) return;
      if (typeof e.seq === "number") {
        const last = this.lastSeq.get(id);
        if (last !== undefined && e.seq <= last) return;
        this.lastSeq.set(id, e.seq);
      }
      for (const l of this.listeners.get(id) ?? []) l(e);
    };
    ws.onclose = () => {
      this.ws = null;
      this.setState("closed");
      if (this.listeners.size === 0) return;
      // 0.5 s, 1 s, 2 s ... up to 10 s between tries.
      const delay = Math.min(10_000, 500 * 2 ** this.retry++);
      this.timer = window.setTimeout(() => this.connect(), delay);
    };
  }

  private send(msg: { action: "subscribe" | "unsubscribe"; job_id: string }) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** Listens to one job's events; the returned function stops listening. */
  subscribe(jobId: string, l: Listener): () => void {
    let set = this.listeners.get(jobId);
    if (!set) {
      set = new Set();
      this.listeners.set(jobId, set);
      this.send({ action: "subscribe", job_id: jobId });
    }
    set.add(l);
    this.connect();
    return () => {
      const s = this.listeners.get(jobId);
      if (!s) return;
      s.delete(l);
      if (s.size === 0) {
        this.listeners.delete(jobId);
        this.lastSeq.delete(jobId);
        this.send({ action: "unsubscribe", job_id: jobId });
      }
      if (this.listeners.size === 0) {
        window.clearTimeout(this.timer);
        this.ws?.close();
      }
    };
  }
}

let shared: LiveSocket | null = null;

export function initLive(url: string | null): void {
  shared = new LiveSocket(url);
}

export function live(): LiveSocket {
  if (!shared) throw new Error("live socket used before initLive");
  return shared;
}
