// Sign-in. Locally (`auth.mode` local) there is nothing to do: the server acts as the local
// tenant. `token` (`vidpipe serve` on a non-loopback address): the token it printed at start-up,
// typed in once per tab. Against the stack it is OIDC authorization code + PKCE with the issuer's discovery
// document; the access token lives in sessionStorage (gone with the tab, never in localStorage)
// and is sent as a Bearer header and as the WebSocket subprotocol `bearer.<token>`.
import type { AuthConfig } from "./config";

const TOKEN_KEY = "vidpipe.token";
const PKCE_KEY = "vidpipe.pkce";

interface StoredToken {
  access_token: string;
  expires_at: number;
}

interface Discovery {
  authorization_endpoint: string;
  token_endpoint: string;
  end_session_endpoint?: string;
}

export class AuthError extends Error {}

let current: AuthConfig = { mode: "local" };

export function token(): string | null {
  if (current.mode === "local") return null;
  const raw = sessionStorage.getItem(TOKEN_KEY);
  if (!raw) return null;
  try {
    const t = JSON.parse(raw) as StoredToken;
    // A minute's margin so a request does not leave with a token that expires on the way.
    if (t.expires_at - 60_000 > Date.now()) return t.access_token;
  } catch {
    /* a damaged entry is the same as none */
  }
  sessionStorage.removeItem(TOKEN_KEY);
  return null;
}

async function discover(issuer: string): Promise<Discovery> {
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  const res = await fetch(url);
  if (!res.ok) throw new AuthError(`The sign-in provider's discovery document answered ${res.status}.`);
  const d = (await res.json()) as Partial<Discovery>;
  if (!d.authorization_endpoint || !d.token_endpoint) {
    throw new AuthError("The sign-in provider's discovery document names no authorization or token endpoint.");
  }
  return d as Discovery;
}

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(bytes: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

export async function pkceChallenge(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

function redirectUri(): string {
  return `${location.origin}${location.pathname}`;
}

/** Sends the browser to the issuer; the page comes back with `?code=&state=`. */
export async function signIn(cfg: Extract<AuthConfig, { mode: "oidc" }>): Promise<never> {
  const d = await discover(cfg.issuer);
  const verifier = randomString(48);
  const state = randomString(16);
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, hash: location.hash }));
  const q = new URLSearchParams({
    response_type: "code",
    client_id: cfg.client_id,
    redirect_uri: redirectUri(),
    scope: cfg.scope ?? "openid profile email",
    state,
    code_challenge: await pkceChallenge(verifier),
    code_challenge_method: "S256",
  });
  if (cfg.audience) q.set("audience", cfg.audience);
  location.assign(`${d.authorization_endpoint}?${q}`);
  // The page is leaving; nothing after this runs.
  return new Promise<never>(() => {});
}

/** Keeps a token typed in by hand (`token` mode); it lasts as long as the tab. */
export function setToken(value: string): void {
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ access_token: value, expires_at: Date.now() + 30 * 86_400_000 }));
}

/** Finishes a sign-in if the URL carries a code, then makes sure a token is at hand. */
export async function initAuth(cfg: AuthConfig): Promise<void> {
  current = cfg;
  if (cfg.mode === "local" || cfg.mode === "token") return;
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const err = params.get("error");
  if (err) throw new AuthError(`Sign-in refused: ${params.get("error_description") ?? err}`);
  if (code) {
    const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) ?? "null") as
      | { verifier: string; state: string; hash: string }
      | null;
    sessionStorage.removeItem(PKCE_KEY);
    if (!saved || saved.state !== params.get("state")) {
      throw new AuthError("Sign-in answer does not match the request (state); try again.");
    }
    const d = await discover(cfg.issuer);
    const res = await fetch(d.token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: redirectUri(),
        client_id: cfg.client_id,
        code_verifier: saved.verifier,
      }),
    });
    if (!res.ok) throw new AuthError(`The token endpoint answered ${res.status}.`);
    const t = (await res.json()) as { access_token?: string; expires_in?: number };
    if (!t.access_token) throw new AuthError("The token endpoint gave no access token.");
    sessionStorage.setItem(
      TOKEN_KEY,
      JSON.stringify({ access_token: t.access_token, expires_at: Date.now() + (t.expires_in ?? 3600) * 1000 }),
    );
    // Drop the code from the address bar so a reload does not spend it twice.
    history.replaceState(null, "", `${location.pathname}${saved.hash}`);
  }
  if (!token()) await signIn(cfg);
}

/** A 401 means the token is gone or refused: sign in again (oidc) or report it (local). */
export async function onUnauthorized(): Promise<void> {
  sessionStorage.removeItem(TOKEN_KEY);
  if (current.mode === "oidc") await signIn(current);
  // A refused typed-in token: start again from the token form (unless it is the form asking).
  if (current.mode === "token" && !document.getElementById("f-token")) location.reload();
}

export function authMode(): AuthConfig["mode"] {
  return current.mode;
}
