// Entry: read /app-config.json, sign in if the deployment asks for it, then render the app.
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiProblem, setApiBase } from "./api";
import { authMode, initAuth, setToken, token } from "./auth";
import { loadConfig } from "./config";
import { initLive } from "./live";
import { href, useRoute, type Route } from "./router";
import { Create } from "./screens/Create";
import { History } from "./screens/History";
import { Process } from "./screens/Process";
import { Result } from "./screens/Result";
import { Watch } from "./screens/Watch";
import "./styles.css";

const NAV: { label: string; route: Route; match: Route["name"][] }[] = [
  { label: "Create", route: { name: "create" }, match: ["create", "watch", "result"] },
  { label: "History", route: { name: "history" }, match: ["history"] },
  { label: "Process", route: { name: "process" }, match: ["process"] },
];

function App() {
  const route = useRoute();
  const main = useRef<HTMLElement>(null);
  // A new screen takes the focus, so keyboard and screen-reader users land on it.
  useEffect(() => {
    main.current?.focus({ preventScroll: false });
  }, [route.name]);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); main.current?.focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href({ name: "create" })}>
          vidpipe
        </a>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.label}>
                <a href={href(n.route)} id={`nav-${n.route.name}`} aria-current={n.match.includes(route.name) ? "page" : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">{authMode() === "local" ? "local" : "signed in"}</span>
      </header>
      <main id="main" ref={main} tabIndex={-1} data-screen={route.name}>
        {route.name === "create" && <Create />}
        {route.name === "watch" && <Watch id={route.id} key={route.id} />}
        {route.name === "result" && <Result id={route.id} key={route.id} />}
        {route.name === "history" && <History />}
        {route.name === "process" && <Process id={route.id} key={route.id ?? "new"} />}
      </main>
    </>
  );
}

/** `token` mode: asks once for the token `vidpipe serve` printed, and checks it with the API. */
function TokenForm({ onDone }: { onDone: () => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  async function submit(e: Event) {
    e.preventDefault();
    setToken(value.trim());
    try {
      await api.listGenerations(1);
      onDone();
    } catch (err) {
      setError(err instanceof ApiProblem && err.status === 401 ? "That token was refused." : String(err));
    }
  }
  return (
    <main id="main">
      <form class="token" onSubmit={submit} aria-labelledby="token-title">
        <h1 id="token-title">Sign in</h1>
        <div class="field">
          <label for="f-token">Token</label>
          <input id="f-token" type="password" autoComplete="off" value={value} onInput={(e) => setValue(e.currentTarget.value)} aria-describedby="err-token" />
          <small class="hint">The token <code>vidpipe serve</code> printed when it started.</small>
          <p class="field-error" id="err-token" role={error ? "alert" : undefined} hidden={!error}>
            {error}
          </p>
        </div>
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
    </main>
  );
}

async function boot() {
  const root = document.getElementById("app")!;
  try {
    const cfg = await loadConfig();
    setApiBase(cfg.api_base);
    await initAuth(cfg.auth);
    initLive(cfg.websocket_url);
    if (cfg.auth.mode === "token" && !token()) {
      render(<TokenForm onDone={() => render(<App />, root)} />, root);
    } else render(<App />, root);
  } catch (e) {
    root.innerHTML = "";
    const p = document.createElement("p");
    p.className = "error-box";
    p.setAttribute("role", "alert");
    p.textContent = e instanceof Error ? e.message : String(e);
    root.append(p);
  }
}

void boot();
