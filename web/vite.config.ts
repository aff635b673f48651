// Vite builds the app into dist/, which `vidpipe serve` embeds. Preact's JSX runtime comes from
// tsconfig's jsxImportSource, so no framework plugin (and no Babel) is needed.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Hashed names under assets/ can be cached forever; index.html is the only entry.
    assetsDir: "assets",
    sourcemap: false,
    target: "es2022",
  },
  server: {
    // `npm run dev` against a running `vidpipe serve` on the default port.
    proxy: {
      "/v1": { target: "http://127.0.0.1:8080", ws: true },
      "/app-config.json": "http://127.0.0.1:8080",
    },
  },
});
