// Starts a real pylon server for the live test and the load script: `pylon dev` on a block
// of four free loopback ports (HTTP, sync socket +1, SSE +2, shard sockets +3), its data in
// a temporary directory, ready once /health answers (polled with a deadline).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The server binary: `explicit`, else $PYLON_BIN, else the workspace's release build. */
export function resolveBin(explicit) {
  const bin = resolve(packageRoot, explicit ?? process.env.PYLON_BIN ?? "../../target/release/pylon");
  if (!existsSync(bin)) {
    throw new Error(
      `pylon server binary not found at ${bin}: build it first (cargo build --release -p pylon, from the repository root) or set PYLON_BIN to a built binary`,
    );
  }
  return bin;
}

function portFree(port) {
  return new Promise((done) => {
    const s = createServer();
    s.once("error", () => done(false));
    s.listen({ port, host: "127.0.0.1", exclusive: true }, () => s.close(() => done(true)));
  });
}

/** A base port P with P..P+count-1 all free on 127.0.0.1. */
export async function freePortBlock(count = 4) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await portFree(base + i);
    if (ok) return base;
  }
  throw new Error("no block of free ports found");
}

/**
 * Starts `pylon dev`. Returns { url, port, adminToken, pid, stop(), logs() }.
 * `env` adds variables (PYLON_REGION, PYLON_REGIONS, ...); `port`, `dir` and `adminToken`
 * given again restart a stopped server on the same ports and data.
 */
export async function startServer({ bin, env = {}, readyTimeoutMs = 30_000, port, dir: keptDir, adminToken: token } = {}) {
  const binary = resolveBin(bin);
  const base = port ?? (await freePortBlock(4));
  // A given directory is the caller's (a restart reuses it); one made here goes with stop().
  const dir = keptDir ?? mkdtempSync(join(tmpdir(), "pylon-client-"));
  const adminToken = token ?? `test-admin-${randomBytes(16).toString("hex")}`;
  const child = spawn(binary, ["dev"], {
    cwd: dir,
    env: {
      ...process.env,
      PYLON_PORT: String(base),
      PYLON_HOST: "127.0.0.1",
      PYLON_ADMIN_TOKEN: adminToken,
      PYLON_DB_PATH: join(dir, "pylon.db"),
      PYLON_SESSION_DB: join(dir, "sessions.db"),
      PYLON_LOG: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exited = null;
  const exit = new Promise((done) => child.once("exit", (code, signal) => done((exited = { code, signal }))));

  const url = `http://127.0.0.1:${base}`;
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exit;
      clearTimeout(timer);
    }
    if (!keptDir) rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`pylon exited during start (${JSON.stringify(exited)}):\n${output}`);
    }
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`pylon did not answer /health within ${readyTimeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url, port: base, adminToken, pid: child.pid, stop, logs: () => output };
}
