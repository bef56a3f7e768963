import { defineConfig } from 'vite';

// The gateway serves dist/ at "/" and the API under /api on the same origin. For `npm run dev`,
// LEADFLOW_GATEWAY_URL points the dev server's proxy at a running gateway instead.
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: process.env.LEADFLOW_GATEWAY_URL
      ? { '/api': { target: process.env.LEADFLOW_GATEWAY_URL, changeOrigin: true } }
      : undefined,
  },
});
