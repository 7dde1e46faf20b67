import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { expect, type Page, test } from "@playwright/test";
import { API_URL, checkPage, newEmail, PASSWORD, register, signIn, token } from "./helpers";

/** A loopback webhook receiver (the worker delivers to it: the test host allows private
 * targets), answering 204 and keeping what it received. */
async function receiver(): Promise<{ url: string; received: string[]; server: Server }> {
  const received: string[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      received.push(body);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks`, received, server };
}

/** Fills the password prompt when the page asks for it (the sign-in is older than the
 * re-authentication window). */
async function passwordIfAsked(page: Page, password: string) {
  const prompt = page.getByLabel("Your password");
  if (await prompt.isVisible()) await prompt.fill(password);
}

test("a new user does everything the API offers", async ({ page, request }, info) => {
  const email = newEmail("journey");
  await page.goto("/sign-in");
  await checkPage(page, info, "sign-in");
  await page.getByRole("link", { name: "Register" }).click();
  await checkPage(page, info, "register");
  await register(page, email);
  await checkPage(page, info, "items-empty");

  // Items: create, open, edit, delete.
  await page.getByLabel("Title").fill("First item");
  await page.getByLabel("Description").fill("made in the browser");
  await page.getByRole("button", { name: "Create item" }).click();
  await page.getByRole("link", { name: "First item" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "First item" })).toBeVisible();
  await checkPage(page, info, "item");
  await page.getByLabel("Title").fill("First item, renamed");
  await page.getByRole("button", { name: "Save changes" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Saved." })).toBeVisible();
  await expect(page.getByRole("heading", { level: 1, name: "First item, renamed" })).toBeVisible();
  await page.getByRole("button", { name: "Delete item" }).click();
  await page.getByRole("button", { name: "Yes, delete it" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Items" })).toBeVisible();
  await expect(page.getByText("No items yet.")).toBeVisible();

  // A validation problem shows the API's words and the request id.
  await page.getByLabel("Title").fill("two\nlines?");
  await page.getByLabel("Title").fill(" ");
  await page.getByRole("button", { name: "Create item" }).click();
  const problem = page.getByRole("alert");
  await expect(problem).toContainText("title");
  await expect(problem).toContainText("Request id:");

  // API keys: created and shown once, used, listed with its last use, revoked.
  await page.getByRole("link", { name: "API keys" }).click();
  await page.getByLabel("Key name").fill("laptop");
  await passwordIfAsked(page, PASSWORD);
  await page.getByRole("button", { name: "Create key" }).click();
  const shown = page.getByTestId("new-key");
  await expect(shown).toBeVisible();
  const key = (await shown.textContent()) ?? "";
  expect(key.length).toBeGreaterThan(20);
  await expect(page.getByRole("button", { name: "Copy key" })).toBeVisible();
  await checkPage(page, info, "api-keys");
  const used = await request.get(`${API_URL}/v1/items`, { headers: { "X-API-Key": key } });
  expect(used.status()).toBe(200);
  await page.getByRole("button", { name: "I have stored it" }).click();
  await page.reload();
  const row = page.getByRole("row", { name: /laptop/ });
  await expect(row).toBeVisible();
  await expect(row.getByRole("cell").nth(3)).not.toHaveText("never");
  await page.getByRole("button", { name: "Revoke “laptop”" }).click();
  await page.getByRole("button", { name: "Yes, revoke “laptop”" }).click();
  await expect(page.getByText("No keys yet.")).toBeVisible();
  const revoked = await request.get(`${API_URL}/v1/items`, { headers: { "X-API-Key": key } });
  expect(revoked.status()).toBe(401);

  // Webhooks: registered (secret shown once), an item's delivery seen, replayed, tested,
  // disabled and enabled again.
  const hook = await receiver();
  try {
    await page.getByRole("link", { name: "Webhooks" }).click();
    await page.getByLabel("Endpoint URL").fill(hook.url);
    await page.getByLabel("Endpoint description").fill("the test receiver");
    await page.getByRole("button", { name: "Register endpoint" }).click();
    await expect(page.getByTestId("new-secret")).toContainText("whsec_");
    await checkPage(page, info, "webhooks");
    await page.getByRole("button", { name: "I have stored it" }).click();

    await page.getByRole("link", { name: "Items" }).click();
    await page.getByLabel("Title").fill("Hooked item");
    await page.getByRole("button", { name: "Create item" }).click();
    await expect(page.getByRole("link", { name: "Hooked item" })).toBeVisible();

    await page.getByRole("link", { name: "Webhooks" }).click();
    await page.getByRole("link", { name: `Deliveries of ${hook.url}` }).click();
    const delivered = page.getByRole("row", { name: /item\.created.*Delivered/ });
    await expect(async () => {
      await page.getByRole("button", { name: "Refresh" }).click();
      await expect(delivered).toBeVisible({ timeout: 1000 });
    }).toPass({ timeout: 30_000 });
    expect(hook.received.some((b) => b.includes('"item.created"'))).toBe(true);
    await checkPage(page, info, "deliveries");
    await page.getByRole("button", { name: "Replay item.created delivery" }).click();
    await expect(page.getByRole("status").filter({ hasText: "Replay queued." })).toBeVisible();
    await expect.poll(() => hook.received.length, { timeout: 30_000 }).toBeGreaterThan(1);

    await page.getByRole("link", { name: "← Your endpoints" }).click();
    await page.getByRole("button", { name: `Send a test to ${hook.url}` }).click();
    await expect(page.getByRole("status").filter({ hasText: "Test message queued" })).toBeVisible();
    await expect
      .poll(() => hook.received.some((b) => b.includes('"webhook.test"')), { timeout: 30_000 })
      .toBe(true);
    await page.getByRole("button", { name: `Disable ${hook.url}` }).click();
    await expect(page.getByText("Disabled", { exact: true })).toBeVisible();
    await page.getByRole("button", { name: `Enable ${hook.url}` }).click();
    await expect(page.getByText("Enabled", { exact: true })).toBeVisible();
  } finally {
    hook.server.close();
  }

  // Account: change the email, then the password; sign out and in with both.
  const moved = newEmail("moved");
  await page.getByRole("link", { name: "Account" }).click();
  await page.getByLabel("New email").fill(moved);
  await page.getByLabel("Current password").fill(PASSWORD);
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Email changed." })).toBeVisible();
  await page.getByLabel("New password").fill("a brand new passphrase");
  await page.getByLabel("Current password").fill(PASSWORD);
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Password changed." })).toBeVisible();
  await checkPage(page, info, "account");
  // A password change ends the other sessions: this one signs in again.
  await page.getByRole("button", { name: "Sign out" }).click();
  await signIn(page, moved, "a brand new passphrase");
  await expect(page.getByRole("heading", { level: 1, name: "Items" })).toBeVisible();

  // Deleting the account.
  await page.getByRole("link", { name: "Account" }).click();
  await page.getByRole("button", { name: "Delete account" }).click();
  await passwordIfAsked(page, "a brand new passphrase");
  await page.getByRole("button", { name: "Yes, delete my account" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Sign in" })).toBeVisible();
  await signIn(page, moved, "a brand new passphrase");
  await expect(page.getByRole("alert")).toContainText("Unauthorized");
});

test("items page through more than one page", async ({ page, request }, info) => {
  await register(page, newEmail("pages"));
  const bearer = await token(page);
  for (let i = 1; i <= 23; i++) {
    const r = await request.post(`${API_URL}/v1/items`, {
      headers: { Authorization: `Bearer ${bearer}` },
      data: { title: `Item ${String(i).padStart(2, "0")}` },
    });
    expect(r.status()).toBe(201);
  }
  await page.reload();
  const links = page.getByRole("list").getByRole("link");
  await expect(links).toHaveCount(20);
  await expect(links.first()).toHaveText("Item 23");
  await page.getByRole("button", { name: "Next page" }).click();
  await expect(links).toHaveCount(3);
  await expect(links.last()).toHaveText("Item 01");
  await expect(page.getByRole("button", { name: "Next page" })).toBeDisabled();
  await checkPage(page, info, "items-page-2");
  await page.getByRole("button", { name: "Previous page" }).click();
  await expect(links).toHaveCount(20);
  await expect(links.first()).toHaveText("Item 23");
});

test("another user's item is not found", async ({ browser, request }, info) => {
  const owner = await (await browser.newContext()).newPage();
  await register(owner, newEmail("owner"));
  const made = await request.post(`${API_URL}/v1/items`, {
    headers: { Authorization: `Bearer ${await token(owner)}` },
    data: { title: "Private" },
  });
  const { id } = (await made.json()) as { id: string };
  const other = await (await browser.newContext()).newPage();
  await register(other, newEmail("other"));
  await other.goto(`/items/${id}`);
  const alert = other.getByRole("alert");
  await expect(alert).toContainText("Not Found");
  await expect(alert).toContainText("Request id:");
  await expect(other.getByText("Private")).toHaveCount(0);
  await checkPage(other, info, "item-not-found");
  await other.goto("/no-such-page");
  await expect(other.getByRole("heading", { name: "Page not found" })).toBeVisible();
  await checkPage(other, info, "page-not-found");
});

test("signing in with the keyboard alone", async ({ page, request }) => {
  const email = newEmail("keyboard");
  const made = await request.post(`${API_URL}/v1/auth/register`, {
    data: { email, password: PASSWORD },
  });
  expect(made.status()).toBe(201);
  await page.goto("/sign-in");
  const emailField = page.getByLabel("Email");
  for (
    let i = 0;
    i < 10 && !(await emailField.evaluate((e) => e === document.activeElement));
    i++
  ) {
    await page.keyboard.press("Tab");
  }
  await expect(emailField).toBeFocused();
  // The focus is visible: an outline drawn around the field.
  const outline = await emailField.evaluate((e) => getComputedStyle(e).outlineStyle);
  expect(outline).not.toBe("none");
  await page.keyboard.type(email);
  await page.keyboard.press("Tab");
  await expect(page.getByLabel("Password")).toBeFocused();
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await expect(page.getByRole("heading", { level: 1, name: "Items" })).toBeVisible();
  // And on through the navigation to a page and back out.
  await page.getByRole("link", { name: "API keys" }).focus();
  await page.keyboard.press("Enter");
  await expect(page.getByRole("heading", { level: 1, name: "API keys" })).toBeVisible();
  await page.getByRole("button", { name: "Sign out" }).focus();
  await page.keyboard.press("Enter");
  await expect(page.getByRole("heading", { level: 1, name: "Sign in" })).toBeVisible();
});

test("an ended session returns to sign-in and keeps what was typed", async ({ page, request }) => {
  const email = newEmail("expired");
  await register(page, email);
  await page.getByLabel("Title").fill("Typed before the session ended");
  // Meanwhile the API stops accepting this session's token: a password change (elsewhere)
  // ends every session signed in before it, as an expiry would.
  await page.waitForTimeout(1100);
  const changed = await request.patch(`${API_URL}/v1/users/me`, {
    headers: { Authorization: `Bearer ${await token(page)}` },
    data: { password: "changed elsewhere", current_password: PASSWORD },
  });
  expect(changed.status()).toBe(200);
  await page.getByRole("button", { name: "Create item" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Sign in" })).toBeVisible();
  await expect(page.getByRole("status")).toContainText("What you were typing is kept.");
  await signIn(page, email, "changed elsewhere");
  await expect(page.getByRole("heading", { level: 1, name: "Items" })).toBeVisible();
  await expect(page.getByLabel("Title")).toHaveValue("Typed before the session ended");
  await page.getByRole("button", { name: "Create item" }).click();
  await expect(page.getByRole("link", { name: "Typed before the session ended" })).toBeVisible();
});

test("a rate-limited sign-in says when to retry", async ({ page, request }) => {
  const email = newEmail("limited");
  await request.post(`${API_URL}/v1/auth/register`, { data: { email, password: PASSWORD } });
  await page.goto("/sign-in");
  await expect(async () => {
    await signIn(page, email, "not the password");
    await expect(page.getByRole("alert")).toContainText("Too many requests", { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await expect(page.getByRole("alert")).toContainText(/try again in \d+ s/);
});

test("an old sign-in asks for the password again", async ({ page }) => {
  const email = newEmail("reauth");
  await register(page, email);
  const seconds = Number(process.env.BASALT_E2E_REAUTH_SECONDS ?? 300);
  test.skip(seconds > 20, "the host's re-authentication window is too long to wait out here");
  await page.waitForTimeout((seconds + 1) * 1000);
  await page.getByRole("link", { name: "API keys" }).click();
  await expect(page.getByLabel("Your password")).toBeVisible();
  await page.getByLabel("Key name").fill("after a while");
  await page.getByLabel("Your password").fill("a wrong one");
  await page.getByRole("button", { name: "Create key" }).click();
  await expect(page.getByRole("alert")).toContainText("current_password is incorrect");
  await page.getByLabel("Your password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create key" }).click();
  await expect(page.getByTestId("new-key")).toBeVisible();
});
