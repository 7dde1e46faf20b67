import { useEffect, useRef } from "react";
import { Link, Navigate, NavLink, Outlet, Route, Routes, useLocation } from "react-router";
import { Account } from "./pages/Account";
import { ApiKeys } from "./pages/ApiKeys";
import { ItemPage, Items } from "./pages/Items";
import { Register, SignIn } from "./pages/SignIn";
import { WebhookDeliveries, Webhooks } from "./pages/Webhooks";
import { useSession } from "./session";

export function App() {
  return (
    <Routes>
      <Route element={<Layout />}>
        <Route path="/sign-in" element={<SignIn />} />
        <Route path="/register" element={<Register />} />
        <Route element={<RequireSession />}>
          <Route path="/items" element={<Items />} />
          <Route path="/items/:id" element={<ItemPage />} />
          <Route path="/api-keys" element={<ApiKeys />} />
          <Route path="/webhooks" element={<Webhooks />} />
          <Route path="/webhooks/:id" element={<WebhookDeliveries />} />
          <Route path="/account" element={<Account />} />
        </Route>
        <Route path="/" element={<Navigate to="/items" replace />} />
        <Route path="*" element={<NotFound />} />
      </Route>
    </Routes>
  );
}

/** Signed-in pages: without a session (or once the API ended it) the user goes to sign in,
 * and comes back here afterwards; drafts are kept meanwhile. */
function RequireSession() {
  const { session, signedOut } = useSession();
  const location = useLocation();
  if (session === null) {
    const from = signedOut ? undefined : { from: location.pathname + location.search };
    return <Navigate to="/sign-in" replace state={from} />;
  }
  return <Outlet />;
}

function Layout() {
  const { session, signOut } = useSession();
  const location = useLocation();
  const main = useRef<HTMLDivElement>(null);
  // A new page moves focus to its content, as a full page load would for screen readers.
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs on each navigation
  useEffect(() => {
    main.current?.querySelector("h1")?.focus();
  }, [location.pathname]);
  return (
    <>
      <a className="skip" href="#content">
        Skip to content
      </a>
      <header>
        <Link to="/" className="brand">
          Basalt
        </Link>
        {session ? (
          <nav aria-label="Main">
            <NavLink to="/items">Items</NavLink>
            <NavLink to="/api-keys">API keys</NavLink>
            <NavLink to="/webhooks">Webhooks</NavLink>
            <NavLink to="/account">Account</NavLink>
            <span className="meta">{session.email}</span>
            <button type="button" onClick={signOut}>
              Sign out
            </button>
          </nav>
        ) : null}
      </header>
      <div id="content" ref={main} className="content">
        <Outlet />
      </div>
    </>
  );
}

function NotFound() {
  return (
    <main>
      <h1>Page not found</h1>
      <p>
        <Link to="/">Go to your items</Link>
      </p>
    </main>
  );
}
