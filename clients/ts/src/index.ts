/**
 * `@pylon/client`: the TypeScript client for pylon. React users also import
 * `@pylon/client/react` for `useShard`.
 */

export { Backoff, type BackoffOptions } from "./backoff.js";
export { type ClientOptions, type PylonClient, createClient } from "./client.js";
export {
  type CompatSnapshot,
  FrameKind,
  type ServerFrame,
  type WireFormat,
  decodeBinarySnapshot,
  decodeMsgpackFrame,
  decodeTextSnapshot,
  encodeBaseAck,
  encodeJsonInput,
  encodeMsgpackInput,
  readU64BE,
} from "./codec.js";
export {
  type ArrayPatch,
  type ObjectPatch,
  type Patch,
  type PatchV2,
  PatchV2Tag,
  type ReplacePatch,
  type Value,
  applyPatch,
  applyPatchV2,
} from "./delta.js";
export {
  DEFAULT_HTTP_PORT,
  DEFAULT_WS_PORT,
  type EndpointOptions,
  bearerProtocol,
  resolveOrigin,
  shardSocketUrl,
} from "./endpoints.js";
export {
  type ChangeEvent,
  type CursorPage,
  EntityApi,
  type ListPage,
  type PullPage,
  type Row,
  type TransactOp,
  type Where,
  entities,
  pullChanges,
  transact,
} from "./entities.js";
export {
  CloseCode,
  type CloseCodeName,
  DeltaError,
  PylonError,
  ResyncRequiredError,
  ShardCloseError,
  closeCodeName,
  isCloseCode,
  isRetryableClose,
  parseErrorBody,
} from "./errors.js";
export {
  type GuestSession,
  type HttpOptions,
  type ShardInfo,
  createShard,
  guestSession,
  postInput,
  requestJson,
  shardInfo,
} from "./http.js";
export { InterpolationBuffer, type InterpolationOptions, type Lerp, lerpSnapshot } from "./interpolation.js";
export { LatencyTracker, type LatencyStats } from "./latency.js";
export {
  type FindMatchOptions,
  type FindMatchRequest,
  type MatchAssignment,
  type PickRegionOptions,
  type RegionChoice,
  type RegionInfo,
  type TicketStatus,
  cancelTicket,
  findMatch,
  interpretTicket,
  pickRegion,
  waitForTicket,
} from "./matchmaker.js";
export { type PendingInput, type PredictFn, Predictor } from "./prediction.js";
export { PylonRealtime, type RealtimeEvents, type RealtimeOptions, type SnapshotInfo } from "./realtime.js";
export { type ShardClient, type UseShardOptions, type UseShardReturn, connectShard } from "./shard.js";
export {
  type CloseInfo,
  type DeltaFormat,
  type ShardConnectionOptions,
  type ShardStats,
  type Transport,
  stoppedCloseCode,
} from "./shard-core.js";
export { SseParser, type SseEvent, readEventStream } from "./sse.js";
export { type PresenceEvent, SyncConnection, type SyncOptions, type TopicMessage, parseSyncFrame, subscribeChanges } from "./sync.js";
export { type WebSocketCtor, type WebSocketLike } from "./transport.js";
