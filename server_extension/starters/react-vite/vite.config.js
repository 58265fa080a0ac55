// Served through the preview proxy: the public base path is CODEPILOT_PREVIEW_URL
// (the proxy keeps that prefix), and the hot-reload websocket follows the page's own
// host and that base, so it goes through the same proxy.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  base: process.env.CODEPILOT_PREVIEW_URL || "/",
  plugins: [react()],
  server: {
    host: "127.0.0.1",
    port: Number(process.env.PORT || 3000),
    strictPort: true,
    allowedHosts: true,
  },
});
