// Drives the guidance page in headless Chromium (playwright-core + Debian's chromium) and feeds a
// recorded keypoint sequence through the page's own API instead of the camera.
// Usage: node tests/browser/guidance_page.mjs <page-url> <keypoints.json> <screenshot.png>
// keypoints.json: {"width", "height", "fps", "frames": [[[x_px, y_px, z], ...33], ...]}
// Prints one JSON line: {"reps": [...per frame], "initial": {...}, "final": {...}, "errors": [...]}.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [url, keypointsPath, screenshotPath] = process.argv.slice(2);
const rec = JSON.parse(readFileSync(keypointsPath, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url, { waitUntil: "load" });
  await page.evaluate(() => window.guidanceReady);
  const out = await page.evaluate(async (rec) => {
    const g = window.guidance;
    await g.start("squat", { imageWidth: rec.width, imageHeight: rec.height });
    const initial = g.snapshot();
    const reps = [];
    for (let i = 0; i < rec.frames.length; i++) {
      const kp = rec.frames[i].map((p) => [p[0] / rec.width, p[1] / rec.height, p[2] / rec.width]);
      await g.feed((i * 1000) / rec.fps, kp, { width: rec.width, height: rec.height });
      reps.push(Number(document.getElementById("reps").textContent));
    }
    return { initial, reps, final: g.snapshot(), guidance: document.getElementById("guidance").textContent,
      skeletonOpacity: getComputedStyle(document.getElementById("skeleton")).opacity };
  }, rec);
  await page.screenshot({ path: screenshotPath, fullPage: true });
  out.errors = errors;
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
