// Drives the InstantSearch page (page.html + app.bundle.js) in Chromium through
// Playwright, as a shopper would: it types, clicks and picks, and after each step
// records what the page shows. Prints one JSON object: { steps: [{ name, ...shown }] }.
// tests/search_clients.rs checks every step against the mirror.
//
// Usage: node drive.mjs <page url> <chromium executable>
import { chromium } from "playwright-core";

const [pageUrl, executablePath] = process.argv.slice(2);
if (!pageUrl || !executablePath) {
  console.error("usage: node drive.mjs <page url> <chromium executable>");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const page = await browser.newPage();
const errors = [];
page.on("pageerror", (error) => errors.push(String(error)));
page.on("console", (message) => {
  if (message.type() === "error") errors.push(message.text());
});

// Searches in flight: a step is over when none has been for a while.
let inFlight = 0;
let lastChange = Date.now();
const isSearch = (request) => request.url().startsWith("http");
page.on("request", (request) => {
  if (isSearch(request)) {
    inFlight += 1;
    lastChange = Date.now();
  }
});
const done = (request) => {
  if (isSearch(request)) {
    inFlight -= 1;
    lastChange = Date.now();
  }
};
page.on("requestfinished", done);
page.on("requestfailed", done);

async function settle() {
  const started = Date.now();
  // InstantSearch sends its request right after the event: give it time to start.
  await page.waitForTimeout(100);
  while (inFlight > 0 || Date.now() - lastChange < 300) {
    if (Date.now() - started > 15000) throw new Error("the page never settled");
    await page.waitForTimeout(50);
  }
  // Rendering follows the answer.
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => resolve())));
}

// What the page shows now.
async function shown(name) {
  return {
    name,
    ...(await page.evaluate(() => {
      const texts = (selector) =>
        [...document.querySelectorAll(selector)].map((el) => el.textContent.trim());
      const hits = [...document.querySelectorAll("#hits .ais-Hits-item")].map((item) => ({
        id: Number(item.querySelector(".hit-id")?.textContent.trim()),
        name: item.querySelector(".hit-name")?.textContent.trim(),
        highlighted: [...item.querySelectorAll(".hit-name mark")].map((mark) => mark.textContent),
      }));
      const labels = texts("#vendor .ais-RefinementList-labelText");
      const counts = texts("#vendor .ais-RefinementList-count").map(Number);
      return {
        stats: texts("#stats .ais-Stats-text").join(" "),
        hits,
        vendors: labels.map((label, i) => [label, counts[i]]),
        price: {
          min: document.querySelector("#price .ais-RangeInput-input--min")?.placeholder ?? null,
          max: document.querySelector("#price .ais-RangeInput-input--max")?.placeholder ?? null,
        },
        page: texts("#pagination .ais-Pagination-item--selected").join(""),
        sort: document.querySelector("#sort select")?.value ?? null,
      };
    })),
  };
}

const steps = [];
try {
  await page.goto(pageUrl);
  await page.waitForSelector("#hits .ais-Hits-item", { timeout: 20000 });
  await settle();
  steps.push(await shown("initial"));

  // The searchable vendor list: its own facet search, with the page's parameters.
  await page.fill("#vendor .ais-SearchBox-input", "nor");
  await settle();
  steps.push(await shown("vendor search"));

  await page.click("#vendor .ais-RefinementList-checkbox");
  await settle();
  steps.push(await shown("vendor refined"));

  // Empty the main search box: a placeholder search within the refinement.
  await page.fill("#searchbox .ais-SearchBox-input", "");
  await settle();
  steps.push(await shown("query cleared"));

  await page.selectOption("#sort select", "offers:name:asc");
  await settle();
  steps.push(await shown("sorted by name"));

  // InstantSearch refines only within the bounds facetStats gave (1538 to 4426 here).
  await page.fill("#price .ais-RangeInput-input--min", "2000");
  await page.fill("#price .ais-RangeInput-input--max", "4000");
  await page.click("#price .ais-RangeInput-submit");
  await settle();
  steps.push(await shown("price range"));

  await page.click("#pagination .ais-Pagination-item--nextPage a");
  await settle();
  steps.push(await shown("next page"));

  await page.selectOption("#per-page select", "12");
  await settle();
  steps.push(await shown("12 per page"));

  await page.click("#clear button");
  await settle();
  steps.push(await shown("refinements cleared"));
} catch (error) {
  errors.push(String(error));
}
await browser.close();
console.log(JSON.stringify({ steps, errors }));
