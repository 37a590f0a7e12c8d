// Who is signed in and how the console shows time: shared by every page.
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { ConsoleConfig, Me } from "./api";

export interface Session {
  config: ConsoleConfig;
  me: Me | null;
  /** Operators and admins change things; a viewer is offered nothing that would be refused. */
  canEdit: boolean;
  /** The zone times are shown in: the site's, or the browser's. */
  zone: string;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionContext");
  return session;
}

export function mayEdit(config: ConsoleConfig, me: Me | null): boolean {
  if (!config.auth_enabled) return true;
  return me !== null && (me.role === "operator" || me.role === "admin");
}
