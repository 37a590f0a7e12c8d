// Sign in with a built-in user, or paste a bearer token from the site's identity provider.
import { useState } from "preact/hooks";
import { api, token } from "../api";
import { ErrorAlert } from "./ErrorAlert";

export function SignInForm({ onSignedIn }: { onSignedIn: () => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [pasted, setPasted] = useState("");
  const [error, setError] = useState<string | null>(null);

  const signIn = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      token.set(pasted.trim() || (await api.login(username, password)).access_token);
      await api.me();
      onSignedIn();
    } catch (err) {
      token.set(null);
      setError((err as Error).message);
    }
  };

  return (
    <form class="signin panel" onSubmit={signIn} aria-labelledby="signin-heading">
      <h2 id="signin-heading">Sign in</h2>
      <label>
        User name
        <input name="username" autocomplete="username" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
      </label>
      <label>
        Password
        <input
          name="password"
          type="password"
          autocomplete="current-password"
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
      </label>
      <label>
        Or a bearer token
        <textarea name="token" rows={3} value={pasted} onInput={(e) => setPasted(e.currentTarget.value)} />
      </label>
      <ErrorAlert message={error} />
      <button type="submit" class="primary">
        Sign in
      </button>
    </form>
  );
}
