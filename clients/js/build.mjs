// The classic-script build: dist/analytics.min.js, one global (AnalyticsClient), minified by esbuild.
// `npm run build` writes it; `node build.mjs OUTFILE` writes it elsewhere (the test that it is current).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = fileURLToPath(new URL(".", import.meta.url));
const { name, version } = JSON.parse(readFileSync(`${here}package.json`, "utf8"));

await build({
  absWorkingDir: here,
  entryPoints: ["analytics.js"],
  outfile: process.argv[2] || "dist/analytics.min.js",
  bundle: true,
  format: "iife",
  globalName: "AnalyticsClient",
  target: "es2018",
  minify: true,
  legalComments: "none",
  // strict, as the ES module is, whatever tsconfig.json (which is for the type check) says
  tsconfigRaw: { compilerOptions: { alwaysStrict: true } },
  banner: { js: `/*! ${name} ${version}: window.AnalyticsClient, see README.md */` },
  logLevel: "warning",
});
