export interface StartedServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The HTTP port; sync socket +1, SSE +2, shard sockets +3. */
  port: number;
  adminToken: string;
  pid: number | undefined;
  stop(): Promise<void>;
  /** The tail of the server's stdout and stderr. */
  logs(): string;
}

export function resolveBin(explicit?: string): string;
export function freePortBlock(count?: number): Promise<number>;
export function startServer(options?: {
  bin?: string;
  env?: Record<string, string>;
  readyTimeoutMs?: number;
  port?: number;
  /** Data directory to use and keep (default: a temporary one, removed by stop()). */
  dir?: string;
  adminToken?: string;
}): Promise<StartedServer>;
