/**
 * One Server-Sent Events connection over fetch (so it can carry the Authorization header, which
 * EventSource cannot), parsed with eventsource-parser. Shared by @flagsite/node and @flagsite/web.
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";

export interface StreamOptions {
  url: string;
  headers: Record<string, string>;
  fetch: typeof fetch;
  signal: AbortSignal;
  /** No byte for this long (heartbeats are every 15 s) means a dead connection. */
  idleTimeoutMs: number;
  onOpen(): void;
  onEvent(event: EventSourceMessage): void;
}

export class StreamRefused extends Error {
  constructor(readonly status: number) {
    super(`the stream answered HTTP ${status}`);
  }
}

/** Resolves when the server closes the stream; rejects on any failure. */
export async function readStream(options: StreamOptions): Promise<void> {
  const idle = new AbortController();
  const signal = AbortSignal.any([options.signal, idle.signal]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const touch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => idle.abort(new Error("the stream went silent")), options.idleTimeoutMs);
    (timer as { unref?: () => void }).unref?.();
  };
  touch();
  try {
    const response = await options.fetch(options.url, {
      headers: { Accept: "text/event-stream", ...options.headers },
      signal,
      cache: "no-store",
    });
    if (!response.ok || response.body === null) {
      await response.body?.cancel().catch(() => {});
      throw new StreamRefused(response.status);
    }
    options.onOpen();
    const parser = createParser({ onEvent: options.onEvent });
    const decoder = new TextDecoder();
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        touch();
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } finally {
      reader.releaseLock();
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Exponential backoff with full jitter: a random pause in [0, min(max, initial * 2^attempt)]. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(random() * ceiling);
}
