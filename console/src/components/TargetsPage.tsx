// Targets: where tasks go. Secrets can be written but are never shown.
import { useEffect, useState } from "preact/hooks";
import { type Target, api } from "../api";
import { useSession } from "../session";
import { ErrorAlert } from "./ErrorAlert";

const EXAMPLE = { kind: "rmf_http", url: "http://api-server:8000", token: "" };

export function TargetsPage() {
  const { canEdit } = useSession();
  const [targets, setTargets] = useState<Target[]>([]);
  const [name, setName] = useState("");
  const [config, setConfig] = useState(JSON.stringify(EXAMPLE, null, 2));
  const [editing, setEditing] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = () =>
    api
      .targets()
      .then(setTargets)
      .catch((e: Error) => setError(e.message));
  useEffect(() => {
    load();
  }, []);

  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const body = JSON.parse(config);
      if (editing) await api.replaceTarget(editing, body);
      else await api.createTarget(name, body);
      setEditing(null);
      setName("");
      await load();
    } catch (err) {
      setError((err as Error).message);
    }
  };

  return (
    <section aria-labelledby="targets-heading">
      <h2 id="targets-heading">Targets</h2>
      <ErrorAlert message={error} />
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Kind</th>
            <th>From</th>
            <th>Used by</th>
            <th>Connection (secrets hidden)</th>
            {canEdit && <th>Actions</th>}
          </tr>
        </thead>
        <tbody>
          {targets.map((target) => (
            <tr key={target.name}>
              <td>{target.name}</td>
              <td>{String(target.config.kind ?? "")}</td>
              <td>{target.source}</td>
              <td>{target.used_by} rules</td>
              <td>
                <code>{JSON.stringify(target.config)}</code>
              </td>
              {canEdit && (
                <td class="actions">
                  {target.source === "api" && (
                    <>
                      <button
                        onClick={() => {
                          setEditing(target.name);
                          setConfig(JSON.stringify(target.config, null, 2));
                        }}
                      >
                        Edit
                      </button>
                      <button
                        class="danger"
                        onClick={async () => {
                          if (!confirm(`Delete the target ${target.name}?`)) return;
                          try {
                            await api.deleteTarget(target.name);
                            await load();
                          } catch (e) {
                            setError((e as Error).message);
                          }
                        }}
                      >
                        Delete
                      </button>
                    </>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {canEdit && (
        <form class="panel" style="margin-top: 1rem" onSubmit={save} aria-label="Target">
          <h3>{editing ? `Edit ${editing}` : "New target"}</h3>
          <div class="bar">
            {!editing && (
              <label>
                Name
                <input required value={name} onInput={(e) => setName(e.currentTarget.value)} />
              </label>
            )}
            <label style="flex-basis: 100%">
              Connection as JSON (secrets are stored and never shown again)
              <textarea rows={6} value={config} onInput={(e) => setConfig(e.currentTarget.value)} />
            </label>
            <button type="submit" class="primary">
              {editing ? "Save" : "Add target"}
            </button>
          </div>
        </form>
      )}
    </section>
  );
}
