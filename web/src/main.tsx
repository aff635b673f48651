// Entry: read /app-config.json, sign in if the deployment asks for it, then render the app.
import { render } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { setApiBase } from "./api";
import { authMode, initAuth } from "./auth";
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

async function boot() {
  const root = document.getElementById("app")!;
  try {
    const cfg = await loadConfig();
    setApiBase(cfg.api_base);
    await initAuth(cfg.auth);
    initLive(cfg.websocket_url);
    render(<App />, root);
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
