export {
  type BootstrapPayload,
  type Context,
  FlagsiteWebClient,
  type FlagValue,
  readBootstrap,
  type Snapshot,
  type WebOptions,
} from "./client.js";
export { FlagsiteWebProvider } from "./openfeature.js";
