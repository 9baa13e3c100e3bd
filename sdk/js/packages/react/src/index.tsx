/**
 * React bindings: FlagsiteProvider and the hooks useFeatureFlag, useVariant, useFlagDetails.
 * The hooks read a FlagsiteWebClient through useSyncExternalStore. During server rendering and
 * hydration they read the bootstrap payload the server rendered with (getServerSnapshot), so
 * the first client render produces the server's markup exactly: no flicker, no mismatch.
 */
import {
  type BootstrapPayload,
  type Context,
  FlagsiteWebClient,
  type FlagValue,
  type Snapshot,
  type WebOptions,
} from "@flagsite/web";
import { createContext, type ReactNode, useContext, useEffect, useState, useSyncExternalStore } from "react";

export type { BootstrapPayload, Context, FlagValue, Snapshot } from "@flagsite/web";
export { FlagsiteWebClient, readBootstrap } from "@flagsite/web";

const ClientContext = createContext<FlagsiteWebClient | null>(null);

export type FlagsiteProviderProps = Partial<Omit<WebOptions, "bootstrap">> & {
  /** A client made outside React (it is then not closed on unmount). */
  client?: FlagsiteWebClient;
  /** The payload the server rendered with (@flagsite/node's bootstrapPayload). */
  bootstrap?: BootstrapPayload | null;
  children?: ReactNode;
};

export function FlagsiteProvider({ client, children, ...options }: FlagsiteProviderProps) {
  const [owned] = useState(
    () =>
      client ??
      new FlagsiteWebClient({ ...options, clientKey: options.clientKey ?? "", baseUrl: options.baseUrl ?? "" }),
  );
  useEffect(() => {
    owned.start();
    return client ? undefined : () => owned.close();
  }, [owned, client]);
  const contextJson = JSON.stringify(options.context ?? null);
  useEffect(() => {
    if (options.context && JSON.stringify(owned.getContext()) !== contextJson) void owned.setContext(options.context);
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the JSON stands for the context
  }, [owned, contextJson]);
  return <ClientContext.Provider value={owned}>{children}</ClientContext.Provider>;
}

const NO_CLIENT: Snapshot = Object.freeze({ version: null, flags: Object.freeze({}), source: "none" });
const noSubscription = () => () => {};
const noSnapshot = () => NO_CLIENT;

/** The client of the nearest FlagsiteProvider, null outside one. */
export function useFlagsiteClient(): FlagsiteWebClient | null {
  return useContext(ClientContext);
}

/** The current snapshot of every flag value; re-renders when it changes. */
export function useFlagsSnapshot(): Snapshot {
  const client = useContext(ClientContext);
  return useSyncExternalStore(
    client?.subscribe ?? noSubscription,
    client?.getSnapshot ?? noSnapshot,
    client?.getInitialSnapshot ?? noSnapshot,
  );
}

function useExposure(client: FlagsiteWebClient | null, key: string, variant: string | null): void {
  useEffect(() => {
    if (client !== null && variant !== null) client.recordExposure(key);
  }, [client, key, variant]);
}

function pick<T>(d: FlagValue | undefined, fallback: T): T {
  if (d === undefined || d.errorCode !== null || d.value === null || d.value === undefined) return fallback;
  if (fallback !== null && fallback !== undefined && typeof fallback !== "object" && typeof d.value !== typeof fallback) {
    return fallback;
  }
  return d.value as T;
}

/** The flag's value, or `fallback` when it is unknown, of another type or failed. */
export function useFeatureFlag<T>(key: string, fallback: T): T {
  const client = useContext(ClientContext);
  const d = useFlagsSnapshot().flags[key];
  useExposure(client, key, d?.variant ?? null);
  return pick(d, fallback);
}

/** The variant name served, or `fallback`. */
export function useVariant(key: string, fallback: string | null = null): string | null {
  const client = useContext(ClientContext);
  const d = useFlagsSnapshot().flags[key];
  useExposure(client, key, d?.variant ?? null);
  return d?.variant ?? fallback;
}

/** Value, variant, reason and error of one flag; null when the flag is unknown. */
export function useFlagDetails(key: string): FlagValue | null {
  const client = useContext(ClientContext);
  const d = useFlagsSnapshot().flags[key];
  useExposure(client, key, d?.variant ?? null);
  return d ?? null;
}
