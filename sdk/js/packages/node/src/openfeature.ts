/**
 * An OpenFeature server provider (@openfeature/server-sdk) over FlagsiteClient: the flags
 * evaluate locally, so resolution is synchronous work wrapped in the promises the API expects.
 * The evaluation context is a Flagsite context as is: targetingKey plus flat attributes.
 */
import {
  type ErrorCode,
  type EvaluationContext,
  type JsonValue,
  OpenFeatureEventEmitter,
  type Provider,
  ProviderEvents,
  type ResolutionDetails,
} from "@openfeature/server-sdk";
import { FlagsiteClient, type FlagsiteOptions } from "./client.js";

export class FlagsiteProvider implements Provider {
  readonly metadata = { name: "flagsite" } as const;
  readonly runsOn = "server" as const;
  readonly events = new OpenFeatureEventEmitter();
  readonly client: FlagsiteClient;
  private unsubscribe: (() => void) | null = null;

  constructor(clientOrOptions: FlagsiteClient | FlagsiteOptions, private readonly readyTimeoutMs = 10_000) {
    this.client = clientOrOptions instanceof FlagsiteClient ? clientOrOptions : new FlagsiteClient(clientOrOptions);
  }

  async initialize(): Promise<void> {
    if (!(await this.client.ready(this.readyTimeoutMs))) {
      throw new Error("flagsite: no ruleset from the server or a bootstrap in time");
    }
    this.unsubscribe = this.client.onChange(() => this.events.emit(ProviderEvents.ConfigurationChanged, {}));
  }

  async onClose(): Promise<void> {
    this.unsubscribe?.();
    await this.client.close();
  }

  resolveBooleanEvaluation(key: string, fallback: boolean, context: EvaluationContext) {
    return Promise.resolve(this.resolve(key, fallback, context));
  }

  resolveStringEvaluation(key: string, fallback: string, context: EvaluationContext) {
    return Promise.resolve(this.resolve(key, fallback, context));
  }

  resolveNumberEvaluation(key: string, fallback: number, context: EvaluationContext) {
    return Promise.resolve(this.resolve(key, fallback, context));
  }

  resolveObjectEvaluation<T extends JsonValue>(key: string, fallback: T, context: EvaluationContext) {
    return Promise.resolve(this.resolve(key, fallback, context));
  }

  private resolve<T>(key: string, fallback: T, context: EvaluationContext): ResolutionDetails<T> {
    const d = this.client.details(key, context, fallback);
    const flagMetadata: Record<string, string | number> = {};
    if (d.ruleId !== null) flagMetadata.ruleId = d.ruleId;
    if (d.flagVersion !== null) flagMetadata.flagVersion = d.flagVersion;
    if (d.errorCode !== null) {
      return {
        value: fallback,
        reason: "ERROR",
        errorCode: d.errorCode as ErrorCode,
        errorMessage: d.errorMessage ?? undefined,
        flagMetadata,
      };
    }
    return { value: d.value as T, variant: d.variant ?? undefined, reason: d.reason, flagMetadata };
  }
}
