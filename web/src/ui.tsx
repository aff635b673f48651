// Shared pieces: a labelled field with its API error beside it, status chips, a progress bar.
import type { ComponentChildren } from "preact";
import type { FieldError } from "./api";

/** The errors whose dotted path is `path` or lies under it (`brand.logo` takes `brand.logo.opacity`). */
export function errorsFor(errors: FieldError[], path: string): FieldError[] {
  return errors.filter((e) => e.field === path || e.field.startsWith(`${path}.`) || e.field.startsWith(`${path}[`));
}

export function fieldId(path: string): string {
  return `f-${path.replace(/[^A-Za-z0-9_-]/g, "-")}`;
}

export function errorId(path: string): string {
  return `err-${path.replace(/[^A-Za-z0-9_-]/g, "-")}`;
}

export function Field(props: {
  path: string;
  label: string;
  hint?: ComponentChildren;
  errors: FieldError[];
  children: ComponentChildren;
  class?: string;
}) {
  const mine = errorsFor(props.errors, props.path);
  return (
    <div class={`field ${props.class ?? ""} ${mine.length ? "has-error" : ""}`} data-field={props.path}>
      <label for={fieldId(props.path)}>{props.label}</label>
      {props.children}
      {props.hint && <small class="hint">{props.hint}</small>}
      <p class="field-error" id={errorId(props.path)} role={mine.length ? "alert" : undefined} hidden={!mine.length}>
        {mine.map((e) => (
          <span key={e.field + e.rule}>
            {e.field !== props.path ? `${e.field}: ` : ""}
            {e.rule}
          </span>
        ))}
      </p>
    </div>
  );
}

/** aria-* for an input whose field may carry errors. */
export function described(errors: FieldError[], path: string) {
  const bad = errorsFor(errors, path).length > 0;
  return { id: fieldId(path), "aria-invalid": bad ? ("true" as const) : undefined, "aria-describedby": errorId(path) };
}

export function StatusChip({ status }: { status: string }) {
  return (
    <span class={`chip chip-${status}`} data-status={status}>
      {status}
    </span>
  );
}

export function ProgressBar({ percent, label }: { percent: number; label: string }) {
  const p = Math.max(0, Math.min(100, percent));
  return (
    <div class="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(p * 10) / 10}>
      <div class="progress-fill" style={{ width: `${p}%` }} />
      <span class="progress-text">{p.toFixed(p >= 100 ? 0 : 1)} %</span>
    </div>
  );
}

export function ErrorBox({ error }: { error: string | null }) {
  if (!error) return null;
  return (
    <div class="error-box" role="alert">
      {error}
    </div>
  );
}
