// The address a calendar app subscribes to; with sign-in on, it carries a feed-only token.
import { useState } from "preact/hooks";
import { api } from "../api";
import { useSession } from "../session";

export function CalendarFeedLink() {
  const { config } = useSession();
  const [url, setUrl] = useState<string | null>(config.auth_enabled ? null : `${location.origin}/calendar.ics`);
  const [error, setError] = useState<string | null>(null);
  if (url) {
    return (
      <label>
        Calendar feed (subscribe in a calendar app)
        <input readOnly size={40} value={url} onFocus={(e) => e.currentTarget.select()} />
      </label>
    );
  }
  return (
    <span>
      <button
        onClick={() =>
          api
            .feedToken()
            .then((answer) => setUrl(`${location.origin}${answer.url}`))
            .catch((e: Error) => setError(e.message))
        }
      >
        Calendar feed address
      </button>
      {error && <span class="error"> {error}</span>}
    </span>
  );
}
