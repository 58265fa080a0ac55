// The preview serves this app at the root of an origin of its own
// (CODEPILOT_PREVIEW_URL), so Vite's defaults work: no base path, and the hot-reload
// websocket follows the page's own host.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  server: {
    host: "127.0.0.1",
    port: Number(process.env.PORT || 3000),
    strictPort: true,
  },
});
