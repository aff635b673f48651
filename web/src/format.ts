// Small formatting helpers shared by the screens.

export function bytes(n: number | null | undefined): string {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function seconds(s: number | null | undefined): string {
  if (s == null || !Number.isFinite(s)) return "–";
  const total = Math.max(0, Math.round(s));
  const m = Math.floor(total / 60);
  const r = total % 60;
  return m > 0 ? `${m}m ${String(r).padStart(2, "0")}s` : `${r}s`;
}

export function bitrate(bps: number | null | undefined): string {
  if (bps == null) return "–";
  return bps >= 1_000_000 ? `${(bps / 1_000_000).toFixed(2)} Mb/s` : `${Math.round(bps / 1000)} kb/s`;
}

export function usd(v: number | null | undefined): string {
  if (v == null) return "–";
  return v < 0.01 && v > 0 ? `$${v.toFixed(5)}` : `$${v.toFixed(2)}`;
}

export function when(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
