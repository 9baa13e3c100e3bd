/**
 * FlagsiteWebClient: flags in a browser with a client key only. It never receives rules or
 * segment contents, only the evaluated values of client-visible flags
 * (POST /api/v1/evaluate/all). It stays current over the SSE stream (client keys get version
 * numbers only, then fetch their values again), records each flag+variant exposure once, keeps
 * the last values (and a localStorage copy for the next page load) when the server cannot be
 * reached, and never throws into the page.
 */
import { backoffDelay, consoleLogger, describe, type Logger, readStream, StreamRefused } from "@flagsite/common";

export type Context = Readonly<Record<string, unknown>>;

export interface FlagValue {
  readonly flagKey: string;
  readonly value: unknown;
  readonly variant: string | null;
  readonly reason: string;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly flagVersion: number | null;
}

/** What the server rendered with (see @flagsite/node's bootstrapPayload), or a cached copy. */
export interface BootstrapPayload {
  version: number;
  context?: Context;
  flags: Record<string, FlagValue>;
}

export interface Snapshot {
  readonly version: number | null;
  readonly flags: Readonly<Record<string, FlagValue>>;
  /** Where the values came from. */
  readonly source: "none" | "bootstrap" | "cache" | "server";
}

export interface WebOptions {
  clientKey: string;
  baseUrl: string;
  context?: Context;
  bootstrap?: BootstrapPayload | null;
  /** Where the last values are kept for the next page load; null for none. */
  storage?: Pick<Storage, "getItem" | "setItem"> | null;
  stream?: boolean;
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  flushIntervalMs?: number;
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
  logger?: Logger;
}

type Listener = () => void;
const EMPTY_SNAPSHOT: Snapshot = Object.freeze({ version: null, flags: Object.freeze({}), source: "none" });
const MAX_QUEUE = 1000;

/** Reads the payload bootstrapScript() put in the page; null when absent or unreadable. */
export function readBootstrap(id = "flagsite-bootstrap"): BootstrapPayload | null {
  try {
    const text = globalThis.document?.getElementById(id)?.textContent;
    return text ? (JSON.parse(text) as BootstrapPayload) : null;
  } catch {
    return null;
  }
}

function defaultStorage(): Pick<Storage, "getItem" | "setItem"> | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // storage disabled by the browser's privacy settings
  }
}

function sameFlags(a: Readonly<Record<string, FlagValue>>, b: Readonly<Record<string, FlagValue>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => {
    const x = a[k];
    const y = b[k];
    return y !== undefined && x !== undefined && x.variant === y.variant && JSON.stringify(x.value) === JSON.stringify(y.value)
      && x.reason === y.reason && x.errorCode === y.errorCode;
  });
}

export class FlagsiteWebClient {
  private snapshot: Snapshot = EMPTY_SNAPSHOT;
  private readonly initial: Snapshot;
  private context: Context;
  private readonly listeners = new Set<Listener>();
  private abort = new AbortController();
  private generation = 0;
  private readonly fetchImpl: typeof fetch;
  private readonly logger: Logger;
  private readonly storage: Pick<Storage, "getItem" | "setItem"> | null;
  private readonly baseUrl: string;
  private readonly exposed = new Set<string>();
  private queue: Record<string, unknown>[] = [];
  private dropped = 0;
  private flushTimer: ReturnType<typeof setInterval> | undefined;
  private refreshing: Promise<boolean> | null = null;
  private refreshAgain = false;
  private started = false;
  private closed = false;

  constructor(private readonly options: WebOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.logger = options.logger ?? consoleLogger;
    this.storage = options.storage === undefined ? defaultStorage() : options.storage;
    this.context = options.context ?? {};
    const boot = options.bootstrap;
    if (boot && typeof boot === "object" && boot.flags) {
      // the server rendered with these: they win over any cached copy, so hydration matches
      this.snapshot = Object.freeze({ version: boot.version ?? null, flags: Object.freeze({ ...boot.flags }), source: "bootstrap" });
    } else {
      this.snapshot = this.readCache() ?? EMPTY_SNAPSHOT;
    }
    this.initial = this.snapshot;
  }

  /**
   * Connects: fetches current values and follows the stream. Idempotent, a no-op outside a
   * browser, and allowed again after close() (React's StrictMode mounts effects twice).
   */
  start(): void {
    if (this.started || typeof window === "undefined") return;
    this.started = true;
    this.closed = false;
    this.abort = new AbortController();
    const generation = ++this.generation;
    void this.refresh();
    if (this.options.stream ?? true) void this.streamLoop(generation);
    this.flushTimer = setInterval(() => void this.flush(), this.options.flushIntervalMs ?? 2000);
    globalThis.addEventListener?.("pagehide", this.onPageHide);
  }

  private readonly onPageHide = () => void this.flush(true);

  getSnapshot = (): Snapshot => this.snapshot;

  /** What the page was rendered with: the bootstrap (or cache) the client started from. */
  getInitialSnapshot = (): Snapshot => this.initial;

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getContext(): Context {
    return this.context;
  }

  /** Switches the context (another user or account) and fetches its values. */
  async setContext(context: Context): Promise<boolean> {
    this.context = context;
    const cached = this.readCache();
    if (cached !== null) this.publish(cached);
    return this.refresh();
  }

  details(key: string): FlagValue | null {
    return this.snapshot.flags[key] ?? null;
  }

  value<T>(key: string, fallback: T): T {
    const d = this.snapshot.flags[key];
    if (d === undefined || d.errorCode !== null || d.value === null || d.value === undefined) return fallback;
    if (fallback !== null && fallback !== undefined && typeof fallback !== "object" && typeof d.value !== typeof fallback) {
      return fallback;
    }
    return d.value as T;
  }

  variant(key: string, fallback: string | null = null): string | null {
    return this.snapshot.flags[key]?.variant ?? fallback;
  }

  /** Fetches the values for the current context; false when the server could not be reached. */
  refresh(): Promise<boolean> {
    if (this.refreshing !== null) {
      this.refreshAgain = true; // a change arrived during the request: ask once more after it
      return this.refreshing;
    }
    this.refreshing = this.fetchValues().finally(() => {
      this.refreshing = null;
      if (this.refreshAgain) {
        this.refreshAgain = false;
        void this.refresh();
      }
    });
    return this.refreshing;
  }

  private async fetchValues(): Promise<boolean> {
    const context = this.context;
    try {
      const response = await this.fetchImpl(`${this.baseUrl}/api/v1/evaluate/all`, {
        method: "POST",
        headers: { Authorization: `Bearer ${this.options.clientKey}`, "Content-Type": "application/json" },
        body: JSON.stringify({ context }),
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.requestTimeoutMs ?? 10_000)]),
      });
      if (!response.ok) {
        this.logger.warn(`evaluating flags failed: HTTP ${response.status}`);
        return false;
      }
      const body = (await response.json()) as BootstrapPayload;
      if (context !== this.context) return false; // the context changed meanwhile; its own request follows
      this.publish(Object.freeze({ version: body.version, flags: Object.freeze({ ...body.flags }), source: "server" }));
      this.writeCache(body);
      return true;
    } catch (exc) {
      if (!this.closed) this.logger.debug(`evaluating flags failed: ${describe(exc)}`);
      return false;
    }
  }

  private publish(next: Snapshot): void {
    // Same values keep the same snapshot object, so React renders nothing new.
    if (sameFlags(next.flags, this.snapshot.flags)) return;
    this.snapshot = next;
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (exc) {
        this.logger.warn(`a flag listener threw: ${describe(exc)}`);
      }
    }
  }

  private cacheKey(): string {
    return `flagsite:${this.options.clientKey.slice(0, 16)}:${JSON.stringify(this.context)}`;
  }

  private readCache(): Snapshot | null {
    try {
      const text = this.storage?.getItem(this.cacheKey());
      if (!text) return null;
      const body = JSON.parse(text) as BootstrapPayload;
      return Object.freeze({ version: body.version, flags: Object.freeze({ ...body.flags }), source: "cache" });
    } catch {
      return null;
    }
  }

  private writeCache(body: BootstrapPayload): void {
    try {
      this.storage?.setItem(this.cacheKey(), JSON.stringify({ version: body.version, flags: body.flags }));
    } catch {
      // a full or disabled storage only costs the next page load its head start
    }
  }

  private async streamLoop(generation: number): Promise<void> {
    let attempt = 0;
    while (generation === this.generation && !this.closed) {
      let received = false;
      try {
        await readStream({
          url: `${this.baseUrl}/api/v1/sdk/stream`,
          headers: { Authorization: `Bearer ${this.options.clientKey}` },
          fetch: this.fetchImpl,
          signal: this.abort.signal,
          idleTimeoutMs: 45_000,
          onOpen: () => {
            if (attempt > 0) void this.refresh(); // values may have changed while we were away
          },
          onEvent: (event) => {
            received = true;
            if (event.event !== "version") return;
            const version = Number((JSON.parse(event.data) as { version?: unknown }).version);
            if (version !== this.snapshot.version) void this.refresh();
          },
        });
      } catch (exc) {
        if (this.closed || generation !== this.generation) return;
        this.logger.debug(`the flag stream failed: ${describe(exc)}`);
        if (exc instanceof StreamRefused && (exc.status === 401 || exc.status === 403)) {
          this.logger.warn(`the flag stream refused the key (HTTP ${exc.status})`);
          return;
        }
      }
      attempt = received ? 1 : attempt + 1;
      const pause = backoffDelay(attempt, this.options.reconnectInitialMs ?? 500, this.options.reconnectMaxMs ?? 30_000);
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  /** Records that the page used `key`'s current variant; sent once per flag, variant and context key. */
  recordExposure(key: string): void {
    try {
      const d = this.snapshot.flags[key];
      const contextKey = this.context.targetingKey ?? this.context.userId;
      if (d === undefined || d.variant === null || d.errorCode !== null) return;
      if ((typeof contextKey !== "string" && typeof contextKey !== "number") || contextKey === "") return;
      const id = JSON.stringify([key, d.variant, contextKey]);
      if (this.exposed.has(id)) return;
      this.exposed.add(id);
      if (this.queue.length >= MAX_QUEUE) {
        this.dropped++;
        return;
      }
      this.queue.push({
        type: "exposure", flag: key, variant: d.variant, context_key: String(contextKey),
        timestamp: new Date().toISOString(), assignments: { [key]: d.variant },
      });
    } catch (exc) {
      this.logger.debug(`recording an exposure failed: ${describe(exc)}`);
    }
  }

  /** Sends the queued exposures (keepalive on page hide, so the request outlives the page). */
  async flush(keepalive = false): Promise<void> {
    if (this.queue.length === 0) return;
    const events = this.queue.splice(0, 500);
    const dropped = this.dropped;
    this.dropped = 0;
    try {
      const response = await this.fetchImpl(`${this.baseUrl}/api/v1/events`, {
        method: "POST",
        headers: { Authorization: `Bearer ${this.options.clientKey}`, "Content-Type": "application/json" },
        body: JSON.stringify({ batch_id: crypto.randomUUID().replaceAll("-", ""), sdk: { dropped }, events }),
        keepalive,
      });
      if (response.status >= 500 || response.status === 429) this.requeue(events, dropped);
    } catch (exc) {
      this.logger.debug(`sending exposures failed: ${describe(exc)}`);
      this.requeue(events, dropped);
    }
  }

  private requeue(events: Record<string, unknown>[], dropped: number): void {
    const room = Math.max(0, MAX_QUEUE - this.queue.length);
    this.queue.unshift(...events.slice(0, room));
    this.dropped += dropped + Math.max(0, events.length - room);
  }

  close(): void {
    this.closed = true;
    this.started = false;
    clearInterval(this.flushTimer);
    globalThis.removeEventListener?.("pagehide", this.onPageHide);
    void this.flush(true);
    this.abort.abort(new Error("closed"));
  }
}
