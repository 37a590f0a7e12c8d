// Run history: every attempt, newest first, filtered and paged.
import { useEffect, useState } from "preact/hooks";
import { type Run, api } from "../api";
import { useSession } from "../session";
import { showTime } from "../time";
import { Pager } from "./RulesPage";
import { ErrorAlert } from "./ErrorAlert";

const PAGE = 50;
const OUTCOMES = ["succeeded", "failed", "rejected", "timeout", "unknown"];

export function RunsPage() {
  const { zone } = useSession();
  const [runs, setRuns] = useState<Run[]>([]);
  const [total, setTotal] = useState(0);
  const [offset, setOffset] = useState(0);
  const [ruleId, setRuleId] = useState("");
  const [status, setStatus] = useState("");
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api
      .runs({ limit: PAGE, offset, rule_id: ruleId || undefined, status: status || undefined })
      .then((page) => {
        setRuns(page.items);
        setTotal(page.total);
        setError(null);
      })
      .catch((e: Error) => setError(e.message));
  }, [offset, ruleId, status]);

  return (
    <section aria-labelledby="runs-heading">
      <h2 id="runs-heading">Runs</h2>
      <div class="bar">
        <label>
          Rule id
          <input type="number" min={1} value={ruleId} onChange={(e) => { setOffset(0); setRuleId(e.currentTarget.value); }} />
        </label>
        <label>
          Outcome
          <select value={status} onChange={(e) => { setOffset(0); setStatus(e.currentTarget.value); }}>
            <option value="">all</option>
            {OUTCOMES.map((o) => (
              <option key={o}>{o}</option>
            ))}
          </select>
        </label>
      </div>
      <ErrorAlert message={error} />
      <table>
        <thead>
          <tr>
            <th>Started</th>
            <th>Rule</th>
            <th>Task</th>
            <th>Attempt</th>
            <th>Outcome</th>
            <th>Fleet task</th>
            <th>Duration</th>
            <th>Error</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((run) => (
            <tr key={run.id}>
              <td>{showTime(run.started_at, zone)}</td>
              <td>{run.rule_id ?? "—"}</td>
              <td>
                <code>{run.task_id}</code>
              </td>
              <td>{run.attempt}</td>
              <td>{run.outcome}</td>
              <td>{run.fleet_task_id ?? "—"}</td>
              <td>{Math.round(run.duration_ms)} ms</td>
              <td>{run.error ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager offset={offset} total={total} page={PAGE} onOffset={setOffset} />
    </section>
  );
}
