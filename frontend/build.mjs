// The browser bundles (esbuild): the console, the recording player, the SPICE console and the
// dashboard, minified, one file each, with source maps. Usage: node build.mjs [--log-level=X]
import { readFile } from "node:fs/promises";
import * as esbuild from "esbuild";

const BANNER = "/*! VDI portal. Bundles noVNC (MPL-2.0, https://github.com/novnc/noVNC), its " +
  "vendored pako (MIT), spice-html5 (LGPL-3.0, https://gitlab.freedesktop.org/spice/spice-html5) " +
  "and Chart.js (MIT, https://www.chartjs.org) with @kurkle/color (MIT). */";

// noVNC asks the browser whether it can decode H.264 with a top-level await (a real decode
// through WebCodecs) when its modules load: nothing after it in the bundle, the console's own
// code included, ran until the media stack answered (30-40 ms on a page's first load here).
// The answer is only needed once a server offers H.264, so the probe runs beside the rest.
const H264_PROBE = "supportsWebCodecsH264Decode = await _checkWebCodecsH264DecodeSupport();";
const H264_BESIDE = "_checkWebCodecsH264DecodeSupport().then(" +
  "(supported) => { supportsWebCodecsH264Decode = supported; });";

const probeBeside = {
  name: "novnc-h264-probe-beside",
  setup(build) {
    build.onLoad({ filter: /@novnc[\\/]novnc[\\/]core[\\/]util[\\/]browser\.js$/ }, async (args) => {
      const source = await readFile(args.path, "utf8");
      if (!source.includes(H264_PROBE)) {
        throw new Error(`${args.path}: noVNC's H.264 probe changed; look at build.mjs again`);
      }
      return { contents: source.replace(H264_PROBE, H264_BESIDE), loader: "js" };
    });
  },
};

const logLevel = process.argv.find((arg) => arg.startsWith("--log-level="))?.split("=")[1];

await esbuild.build({
  entryPoints: ["src/console.js", "src/replay.js", "src/spice.js", "src/dashboard.js"],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  sourcemap: true,
  outdir: "dist/vdi",
  banner: { js: BANNER },
  plugins: [probeBeside],
  logLevel: logLevel || "info",
});
