// The browser bundles (esbuild): the console, the recording player, the SPICE console and the
// dashboard, minified, one file each, with source maps. Usage: node build.mjs [--log-level=X]
import { readFile } from "node:fs/promises";
import * as esbuild from "esbuild";

const BANNER = "/*! VDI portal. Bundles noVNC (MPL-2.0, https://github.com/novnc/noVNC), its " +
  "vendored pako (MIT), spice-html5 (LGPL-3.0, https://gitlab.freedesktop.org/spice/spice-html5) " +
  "and Chart.js (MIT, https://www.chartjs.org) with @kurkle/color (MIT). */";

// What of noVNC is never used behind the portal is left out, which the console's first load
// feels (less to fetch, compile and run, and no media pipeline started):
// - the H.264 probe, a real WebCodecs decode that noVNC runs when its modules load, and the
//   H.264 decoder: the portal's VNC servers (QEMU) never offer H.264, so it is never asked for;
// - the security types' crypto (RA2, VNC password, Apple and MSLogon DH): the proxy signs in to
//   the desktop itself and offers the browser security None only (vdi/console/vnc_auth.py).
// Each stub fails loudly if it is ever reached; the build refuses a noVNC in which any of
// these moved.
const H264_PROBE = "supportsWebCodecsH264Decode = await _checkWebCodecsH264DecodeSupport();";
const NOT_HERE = (what) => `throw new Error("${what} is not offered behind the VDI portal");`;
const STUBS = {
  "core/decoders/h264.js":
    `export default class H264Decoder { decodeRect() { ${NOT_HERE("H.264")} } }`,
  "core/ra2.js":
    `export default class RSAAESAuthenticationState { constructor() { ${NOT_HERE("RA2 security")} } }`,
  "core/crypto/crypto.js":
    `export default new Proxy({}, { get() { ${NOT_HERE("This security type")} } });`,
};

const noVncTrimmed = {
  name: "novnc-trimmed",
  setup(build) {
    const stubbed = new Set();
    build.onLoad({ filter: /@novnc[\\/]novnc[\\/]core[\\/]/ }, async (args) => {
      const path = args.path.replaceAll("\\", "/");
      const stub = Object.entries(STUBS).find(([name]) => path.endsWith(`/@novnc/novnc/${name}`));
      if (stub) {
        stubbed.add(stub[0]);
        return { contents: stub[1], loader: "js" };
      }
      if (!path.endsWith("/@novnc/novnc/core/util/browser.js")) { return undefined; }
      const source = await readFile(args.path, "utf8");
      if (!source.includes(H264_PROBE)) {
        throw new Error(`${args.path}: noVNC's H.264 probe changed; look at build.mjs again`);
      }
      return { contents: source.replace(H264_PROBE, ""), loader: "js" };
    });
    build.onEnd((result) => {
      const missing = Object.keys(STUBS).filter((name) => !stubbed.has(name));
      if (result.errors.length === 0 && missing.length) {
        return { errors: [{ text: `noVNC no longer imports ${missing.join(", ")}: look at build.mjs again` }] };
      }
      return undefined;
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
  plugins: [noVncTrimmed],
  logLevel: logLevel || "info",
});
