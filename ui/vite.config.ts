// Builds the web UI (ui/) into dist/ui, which the hub serves at / and /ui/ (src/api/http/ui-routes.ts).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  // Assets live under /ui/ so that they can never shadow a route of the hub's API.
  base: "/ui/",
  logLevel: "warn",
  build: {
    outDir: fileURLToPath(new URL("../dist/ui", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 1024,
    // Rolldown's note on plugin timings is noise in every `npm run build`.
    rolldownOptions: { checks: { pluginTimings: false } },
  },
});
