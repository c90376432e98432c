// Drives the system Chromium through the Step Functions view, for tests/test_ui_browser.py.
//
//   node stepfunctions_view.js '<json config>'
//
// config: {baseUrl, username, password, dagId, outDir, userDataDir, timeoutMs}
// Logs in on the Simple auth manager's login page, opens the DAG's "Step Functions" tab in the
// Airflow UI, reads the graph inside the tab's iframe, downloads the definition, waits for the
// deployed comparison, and takes screenshots. Prints one JSON object (what it saw) on stdout.
// Every wait is bounded; the browser is closed on success and failure (and by Playwright on SIGTERM).

"use strict";

const path = require("path");
const { chromium } = require("playwright-core");

const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-default-apps",
  "--disable-extensions",
  "--metrics-recording-only",
  "--no-default-browser-check",
];

async function main() {
  const config = JSON.parse(process.argv[2]);
  const wait = config.timeoutMs || 30000;
  const seen = { steps: [] };
  const step = (name) => seen.steps.push(name);

  const context = await chromium.launchPersistentContext(config.userDataDir, {
    executablePath: config.executablePath || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1600, height: 1300 },
    acceptDownloads: true,
    timeout: wait,
  });
  context.setDefaultTimeout(wait);
  context.setDefaultNavigationTimeout(wait);
  try {
    const page = context.pages()[0] || (await context.newPage());
    const dagTab = `/dags/${encodeURIComponent(config.dagId)}/plugin/stepfunctions`;

    // 1. Log in (the Simple auth manager's login page), then land on the DAG's Step Functions tab.
    await page.goto(`${config.baseUrl}/auth/login?next=${encodeURIComponent(dagTab)}`);
    await page.locator('input[name="username"]').fill(config.username);
    await page.locator('input[name="password"]').fill(config.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL((url) => url.pathname === dagTab);
    step("logged in");

    // 2. The tab embeds the plugin's page in an iframe.
    const frame = page.frameLocator('iframe[title="Step Functions"]');
    await frame.locator("#status").waitFor();
    seen.status = await frame.locator("#status").getAttribute("data-status");
    seen.dagIdShown = (await frame.locator("#dag-id").textContent()).trim();
    // States are nodes; a Parallel state is a cluster titled with its name.
    seen.nodes = (await frame.locator("#svg svg g.node text, #svg svg g.cluster > text").allTextContents()).map((t) =>
      t.trim(),
    );
    seen.edgeLabels = (await frame.locator("#svg svg g.edge text").allTextContents()).map((t) => t.trim());
    seen.warnings = (await frame.locator("#warnings li").allTextContents()).map((t) => t.trim());
    seen.tabs = (await page.locator('a[href*="/plugin/stepfunctions"]').allTextContents()).map((t) => t.trim());
    step("view shown");

    // 3. The deployed comparison (fetched by the page; bounded server side).
    await frame.locator("#deployed-status[data-state]").waitFor();
    seen.deployedState = await frame.locator("#deployed-status").getAttribute("data-state");
    seen.deployedText = (await frame.locator("#deployed-status").textContent()).replace(/\s+/g, " ").trim();
    step("deployed compared");

    // 4. Download the definition with the page's button.
    const [download] = await Promise.all([page.waitForEvent("download"), frame.locator("#download-definition").click()]);
    seen.downloadName = download.suggestedFilename();
    seen.downloadPath = path.join(config.outDir, "downloaded-" + seen.downloadName);
    await download.saveAs(seen.downloadPath);
    step("definition downloaded");

    // 5. Screenshots: the Airflow UI with the tab, and the whole view page on its own.
    await page.waitForTimeout(300); // let fonts and the SVG settle
    seen.screenshot = path.join(config.outDir, "stepfunctions-view.png");
    await page.screenshot({ path: seen.screenshot });
    const standalone = await context.newPage();
    await standalone.goto(`${config.baseUrl}/stepfunctions/dags/${encodeURIComponent(config.dagId)}`);
    await standalone.locator("#deployed-status[data-state]").waitFor();
    seen.fullPageScreenshot = path.join(config.outDir, "stepfunctions-view-full.png");
    await standalone.screenshot({ path: seen.fullPageScreenshot, fullPage: true });

    // 6. The overview (Browse menu entry) lists the DAG as exportable.
    await standalone.goto(`${config.baseUrl}/stepfunctions/`);
    seen.overviewStatus = await standalone.locator(`tr[data-dag-id="${config.dagId}"]`).getAttribute("data-status");
    await standalone.screenshot({ path: path.join(config.outDir, "stepfunctions-overview.png") });
    step("screenshots taken");
  } finally {
    await context.close();
  }
  process.stdout.write(JSON.stringify(seen) + "\n");
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
