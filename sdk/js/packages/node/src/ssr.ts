/**
 * Server-side rendering: evaluate the client-visible flags for one request's context and hand
 * the browser the exact values the server rendered with, so @flagsite/react's first render
 * matches the server's HTML (no flicker, no hydration mismatch). The payload has the shape of
 * POST /api/v1/evaluate/all, which @flagsite/web reads.
 */
import type { FlagsiteClient } from "./client.js";
import type { Context, EvaluationDetails } from "./engine/index.js";

export interface BootstrapFlag {
  flagKey: string;
  value: unknown;
  variant: string | null;
  reason: string;
  errorCode: string | null;
  errorMessage: string | null;
  flagVersion: number | null;
}

export interface BootstrapPayload {
  version: number;
  context: Context;
  flags: Record<string, BootstrapFlag>;
}

function wire(d: EvaluationDetails): BootstrapFlag {
  // rule ids and notes describe the rules, which browsers are never given
  return {
    flagKey: d.flagKey, value: d.value, variant: d.variant, reason: d.reason,
    errorCode: d.errorCode, errorMessage: d.errorMessage, flagVersion: d.flagVersion,
  };
}

/** The client-visible flags for `context`, ready for FlagsiteProvider's `bootstrap` prop. */
export function bootstrapPayload(client: FlagsiteClient, context: Context): BootstrapPayload {
  const flags: Record<string, BootstrapFlag> = {};
  for (const [key, d] of Object.entries(client.evaluateAll(context, true))) flags[key] = wire(d);
  return { version: client.version ?? 0, context, flags };
}

/** JSON safe to put inside a <script> element: no "</script>", no HTML comment, no U+2028. */
export function serializeBootstrap(payload: BootstrapPayload): string {
  return JSON.stringify(payload)
    .replaceAll("<", "\\u003c")
    .replaceAll(">", "\\u003e")
    .replaceAll("&", "\\u0026")
    .replaceAll("\u2028", "\\u2028")
    .replaceAll("\u2029", "\\u2029");
}

/** A `<script type="application/json">` element that @flagsite/web's readBootstrap() finds. */
export function bootstrapScript(payload: BootstrapPayload, id = "flagsite-bootstrap"): string {
  return `<script type="application/json" id="${id.replace(/[^A-Za-z0-9_-]/g, "")}">${serializeBootstrap(payload)}</script>`;
}
