// Test runner configuration: unit tests beside the code in src/, end-to-end tests in test/.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    reporters: ["default", "./test/summary-reporter.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // Vitest runs one file at a time on a 2-core machine (its default is one worker fewer than the
    // cores). Most files wait on what they started (hubs, CLI processes, brokers, browsers) more
    // than they compute, so two at once overlap those waits.
    maxWorkers: 2,
    server: {
      deps: {
        // graphql has no `exports` map: Node loads its CommonJS build for graphql-ws while Vite
        // gives the tests its ESM build — two copies whose schemas the other refuses. Inlined,
        // graphql-ws resolves graphql as the tests do: one copy, as in production.
        inline: ["graphql-ws"],
      },
    },
  },
});
