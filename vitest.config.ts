// Test runner configuration: unit tests beside the code in src/, end-to-end tests in test/.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    reporters: ["default", "./test/summary-reporter.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
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
