export { consoleLogger, describe, type Logger } from "./log.js";
export { backoffDelay, readStream, StreamRefused, type StreamOptions } from "./sse.js";
