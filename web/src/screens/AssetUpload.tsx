// A brand asset (logo or music) uploaded through the assets API: announce, PUT the bytes to the
// signed URL, then read the asset back to show what the server measured. Errors stay inline.
import { useEffect, useState } from "preact/hooks";
import { api, ApiProblem, putSigned, type AssetView } from "../api";
import { bytes, seconds } from "../format";

export type AssetKind = "logo" | "music";

const ACCEPT: Record<AssetKind, string> = {
  logo: "image/png,image/jpeg",
  music: "audio/mpeg,audio/wav,audio/x-wav,audio/mp4,audio/x-m4a,.mp3,.wav,.m4a",
};

/** Browsers name some audio types differently from the API's list; map them to its names. */
function contentType(file: File): string {
  const t = file.type.toLowerCase();
  if (t === "audio/mp3") return "audio/mpeg";
  if (t === "audio/wave" || t === "audio/vnd.wave") return "audio/wav";
  if (t) return t;
  const ext = file.name.split(".").pop()?.toLowerCase();
  return ({ png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", mp3: "audio/mpeg", wav: "audio/wav", m4a: "audio/x-m4a" } as Record<string, string>)[ext ?? ""] ?? "application/octet-stream";
}

export function AssetUpload(props: {
  kind: AssetKind;
  label: string;
  /** The API's errors for this asset's request path (e.g. brand.logo), shown with the upload's own. */
  requestErrors: string[];
  onChange: (assetId: string | null) => void;
}) {
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [state, setState] = useState<"empty" | "uploading" | "uploaded" | "error">("empty");
  const [sent, setSent] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [asset, setAsset] = useState<AssetView | null>(null);
  const id = `asset-${props.kind}`;

  useEffect(() => () => void (preview && URL.revokeObjectURL(preview)), [preview]);

  async function pick(f: File | null) {
    setError(null);
    setAsset(null);
    props.onChange(null);
    setFile(f);
    setPreview(f ? URL.createObjectURL(f) : null);
    if (!f) {
      setState("empty");
      return;
    }
    setState("uploading");
    setSent(0);
    try {
      const created = await api.createAsset({ kind: props.kind, content_type: contentType(f) as never, size_bytes: f.size });
      await putSigned(created.upload_url, created.headers, f, setSent);
      const view = await api.getAsset(created.asset_id);
      if (!view.uploaded) throw new ApiProblem(0, { detail: "The server has not received the file." });
      setAsset(view);
      setState("uploaded");
      props.onChange(view.asset_id);
    } catch (e) {
      setState("error");
      if (e instanceof ApiProblem) {
        const rules = e.fieldErrors.map((fe) => `${fe.field}: ${fe.rule}`);
        setError(rules.length ? rules.join("; ") : e.message);
      } else setError(String(e));
    }
  }

  const errors = [...(error ? [error] : []), ...props.requestErrors];
  return (
    <div class={`field asset ${errors.length ? "has-error" : ""}`} data-asset={props.kind} data-state={state}>
      <label for={id}>{props.label}</label>
      <input
        id={id}
        type="file"
        accept={ACCEPT[props.kind]}
        aria-describedby={`${id}-status ${id}-error`}
        aria-invalid={errors.length ? "true" : undefined}
        onChange={(e) => pick((e.currentTarget as HTMLInputElement).files?.[0] ?? null)}
      />
      <div class="asset-preview">
        {preview && props.kind === "logo" && <img src={preview} alt={`Preview of ${file?.name ?? "the logo"}`} />}
        {preview && props.kind === "music" && <audio src={preview} controls preload="metadata" aria-label="Music preview" />}
      </div>
      <small class="hint" id={`${id}-status`} aria-live="polite">
        {state === "uploading" && file && `Uploading… ${bytes(sent)} of ${bytes(file.size)}`}
        {state === "uploaded" && asset && (
          <>
            Uploaded {bytes(asset.uploaded_size_bytes ?? asset.size_bytes)}
            {asset.width != null && asset.height != null && `, ${asset.width}×${asset.height}`}
            {asset.duration_seconds != null && `, ${seconds(asset.duration_seconds)}`}
          </>
        )}
        {state === "empty" && (props.kind === "logo" ? "PNG or JPEG, up to 10 MiB." : "MP3, WAV or M4A, up to 50 MiB.")}
      </small>
      <p class="field-error" id={`${id}-error`} role={errors.length ? "alert" : undefined} hidden={!errors.length}>
        {errors.join("; ")}
      </p>
      {state !== "empty" && (
        <button
          type="button"
          class="link"
          onClick={() => {
            const input = document.getElementById(id) as HTMLInputElement | null;
            if (input) input.value = "";
            void pick(null);
          }}
        >
          Remove {props.kind}
        </button>
      )}
    </div>
  );
}
