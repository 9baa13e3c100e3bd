/**
 * An OpenFeature web provider (@openfeature/web-sdk) over FlagsiteWebClient. The web paradigm is
 * static context: values are fetched when the context is set and read synchronously afterwards,
 * which is exactly how the client works.
 */
import {
  type ErrorCode,
  type EvaluationContext,
  type JsonValue,
  OpenFeatureEventEmitter,
  type Provider,
  ProviderEvents,
  type ResolutionDetails,
} from "@openfeature/web-sdk";
import { FlagsiteWebClient, type WebOptions } from "./client.js";

export class FlagsiteWebProvider implements Provider {
  readonly metadata = { name: "flagsite-web" } as const;
  readonly runsOn = "client" as const;
  readonly events = new OpenFeatureEventEmitter();
  readonly client: FlagsiteWebClient;
  private unsubscribe: (() => void) | null = null;

  constructor(clientOrOptions: FlagsiteWebClient | WebOptions) {
    this.client = clientOrOptions instanceof FlagsiteWebClient ? clientOrOptions : new FlagsiteWebClient(clientOrOptions);
  }

  async initialize(context?: EvaluationContext): Promise<void> {
    this.unsubscribe = this.client.subscribe(() => this.events.emit(ProviderEvents.ConfigurationChanged, {}));
    this.client.start();
    const ok = await this.client.setContext((context ?? this.client.getContext()) as Record<string, unknown>);
    if (!ok && this.client.getSnapshot().source === "none") throw new Error("flagsite: the server could not be reached");
  }

  async onContextChange(_old: EvaluationContext, next: EvaluationContext): Promise<void> {
    await this.client.setContext(next as Record<string, unknown>);
  }

  async onClose(): Promise<void> {
    this.unsubscribe?.();
    this.client.close();
  }

  resolveBooleanEvaluation(key: string, fallback: boolean): ResolutionDetails<boolean> {
    return this.resolve(key, fallback);
  }

  resolveStringEvaluation(key: string, fallback: string): ResolutionDetails<string> {
    return this.resolve(key, fallback);
  }

  resolveNumberEvaluation(key: string, fallback: number): ResolutionDetails<number> {
    return this.resolve(key, fallback);
  }

  resolveObjectEvaluation<T extends JsonValue>(key: string, fallback: T): ResolutionDetails<T> {
    return this.resolve(key, fallback);
  }

  private resolve<T>(key: string, fallback: T): ResolutionDetails<T> {
    const d = this.client.details(key);
    if (d === null) return { value: fallback, reason: "ERROR", errorCode: "FLAG_NOT_FOUND" as ErrorCode };
    if (d.errorCode !== null) {
      return { value: fallback, reason: "ERROR", errorCode: d.errorCode as ErrorCode, errorMessage: d.errorMessage ?? undefined };
    }
    if (typeof d.value !== typeof fallback && typeof fallback !== "object") {
      return { value: fallback, reason: "ERROR", errorCode: "TYPE_MISMATCH" as ErrorCode };
    }
    this.client.recordExposure(key);
    return { value: d.value as T, variant: d.variant ?? undefined, reason: d.reason };
  }
}
