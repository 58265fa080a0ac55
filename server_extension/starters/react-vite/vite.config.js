// The preview serves this app at the root of an origin of its own
// (CODEPILOT_PREVIEW_URL), so Vite's defaults work: no base path, and the hot-reload
// websocket follows the page's own host. Vite answers "Blocked request" to hosts other
// than localhost and IP addresses, so the preview's own host is allowed by name.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const previewHost = process.env.CODEPILOT_PREVIEW_URL
  ? new URL(process.env.CODEPILOT_PREVIEW_URL).hostname
  : undefined;

export default defineConfig({
  plugins: [react()],
  server: {
    host: "127.0.0.1",
    port: Number(process.env.PORT || 3000),
    strictPort: true,
    allowedHosts: previewHost ? [previewHost] : [],
  },
});
