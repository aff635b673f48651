// Where the API and the live socket are, and how to sign in: `GET /app-config.json`, served by
// `vidpipe serve` and by the stack's app function, so one build runs in both places.

export type AuthConfig =
  | { mode: "local" }
  | { mode: "oidc"; issuer: string; client_id: string; audience?: string; scope?: string };

export interface AppConfig {
  /** "" means the page's own origin. */
  api_base: string;
  /** Absolute ws(s):// URL, or "" / a path to derive from the page's origin. */
  websocket_url: string;
  auth: AuthConfig;
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
  const raw = (await res.json()) as Partial<AppConfig>;
  const auth = (raw.auth ?? { mode: "local" }) as AuthConfig;
  if (auth.mode !== "local" && auth.mode !== "oidc") {
    throw new ConfigError(`Unknown auth mode in the app's configuration.`);
  }
  return {
    api_base: (raw.api_base ?? "").replace(/\/+$/, ""),
    websocket_url: socketUrl(raw.websocket_url ?? ""),
    auth,
  };
}

/** The live socket's absolute URL: a relative or empty value is taken against the page. */
export function socketUrl(configured: string): string {
  if (/^wss?:\/\//i.test(configured)) return configured;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const path = configured === "" ? "/v1/live" : configured;
  return `${proto}//${location.host}${path.startsWith("/") ? path : `/${path}`}`;
}
