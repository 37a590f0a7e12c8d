// One occurrence: what it sends, what happened, and what an operator may do with it.
import { useEffect, useRef, useState } from "preact/hooks";
import { type Rule, type Run, type Task, api } from "../api";
import { useSession } from "../session";
import { fromLocalInput, showTime, toLocalInput } from "../time";
import { shownStatus } from "./CalendarPage";
import { StatusBadge } from "./StatusLegend";
import { ErrorAlert } from "./ErrorAlert";

interface Props {
  task: Task;
  rule?: Rule;
  onClose: () => void;
  onChanged: () => void;
}

export function OccurrenceDialog({ task: first, rule, onClose, onChanged }: Props) {
  const { canEdit, zone } = useSession();
  const dialog = useRef<HTMLDialogElement>(null);
  const [task, setTask] = useState(first);
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [moveTo, setMoveTo] = useState(toLocalInput(first.scheduled_at, zone));
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    dialog.current?.showModal();
    api
      .taskRuns(first.id)
      .then(setRuns)
      .catch(() => setRuns([]));
  }, [first.id]);

  const act = (what: () => Promise<Task | void>) => async () => {
    setError(null);
    try {
      const changed = await what();
      if (changed) setTask(changed);
      onChanged();
      if (!changed) onClose();
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const pending = task.status === "scheduled";

  return (
    <dialog ref={dialog} onClose={onClose} aria-labelledby="occurrence-heading">
      <h2 id="occurrence-heading">
        {rule?.name ?? "Ad hoc task"} <StatusBadge status={shownStatus(task)} />
      </h2>
      <dl class="facts">
        <dt>Time</dt>
        <dd>
          {showTime(task.scheduled_at, zone)} ({zone})
        </dd>
        {task.scheduled_at !== task.original_at && (
          <>
            <dt>Moved from</dt>
            <dd>{showTime(task.original_at, zone)}</dd>
          </>
        )}
        <dt>Kind</dt>
        <dd>
          {task.kind}
          {task.category ? ` · ${task.category}` : ""}
        </dd>
        {task.status_reason && (
          <>
            <dt>Why</dt>
            <dd>{task.status_reason}</dd>
          </>
        )}
        <dt>Task id</dt>
        <dd>
          <code>{task.id}</code>
        </dd>
      </dl>
      <h3>Request</h3>
      <pre>{JSON.stringify(task.request, null, 2)}</pre>
      <h3>Runs</h3>
      {runs === null ? (
        <p class="note">Loading…</p>
      ) : runs.length === 0 ? (
        <p class="note">Not run yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Started</th>
              <th>Outcome</th>
              <th>Fleet task</th>
              <th>Duration</th>
              <th>Answer or error</th>
            </tr>
          </thead>
          <tbody>
            {runs.map((run) => (
              <tr key={run.id}>
                <td>{showTime(run.started_at, zone)}</td>
                <td>{run.outcome}</td>
                <td>{run.fleet_task_id ?? "—"}</td>
                <td>{Math.round(run.duration_ms)} ms</td>
                <td>
                  <code>{run.error ?? JSON.stringify(run.response)?.slice(0, 200)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorAlert message={error} />
      <div class="bar" style="margin-top: 1rem">
        {canEdit && pending && (
          <>
            <button class="primary" onClick={act(() => api.dispatchTask(task.id))}>
              Run now
            </button>
            <button onClick={act(() => api.patchTask(task.id, { enabled: !task.enabled }))}>
              {task.enabled ? "Disable" : "Enable"}
            </button>
            <button
              class="danger"
              onClick={act(async () => {
                if (!confirm("Skip this occurrence for good?")) return task;
                await api.skipTask(task.id);
              })}
            >
              Skip
            </button>
            <label>
              Move to ({zone})
              <input type="datetime-local" value={moveTo} onInput={(e) => setMoveTo(e.currentTarget.value)} />
            </label>
            <button onClick={act(() => api.patchTask(task.id, { scheduled_at: fromLocalInput(moveTo, zone) }))}>
              Move
            </button>
          </>
        )}
        <button onClick={() => dialog.current?.close()}>Close</button>
      </div>
    </dialog>
  );
}
