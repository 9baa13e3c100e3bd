export { FlagsiteClient, type FlagsiteOptions } from "./client.js";
export * from "./engine/index.js";
export { DEFAULT_EVENT_OPTIONS, type EventOptions, type EventStats } from "./events.js";
export { FlagsiteProvider } from "./openfeature.js";
export { type BootstrapFlag, type BootstrapPayload, bootstrapPayload, bootstrapScript, serializeBootstrap } from "./ssr.js";
