/**
 * Exposure events, as in the Python SDK (sdk/python/flagsite_sdk/events.py): recorded on the
 * evaluation path for a Map probe and a push, deduplicated per flag and context key, batched and
 * sent by a timer. Memory is bounded twice: each flag's dedup table keeps at most maxDedupKeys
 * keys (oldest first out) and is cleared every dedupIntervalMs; the queue holds at most maxQueue
 * events, and what does not fit is counted as dropped (and reported with the next batch).
 * Each exposure carries the context's units for the flag: the values of the attributes its
 * rollouts bucket by (e.g. { accountId: "acct-7" }), so the server analyses per account.
 */
import { backoffDelay, describe, type Logger } from "@flagsite/common";

export interface EventOptions {
  flushIntervalMs: number;
  batchSize: number;
  maxQueue: number;
  dedupIntervalMs: number;
  maxDedupKeys: number;
  maxAttempts: number;
  retryInitialMs: number;
  retryMaxMs: number;
}

export const DEFAULT_EVENT_OPTIONS: EventOptions = {
  flushIntervalMs: 5000,
  batchSize: 500,
  maxQueue: 10_000,
  dedupIntervalMs: 300_000,
  maxDedupKeys: 100_000,
  maxAttempts: 5,
  retryInitialMs: 500,
  retryMaxMs: 10_000,
};

export interface EventStats {
  recorded: number;
  dropped: number;
  sent: number;
  rejected: number;
  failed: number;
  queued: number;
}

export type Units = Record<string, string>;
type Exposure = readonly [flag: string, variant: string, contextKey: string, at: number, units: Units | null];

// The server's bounds on an event's units (analytics/serializers.py): what does not fit is left
// out here rather than have the whole event refused.
const MAX_UNITS = 8;
const MAX_UNIT_NAME = 100;
const MAX_UNIT_VALUE = 256;

interface ServeLike {
  rollout?: { bucketBy?: unknown };
}

/** The attributes a flag document's rollouts bucket by, other than the targeting key. */
export function bucketAttributes(flag: { defaultServe?: unknown; rules?: readonly unknown[] }): string[] {
  const serves = [flag.defaultServe, ...(flag.rules ?? []).map((r) => (r as { serve?: unknown } | null)?.serve)];
  const found = new Set<string>();
  for (const serve of serves) {
    const rollout = (serve as ServeLike | null | undefined)?.rollout;
    if (rollout === undefined || rollout === null) continue;
    const attribute = rollout.bucketBy ?? "targetingKey";
    if (typeof attribute === "string" && attribute !== "targetingKey" && attribute.length > 0 && attribute.length <= MAX_UNIT_NAME) {
      found.add(attribute);
    }
  }
  return [...found].slice(0, MAX_UNITS);
}

/** A context's value of each attribute as the engine buckets on it (a string, an integer as
 * its digits); absent, empty, too long or of another type, it is left out. */
export function unitsOf(context: Readonly<Record<string, unknown>>, attributes: readonly string[]): Units | null {
  let units: Units | null = null;
  for (const attribute of attributes) {
    let value = context[attribute];
    if ((typeof value === "number" && Number.isInteger(value)) || typeof value === "bigint") value = String(value);
    if (typeof value === "string" && value.length > 0 && value.length <= MAX_UNIT_VALUE) {
      (units ??= {})[attribute] = value;
    }
  }
  return units;
}

export interface EventTransport {
  /** POSTs one batch; resolves to the HTTP status and parsed body. */
  post(body: unknown): Promise<{ status: number; body: unknown }>;
}

export function httpTransport(baseUrl: string, key: string, fetchImpl: typeof fetch, timeoutMs: number): EventTransport {
  return {
    async post(body) {
      const response = await fetchImpl(`${baseUrl}/api/v1/events`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await response.text();
      let parsed: unknown = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = null;
      }
      return { status: response.status, body: parsed };
    },
  };
}

export class ExposureRecorder {
  private readonly seen = new Map<string, Map<string, string>>();
  private seenSince = Date.now();
  private queue: Exposure[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  private sending: Promise<void> = Promise.resolve();
  private counts = { recorded: 0, dropped: 0, sent: 0, rejected: 0, failed: 0, dropsSent: 0 };
  private closed = false;

  constructor(
    private readonly transport: EventTransport | null,
    readonly options: EventOptions,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.options.flushIntervalMs);
    this.timer.unref?.();
  }

  /**
   * Queues one exposure unless this context saw this variant within the dedup interval.
   * Contexts without a targeting key are not recorded: nobody could be attributed to them.
   */
  record(flag: string, variant: string, contextKey: unknown, units: Units | null = null): void {
    if (typeof contextKey !== "string" && typeof contextKey !== "number") return;
    if (contextKey === "") return;
    const key = String(contextKey);
    let table = this.seen.get(flag);
    if (table === undefined) this.seen.set(flag, (table = new Map()));
    if (table.get(key) === variant) return;
    if (!table.has(key) && table.size >= this.options.maxDedupKeys) {
      table.delete(table.keys().next().value as string);
    }
    table.set(key, variant);
    this.counts.recorded++;
    if (this.queue.length >= this.options.maxQueue) {
      this.counts.dropped++;
      return;
    }
    this.queue.push([flag, variant, key, Date.now(), units]);
    if (this.queue.length === this.options.batchSize) void this.flush();
  }

  private async tick(): Promise<void> {
    if (Date.now() - this.seenSince >= this.options.dedupIntervalMs) {
      for (const table of this.seen.values()) table.clear();
      this.seenSince = Date.now();
    }
    await this.flush();
  }

  /** Sends everything queued now, in batches, one batch at a time. */
  flush(): Promise<void> {
    this.sending = this.sending.then(async () => {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.options.batchSize);
        await this.send(batch);
      }
    });
    return this.sending;
  }

  private async send(batch: Exposure[]): Promise<void> {
    if (this.transport === null) return;
    // One id for every attempt: the server stores a batch id once, so a retry cannot double-count.
    const batchId = crypto.randomUUID().replaceAll("-", "");
    const drops = this.counts.dropped - this.counts.dropsSent;
    let current = batch;
    for (let attempt = 1; attempt <= this.options.maxAttempts; attempt++) {
      try {
        const { status, body } = await this.transport.post(buildPayload(batchId, current, drops));
        if (status < 300) {
          this.counts.sent += current.length;
          this.counts.dropsSent += drops;
          return;
        }
        if (status === 400) {
          const bad = rejectedIndices(body);
          const kept = bad === null ? [] : current.filter((_, i) => !bad.has(i));
          this.logger.warn(`the server rejected ${current.length - kept.length} of ${current.length} events`);
          this.counts.rejected += current.length - kept.length;
          current = kept;
          if (current.length === 0) return;
          continue;
        }
        if (status > 400 && status < 500 && status !== 408 && status !== 429) {
          this.logger.warn(`the events endpoint refused a batch: HTTP ${status}`);
          break;
        }
      } catch (exc) {
        this.logger.debug(`sending ${current.length} events failed: ${describe(exc)}`);
      }
      if (attempt === this.options.maxAttempts || this.closed) break;
      await new Promise((r) => {
        const t = setTimeout(r, backoffDelay(attempt, this.options.retryInitialMs, this.options.retryMaxMs));
        (t as { unref?: () => void }).unref?.();
      });
    }
    this.counts.failed += current.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.flush();
  }

  stats(): EventStats {
    const { recorded, dropped, sent, rejected, failed } = this.counts;
    return { recorded, dropped, sent, rejected, failed, queued: this.queue.length };
  }
}

/** The body of POST /api/v1/events (field names: analytics/serializers.py). */
export function buildPayload(batchId: string, batch: readonly Exposure[], dropped: number): unknown {
  return {
    batch_id: batchId,
    sdk: { dropped },
    events: batch.map(([flag, variant, contextKey, at, units]) => ({
      type: "exposure",
      flag,
      variant,
      context_key: contextKey,
      timestamp: new Date(at).toISOString(),
      assignments: { [flag]: variant },
      ...(units === null ? {} : { units }),
    })),
  };
}

function rejectedIndices(body: unknown): Set<number> | null {
  const errors = (body as { errors?: unknown } | null)?.errors;
  if (!Array.isArray(errors) || errors.length === 0) return null;
  const indices = errors.map((e) => (e as { index?: unknown })?.index);
  if (!indices.every((i) => typeof i === "number")) return null;
  return new Set(indices as number[]);
}
