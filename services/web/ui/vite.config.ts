import { defineConfig } from "vite";

// Built into the Python package's static folder, which `lwm web` serves at /.
export default defineConfig({
  base: "/",
  build: { outDir: "../lwm/services/web/static", emptyOutDir: true },
});
