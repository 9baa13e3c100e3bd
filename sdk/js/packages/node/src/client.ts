/**
 * FlagsiteClient: the server SDK. Fetches the environment's ruleset with a server key, keeps it
 * current (sync.ts), evaluates locally with the engine port and records exposures (events.ts).
 * No method throws into the caller: on any trouble the caller's default comes back, and the
 * last good ruleset stays in use while the server is unreachable.
 */
import { readFileSync } from "node:fs";
import { consoleLogger, describe, type Logger } from "@flagsite/common";
import {
  type CompiledRuleset,
  type Context,
  compileRuleset,
  type EvaluationDetails,
  type RulesetDocument,
} from "./engine/index.js";
import {
  bucketAttributes,
  DEFAULT_EVENT_OPTIONS,
  type EventOptions,
  type EventStats,
  ExposureRecorder,
  httpTransport,
  unitsOf,
} from "./events.js";
import { RulesetSync } from "./sync.js";

export interface FlagsiteOptions {
  /** A server API key (fs_srv_...). */
  serverKey?: string;
  /** The Flagsite server, e.g. "https://flags.example.com". */
  baseUrl?: string;
  /** A ruleset document to start from (e.g. the last one saved), used until the server answers. */
  bootstrap?: RulesetDocument;
  /** Path of a JSON ruleset document to start from. */
  bootstrapFile?: string;
  /** No network at all: evaluate the bootstrap only. */
  offline?: boolean;
  /** Follow the SSE stream (default true); polling continues as the fallback. */
  stream?: boolean;
  pollIntervalMs?: number;
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  requestTimeoutMs?: number;
  /** false: record no exposures. */
  events?: Partial<EventOptions> | false;
  fetch?: typeof fetch;
  logger?: Logger;
}

type Listener = (version: number) => void;
const EMPTY: Context = Object.freeze({});

export class FlagsiteClient {
  private ruleset: CompiledRuleset | null = null;
  /** Flag -> the attributes its rollouts bucket by (beside the targeting key). */
  private unitAttributes = new Map<string, string[]>();
  private readonly sync: RulesetSync | null = null;
  private readonly recorder: ExposureRecorder | null = null;
  private readonly logger: Logger;
  private readonly listeners = new Set<Listener>();
  private readyResolve: (() => void) | null = null;
  private readonly readyPromise: Promise<void>;

  constructor(options: FlagsiteOptions) {
    this.logger = options.logger ?? consoleLogger;
    this.readyPromise = new Promise((resolve) => {
      this.readyResolve = resolve;
    });
    if (options.bootstrap !== undefined) this.install(options.bootstrap, "bootstrap");
    if (options.bootstrapFile !== undefined) this.loadFile(options.bootstrapFile);
    const online = !options.offline && options.serverKey !== undefined && options.baseUrl !== undefined;
    const fetchImpl = options.fetch ?? globalThis.fetch;
    const baseUrl = (options.baseUrl ?? "").replace(/\/+$/, "");
    const timeout = options.requestTimeoutMs ?? 10_000;
    if (options.events !== false) {
      const transport = online ? httpTransport(baseUrl, options.serverKey!, fetchImpl, timeout) : null;
      this.recorder = new ExposureRecorder(transport, { ...DEFAULT_EVENT_OPTIONS, ...options.events }, this.logger);
      if (online) this.recorder.start();
    }
    if (online) {
      this.sync = new RulesetSync({
        baseUrl,
        key: options.serverKey!,
        fetch: fetchImpl,
        logger: this.logger,
        stream: options.stream ?? true,
        pollIntervalMs: options.pollIntervalMs ?? 30_000,
        reconnectInitialMs: options.reconnectInitialMs ?? 500,
        reconnectMaxMs: options.reconnectMaxMs ?? 30_000,
        idleTimeoutMs: 45_000,
        requestTimeoutMs: timeout,
        install: (doc, via) => this.install(doc, via),
        currentVersion: () => this.ruleset?.version ?? null,
      });
      this.sync.start();
    }
  }

  private loadFile(path: string): void {
    try {
      this.install(JSON.parse(readFileSync(path, "utf8")) as RulesetDocument, "bootstrap");
    } catch (exc) {
      this.logger.warn(`the bootstrap file ${path} could not be read: ${describe(exc)}`);
    }
  }

  /**
   * Compiles and installs a document; one whose top level is unusable leaves the last good
   * ruleset in place. A flag that cannot be compiled (say, an operator from a newer server)
   * does not block the document: it alone answers PARSE_ERROR, and it is logged once per version.
   */
  private install(doc: RulesetDocument, via: string): boolean {
    try {
      if (this.ruleset !== null && doc.version <= this.ruleset.version && via !== "bootstrap") return true;
      const compiled = compileRuleset(doc);
      this.ruleset = compiled;
      if (compiled.brokenFlags.size > 0 || compiled.brokenSegments.size > 0) {
        const problems = [...compiled.brokenFlags.values(), ...compiled.brokenSegments.values()];
        this.logger.warn(
          `ruleset version ${compiled.version} from ${via}: ${compiled.brokenFlags.size} flag(s) could not be ` +
            `compiled and answer PARSE_ERROR with your defaults (is this SDK older than the server?); ` +
            `every other flag applies. ${problems.slice(0, 5).join("; ")}`,
        );
      }
      const attributes = new Map<string, string[]>();
      for (const [key, flag] of Object.entries(doc.flags)) {
        const found = bucketAttributes(flag);
        if (found.length > 0) attributes.set(key, found);
      }
      this.unitAttributes = attributes;
    } catch (exc) {
      this.logger.warn(`ruleset from ${via} rejected, keeping version ${this.ruleset?.version ?? "none"}: ${describe(exc)}`);
      return false;
    }
    this.readyResolve?.();
    this.readyResolve = null;
    for (const listener of this.listeners) {
      try {
        listener(this.ruleset.version);
      } catch (exc) {
        this.logger.warn(`a change listener threw: ${describe(exc)}`);
      }
    }
    return true;
  }

  /** Resolves true once a ruleset is installed, false after `timeoutMs` without one. */
  async ready(timeoutMs = 10_000): Promise<boolean> {
    if (this.ruleset !== null) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const result = await Promise.race([this.readyPromise.then(() => true), timeout]);
    clearTimeout(timer);
    return result;
  }

  /** The installed ruleset version, null before the first one. */
  get version(): number | null {
    return this.ruleset?.version ?? null;
  }

  /** The compiled ruleset in use (for SSR helpers and tests), null before the first one. */
  get compiled(): CompiledRuleset | null {
    return this.ruleset;
  }

  /** Calls `listener(version)` after each new ruleset; returns the unsubscribe function. */
  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The value of a boolean flag; `fallback` for unknown or non-boolean flags and on any error. */
  isEnabled(key: string, context?: Context | null, fallback = false): boolean {
    const ruleset = this.ruleset;
    if (ruleset === null) return fallback;
    const d = ruleset.evaluate(key, context, fallback);
    if (d.errorCode !== null || typeof d.value !== "boolean") return fallback;
    this.expose(d, context);
    return d.value;
  }

  /** The variant name served, or `fallback`. */
  variant(key: string, context?: Context | null, fallback: string | null = null): string | null {
    const d = this.details(key, context, null);
    return d.variant ?? fallback;
  }

  getBoolean(key: string, context: Context | null | undefined, fallback: boolean): boolean {
    return this.typed(key, context, fallback, "boolean");
  }

  getString(key: string, context: Context | null | undefined, fallback: string): string {
    return this.typed(key, context, fallback, "string");
  }

  getNumber(key: string, context: Context | null | undefined, fallback: number): number {
    return this.typed(key, context, fallback, "number");
  }

  getJson<T = unknown>(key: string, context: Context | null | undefined, fallback: T): T {
    return this.details(key, context, fallback).value as T;
  }

  private typed<T>(key: string, context: Context | null | undefined, fallback: T, type: string): T {
    const value = this.details(key, context, fallback).value;
    return typeof value === type ? (value as T) : fallback;
  }

  /** Value, variant, reason, rule id, error code and notes; never throws. */
  details(key: string, context?: Context | null, fallback: unknown = null): EvaluationDetails {
    const ruleset = this.ruleset;
    if (ruleset === null) {
      return {
        flagKey: key, value: fallback, variant: null, reason: "ERROR", errorCode: "PARSE_ERROR",
        errorMessage: "no ruleset yet: the server has not answered and no bootstrap was given",
        ruleId: null, flagVersion: null, notes: [],
      };
    }
    const d = ruleset.evaluate(key, context, fallback);
    if (d.errorCode === null) this.expose(d, context);
    return d;
  }

  /** Every flag (or every client-visible flag) for one context; records no exposures. */
  evaluateAll(context?: Context | null, clientVisibleOnly = false): Record<string, EvaluationDetails> {
    return this.ruleset?.evaluateAll(context, clientVisibleOnly) ?? {};
  }

  private expose(d: EvaluationDetails, context: Context | null | undefined): void {
    const recorder = this.recorder;
    if (recorder === null || d.variant === null) return;
    const ctx = context ?? EMPTY;
    try {
      const attributes = this.unitAttributes.get(d.flagKey);
      const units = attributes === undefined ? null : unitsOf(ctx, attributes);
      recorder.record(d.flagKey, d.variant, ctx.targetingKey ?? ctx.userId, units);
    } catch (exc) {
      this.logger.debug(`recording an exposure failed: ${describe(exc)}`);
    }
  }

  /** Sends the exposures queued so far. */
  async flush(): Promise<void> {
    await this.recorder?.flush();
  }

  eventStats(): EventStats | null {
    return this.recorder?.stats() ?? null;
  }

  /** Stops the stream and polling, and sends what is queued. */
  async close(): Promise<void> {
    this.sync?.stop();
    await this.recorder?.close();
  }
}
