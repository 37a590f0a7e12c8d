// The console's shell: sign-in when needed, the page bar, and the chosen page.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { type ConsoleConfig, type Me, api, token, unauthorized } from "./api";
import { CalendarPage } from "./components/CalendarPage";
import { RulesPage } from "./components/RulesPage";
import { RunsPage } from "./components/RunsPage";
import { SignInForm } from "./components/SignInForm";
import { TargetsPage } from "./components/TargetsPage";
import { SessionContext, mayEdit } from "./session";
import { browserZone } from "./time";

const PAGES = { calendar: CalendarPage, rules: RulesPage, runs: RunsPage, targets: TargetsPage } as const;
type Page = keyof typeof PAGES;

function pageFromHash(): Page {
  const name = location.hash.slice(1);
  return name in PAGES ? (name as Page) : "calendar";
}

function App() {
  const [config, setConfig] = useState<ConsoleConfig | null>(null);
  const [me, setMe] = useState<Me | null>(null);
  const [needsSignIn, setNeedsSignIn] = useState(false);
  const [page, setPage] = useState<Page>(pageFromHash());
  const [browserTime, setBrowserTime] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const whoAmI = () =>
    api
      .me()
      .then((who) => {
        setMe(who);
        setNeedsSignIn(false);
      })
      .catch(() => setNeedsSignIn(true));

  useEffect(() => {
    api
      .config()
      .then((c) => {
        setConfig(c);
        if (c.auth_enabled) whoAmI();
      })
      .catch((e: Error) => setError(e.message));
    const onHash = () => setPage(pageFromHash());
    const onUnauthorized = () => setNeedsSignIn(true);
    addEventListener("hashchange", onHash);
    unauthorized.add(onUnauthorized);
    return () => {
      removeEventListener("hashchange", onHash);
      unauthorized.delete(onUnauthorized);
    };
  }, []);

  if (error) return <p class="error">{error}</p>;
  if (!config) return <p class="note">Loading…</p>;
  const signedIn = !config.auth_enabled || (me !== null && !needsSignIn);
  const Shown = PAGES[page];
  const zone = browserTime ? browserZone() : config.timezone;

  return (
    <SessionContext.Provider value={{ config, me, canEdit: mayEdit(config, me), zone }}>
      <header class="top">
        <h1>Task scheduler</h1>
        {signedIn && (
          <nav aria-label="Pages">
            {(Object.keys(PAGES) as Page[]).map((name) => (
              <button key={name} aria-current={name === page ? "page" : undefined} onClick={() => (location.hash = name)}>
                {name[0].toUpperCase() + name.slice(1)}
              </button>
            ))}
          </nav>
        )}
        <div class="who">
          <label style="color: #fff; flex-direction: row; align-items: center; gap: 0.3rem">
            <input type="checkbox" checked={browserTime} onChange={(e) => setBrowserTime(e.currentTarget.checked)} />
            Browser time ({browserTime ? browserZone() : config.timezone})
          </label>
          {config.auth_enabled && me && (
            <>
              <span>
                {me.username} ({me.role})
              </span>
              <button
                onClick={() => {
                  token.set(null);
                  setMe(null);
                  setNeedsSignIn(true);
                }}
              >
                Sign out
              </button>
            </>
          )}
        </div>
      </header>
      <main>{signedIn ? <Shown key={zone} /> : <SignInForm onSignedIn={whoAmI} />}</main>
    </SessionContext.Provider>
  );
}

render(<App />, document.getElementById("app")!);
