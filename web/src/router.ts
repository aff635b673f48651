// Hash routes, so the one index.html works behind any static host or function:
// #/create, #/watch/ID, #/result/ID, #/history, #/process, #/process/ID.
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { name: "create" }
  | { name: "watch"; id: string }
  | { name: "result"; id: string }
  | { name: "history" }
  | { name: "process"; id?: string };

export function parse(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case "watch":
      if (parts[1]) return { name: "watch", id: parts[1] };
      break;
    case "result":
      if (parts[1]) return { name: "result", id: parts[1] };
      break;
    case "history":
      return { name: "history" };
    case "process":
      return parts[1] ? { name: "process", id: parts[1] } : { name: "process" };
  }
  return { name: "create" };
}

export function href(r: Route): string {
  switch (r.name) {
    case "watch":
    case "result":
      return `#/${r.name}/${encodeURIComponent(r.id)}`;
    case "process":
      return r.id ? `#/process/${encodeURIComponent(r.id)}` : "#/process";
    default:
      return `#/${r.name}`;
  }
}

export function go(r: Route): void {
  location.hash = href(r);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.hash));
  useEffect(() => {
    const on = () => setRoute(parse(location.hash));
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}
