// Bundle the console into task_scheduler/console/static (or the directory given), with
// every asset the service serves: nothing is loaded from outside it.
//   node build.mjs [outdir]
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "..", "task_scheduler", "console", "static"));
const vendor = join(out, "vendor");
mkdirSync(vendor, { recursive: true });

await build({
  entryPoints: [join(here, "src", "main.tsx")],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  legalComments: "none",
  outfile: join(out, "console.js"),
  // Deterministic output, so a test can compare a fresh build with the committed one.
  sourcemap: false,
  logLevel: "warning",
});

for (const file of ["index.html", "console.css", "favicon.svg"]) {
  copyFileSync(join(here, "public", file), join(out, file));
}
const copies = [
  ["swagger-ui-dist/swagger-ui-bundle.js", "swagger-ui-bundle.js"],
  ["swagger-ui-dist/swagger-ui.css", "swagger-ui.css"],
  ["swagger-ui-dist/LICENSE", "swagger-ui.LICENSE"],
  ["redoc/bundles/redoc.standalone.js", "redoc.standalone.js"],
  ["redoc/LICENSE", "redoc.LICENSE"],
];
for (const [from, to] of copies) {
  copyFileSync(join(here, "node_modules", from), join(vendor, to));
}
// ReDoc's "powered by" badge is the one image it loads from a CDN: point it at our own icon.
const redoc = join(vendor, "redoc.standalone.js");
const badge = "https://cdn.redoc.ly/redoc/logo-mini.svg";
const redocText = readFileSync(redoc, "utf8");
if (!redocText.includes(badge)) throw new Error(`redoc.standalone.js no longer names ${badge}: check what it loads`);
writeFileSync(redoc, redocText.replace(badge, "/console/static/favicon.svg"));
// The licences of what console.js bundles, for whoever redistributes it.
const bundled = ["preact", "@fullcalendar/core", "luxon"];
writeFileSync(
  join(out, "console.LICENSES.txt"),
  bundled
    .map((name) => {
      const dir = join(here, "node_modules", name);
      const file = ["LICENSE", "LICENSE.md"].map((f) => join(dir, f)).find((f) => {
        try {
          readFileSync(f);
          return true;
        } catch {
          return false;
        }
      });
      return `== ${name} ==\n${file ? readFileSync(file, "utf8") : "MIT"}\n`;
    })
    .join("\n"),
);
