// Opens each report.html given on the command line in headless Chromium (Debian's, driven by
// playwright-core), saves a full-page screenshot into the folder named by SCREENSHOTS, and fails
// when the page logs a console error, throws, asks for anything but its own file, draws fewer
// charts than it declares, or looks blank (too few distinct colours, too little ink).
//
//   node report-browser.mjs RUN_NAME=PATH/report.html [...]
import { chromium } from "playwright-core";
import { PNG } from "pngjs";
import { readFileSync, mkdirSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const out = process.env.SCREENSHOTS;
mkdirSync(out, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // No network here: without these, Chromium's own background connections fail noisily.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = 0;
for (const arg of process.argv.slice(2)) {
  const [name, file] = arg.split("=");
  const url = pathToFileURL(file).href;
  const problems = [];
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console error: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  await page.route("**/*", (route) => {
    const u = route.request().url();
    if (u === url || u.startsWith(url + "#")) return route.continue();
    problems.push(`requested ${u}`);
    return route.abort();
  });
  await page.goto(url, { waitUntil: "load" });
  const dom = await page.evaluate(() => ({
    figures: document.querySelectorAll("figure").length,
    drawn: [...document.querySelectorAll("figure svg")].filter((s) => {
      const r = s.getBoundingClientRect();
      return r.width > 100 && r.height > 100 && s.querySelectorAll("polyline, rect, circle, polygon").length > 3;
    }).length,
    sections: [...document.querySelectorAll("section")].map((s) => s.id),
    height: document.documentElement.scrollHeight,
  }));
  const shot = join(out, `${name}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  await page.close();
  const png = PNG.sync.read(readFileSync(shot));
  const colours = new Set();
  let ink = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    const [r, g, b] = [png.data[i], png.data[i + 1], png.data[i + 2]];
    colours.add((r << 16) | (g << 8) | b);
    if (r < 235 || g < 235 || b < 235) ink++;
  }
  const inkShare = ink / (png.width * png.height);
  if (dom.figures === 0 || dom.drawn !== dom.figures) problems.push(`${dom.drawn} of ${dom.figures} charts drawn`);
  if (colours.size < 64) problems.push(`only ${colours.size} distinct colours: blank page?`);
  if (inkShare < 0.03) problems.push(`only ${(100 * inkShare).toFixed(1)}% of the page is not white`);
  console.log(`${name}: ${png.width}x${png.height} px, ${dom.figures} charts, ${colours.size} colours, ` +
              `${(100 * inkShare).toFixed(1)}% ink, sections ${dom.sections.join(" ")} -> ${shot}`);
  for (const p of problems) console.log(`  FAIL ${name}: ${p}`);
  failed += problems.length > 0;
}
await browser.close();
if (failed) {
  console.log(`${failed} report(s) failed the browser check`);
  process.exit(1);
}
