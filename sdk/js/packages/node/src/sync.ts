/**
 * Keeps a ruleset current: the SSE stream first (reconnecting with backoff and full jitter), and
 * ETag polling of GET /api/v1/sdk/ruleset whenever the stream is down or disabled.
 */
import { backoffDelay, describe, type Logger, readStream, StreamRefused } from "@flagsite/common";
import type { RulesetDocument } from "./engine/index.js";

export interface SyncOptions {
  baseUrl: string;
  key: string;
  fetch: typeof fetch;
  logger: Logger;
  stream: boolean;
  pollIntervalMs: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  idleTimeoutMs: number;
  requestTimeoutMs: number;
  /** Installs a document; returns false when it could not be compiled. */
  install(doc: RulesetDocument, via: "poll" | "stream"): boolean;
  currentVersion(): number | null;
}

export class RulesetSync {
  private readonly abort = new AbortController();
  private etag: string | null = null;
  private streaming = false;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(private readonly options: SyncOptions) {}

  start(): void {
    if (this.options.stream) void this.streamLoop();
    this.schedulePoll(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pollTimer);
    this.abort.abort(new Error("closed"));
  }

  private headers(): Record<string, string> {
    return { Authorization: `Bearer ${this.options.key}`, "User-Agent": "flagsite-node/0.1.0" };
  }

  private schedulePoll(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => void this.pollTick(), delayMs);
    this.pollTimer.unref?.();
  }

  private async pollTick(): Promise<void> {
    // An open stream delivers every version; polling is only the fallback.
    if (!this.streaming) await this.poll();
    this.schedulePoll(this.options.pollIntervalMs);
  }

  /** One conditional GET of the ruleset; true when the server answered. */
  async poll(): Promise<boolean> {
    const headers = this.headers();
    if (this.etag !== null && this.options.currentVersion() !== null) headers["If-None-Match"] = this.etag;
    try {
      const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.requestTimeoutMs)]);
      const response = await this.options.fetch(`${this.options.baseUrl}/api/v1/sdk/ruleset`, { headers, signal });
      if (response.status === 304) return true;
      if (!response.ok) {
        this.options.logger.warn(`fetching the ruleset failed: HTTP ${response.status}`);
        await response.body?.cancel().catch(() => {});
        return false;
      }
      const doc = (await response.json()) as RulesetDocument;
      if (this.options.install(doc, "poll")) this.etag = response.headers.get("ETag");
      return true;
    } catch (exc) {
      if (!this.stopped) this.options.logger.debug(`fetching the ruleset failed: ${describe(exc)}`);
      return false;
    }
  }

  private async streamLoop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      let received = false;
      try {
        const version = this.options.currentVersion();
        const headers = this.headers();
        if (version !== null) headers["Last-Event-ID"] = String(version);
        await readStream({
          url: `${this.options.baseUrl}/api/v1/sdk/stream`,
          headers,
          fetch: this.options.fetch,
          signal: this.abort.signal,
          idleTimeoutMs: this.options.idleTimeoutMs,
          onOpen: () => {
            this.streaming = true;
          },
          onEvent: (event) => {
            received = true;
            if (event.event !== "ruleset") return;
            try {
              // {"version": n, "ruleset": document}: the frame's version is the one the ETag names
              const frame = JSON.parse(event.data) as { version: number; ruleset: RulesetDocument };
              this.options.install({ ...frame.ruleset, version: frame.version }, "stream");
            } catch (exc) {
              this.options.logger.warn(`a stream event did not parse: ${describe(exc)}`);
            }
          },
        });
      } catch (exc) {
        if (this.stopped) return;
        const refused = exc instanceof StreamRefused ? exc.status : null;
        this.options.logger.debug(`the stream failed: ${describe(exc)}`);
        if (refused === 401 || refused === 403) {
          this.options.logger.warn(`the stream refused the key (HTTP ${refused}); polling instead`);
          this.streaming = false;
          return;
        }
      }
      const wasStreaming = this.streaming;
      this.streaming = false;
      if (this.stopped) return;
      if (wasStreaming) this.schedulePoll(0); // catch up at once on what the stream may have missed
      attempt = received ? 0 : attempt + 1;
      const pause = backoffDelay(attempt, this.options.reconnectInitialMs, this.options.reconnectMaxMs);
      await sleep(pause, this.abort.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    (timer as { unref?: () => void }).unref?.();
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
