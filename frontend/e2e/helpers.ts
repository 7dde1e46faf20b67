import AxeBuilder from "@axe-core/playwright";
import { expect, type Page, type TestInfo } from "@playwright/test";

export const API_URL = process.env.BASALT_E2E_API_URL ?? "http://localhost:8001";
export const RECEIVER_URL = process.env.BASALT_E2E_RECEIVER_URL ?? "";
export const REAUTH_SECONDS = Number(process.env.BASALT_E2E_REAUTH_SECONDS ?? 300);
export const PASSWORD = "correct horse battery";

let counter = 0;
/** A fresh address per test and run. */
export function newEmail(what: string): string {
  counter += 1;
  return `${what}-${Date.now()}-${counter}@example.com`;
}

export async function register(page: Page, email: string, password = PASSWORD) {
  await page.goto("/register");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Items" })).toBeVisible();
}

export async function signIn(page: Page, email: string, password = PASSWORD) {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** The access token of the page's session (for seeding through the API directly). */
export async function token(page: Page): Promise<string> {
  const raw = await page.evaluate(() => sessionStorage.getItem("basalt.session"));
  if (!raw) throw new Error("not signed in");
  return (JSON.parse(raw) as { token: string }).token;
}

/** No serious or critical accessibility violation (axe-core) on the page as it is, and a
 * screenshot of it kept with the test's output. */
export async function checkPage(page: Page, info: TestInfo, name: string) {
  await page.screenshot({ path: info.outputPath(`${name}.png`), fullPage: true });
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(
    bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    `accessibility of ${name}`,
  ).toEqual([]);
}
