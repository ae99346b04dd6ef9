import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The live test starts a real server and plays a few seconds against it.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
