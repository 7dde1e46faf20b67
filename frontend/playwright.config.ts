import { defineConfig } from "@playwright/test";

// Run by scripts/test (scripts/lib/frontend.sh), which starts PostgreSQL, Redis, the host, the
// worker, a webhook receiver and this app's production build, and passes their URLs in.
// Debian's chromium is used: Playwright's own browser download cannot work on these machines.
export default defineConfig({
  testDir: "e2e",
  outputDir: "test-results/artifacts",
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"], ["json", { outputFile: "test-results/results.json" }]],
  use: {
    baseURL: process.env.BASALT_E2E_BASE_URL ?? "http://localhost:5173",
    headless: true,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.BASALT_E2E_CHROMIUM ?? "/usr/bin/chromium",
      // As root (CI), Chromium's sandbox cannot start.
      args: ["--no-sandbox"],
    },
  },
});
