/** Where the SDKs report trouble; they never throw it at the caller. */
export interface Logger {
  debug(message: string): void;
  warn(message: string): void;
}

export const consoleLogger: Logger = {
  debug: () => {},
  warn: (message) => console.warn(`flagsite: ${message}`),
};

export function describe(exc: unknown): string {
  return exc instanceof Error ? exc.message : String(exc);
}
