// Rules from an .ics file: every event becomes a rule doing the same task.
import { useState } from "preact/hooks";
import { type Rule, call } from "../api";

const DEFAULT_TASK = { kind: "rmf", request: { category: "clean", description: { zone: "lobby" } } };

export function ImportForm({ onDone }: { onDone: () => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [task, setTask] = useState(JSON.stringify(DEFAULT_TASK, null, 2));
  const [message, setMessage] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    try {
      const created = await call<Rule[]>("POST", "/rules/import", { calendar: await file.text(), task: JSON.parse(task) });
      setMessage(`Created ${created.length} rules.`);
      onDone();
    } catch (err) {
      setMessage((err as Error).message);
    }
  };

  return (
    <form class="panel bar" onSubmit={submit} aria-label="Import an .ics file">
      <label>
        .ics file
        <input type="file" accept=".ics,text/calendar" onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)} />
      </label>
      <label style="flex-grow: 1">
        Task for every event (JSON)
        <textarea rows={3} value={task} onInput={(e) => setTask(e.currentTarget.value)} />
      </label>
      <button type="submit" disabled={!file}>
        Import
      </button>
      {message && <p role="status">{message}</p>}
    </form>
  );
}
