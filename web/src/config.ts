// Where the API and the live socket are, and how to sign in: `GET /app-config.json`, served by
// `vidpipe serve` and by the stack's app function, so one build runs in both places.

export type AuthConfig =
  | { mode: "local" }
  // `vidpipe serve` on a non-loopback address: the token it printed at start-up, typed in once.
  | { mode: "token" }
  | { mode: "oidc"; issuer: string; client_id: string; audience?: string; scope?: string };

export interface AppConfig {
  /** "" means the page's own origin. */
  api_base: string;
  /** Absolute ws(s):// URL; null where the deployment has no socket (the app then polls). */
  websocket_url: string | null;
  auth: AuthConfig;
  /** Clip providers a request may choose to lead the chain, in chain order (may be empty). */
  providers: string[];
  /** Planners a request may choose: the configured one, and `rules` beneath an LLM one. */
  planners: string[];
}

let loaded: AppConfig | null = null;

/** The configuration `loadConfig` read (the app renders only after it did). */
export function appConfig(): AppConfig | null {
  return loaded;
}

export class ConfigError extends Error {}

export async function loadConfig(): Promise<AppConfig> {
  let res: Response;
  try {
    res = await fetch("/app-config.json", { cache: "no-store" });
  } catch (e) {
    throw new ConfigError(`The app's configuration could not be fetched: ${String(e)}`);
  }
  if (!res.ok) throw new ConfigError(`The app's configuration answered ${res.status}.`);
  const raw = (await res.json()) as Partial<Omit<AppConfig, "websocket_url">> & { websocket_url?: string | null };
  const auth = (raw.auth ?? { mode: "local" }) as AuthConfig;
  if (auth.mode !== "local" && auth.mode !== "token" && auth.mode !== "oidc") {
    throw new ConfigError(`Unknown auth mode in the app's configuration.`);
  }
  const names = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
  loaded = {
    api_base: (raw.api_base ?? "").replace(/\/+$/, ""),
    websocket_url: raw.websocket_url == null ? null : socketUrl(raw.websocket_url),
    auth,
    providers: names(raw.providers),
    planners: names(raw.planners),
  };
  return loaded;
}

/** The live socket's absolute URL: a relative or empty value is taken against the page. */
export function socketUrl(configured: string): string {
  if (/^wss?:\/\//i.test(configured)) return configured;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const path = configured === "" ? "/v1/live" : configured;
  return `${proto}//${location.host}${path.startsWith("/") ? path : `/${path}`}`;
}
