// Rules: their state at a glance, the actions on each, and the form for a new or edited one.
import { useEffect, useState } from "preact/hooks";
import { type Rule, type RuleStatus, api } from "../api";
import { useSession } from "../session";
import { showTime } from "../time";
import { ImportForm } from "./ImportForm";
import { RuleForm } from "./RuleForm";
import { ErrorAlert } from "./ErrorAlert";

const PAGE = 50;

export function RulesPage() {
  const { canEdit, zone } = useSession();
  const [rules, setRules] = useState<Rule[]>([]);
  const [total, setTotal] = useState(0);
  const [offset, setOffset] = useState(0);
  const [name, setName] = useState("");
  const [statuses, setStatuses] = useState<Record<number, RuleStatus>>({});
  const [editing, setEditing] = useState<Rule | "new" | null>(null);
  const [importing, setImporting] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const load = async () => {
    try {
      const page = await api.rules({ limit: PAGE, offset, name });
      setRules(page.items);
      setTotal(page.total);
      const pairs = await Promise.all(page.items.map(async (r) => [r.id, await api.ruleStatus(r.id)] as const));
      setStatuses(Object.fromEntries(pairs));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => {
    load();
  }, [offset, name]);

  const act = (what: () => Promise<unknown>) => async () => {
    setError(null);
    try {
      await what();
      await load();
    } catch (e) {
      setError((e as Error).message);
    }
  };

  if (editing) {
    return (
      <RuleForm
        rule={editing === "new" ? null : editing}
        onDone={() => {
          setEditing(null);
          load();
        }}
      />
    );
  }
  return (
    <section aria-labelledby="rules-heading">
      <h2 id="rules-heading">Rules</h2>
      <div class="bar">
        <label>
          Name contains
          <input value={name} onInput={(e) => { setOffset(0); setName(e.currentTarget.value); }} />
        </label>
        {canEdit && (
          <button class="primary" onClick={() => setEditing("new")}>
            New rule
          </button>
        )}
        {canEdit && <button onClick={() => setImporting(!importing)}>Import .ics</button>}
      </div>
      {importing && <ImportForm onDone={load} />}
      <ErrorAlert message={error} />
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>When</th>
            <th>What</th>
            <th>State</th>
            <th>Next</th>
            <th>Last run</th>
            <th>Failures</th>
            {canEdit && <th>Actions</th>}
          </tr>
        </thead>
        <tbody>
          {rules.map((rule) => {
            const status = statuses[rule.id];
            const state = !rule.enabled ? "paused" : status?.paused ? "paused after failures" : "enabled";
            return (
              <tr key={rule.id} data-rule={rule.name}>
                <td>{rule.name}</td>
                <td>
                  {rule.schedule.kind} · {rule.timezone}
                </td>
                <td>
                  {rule.task.kind ?? "rmf"}
                  {(rule.task as { request?: { category?: string } }).request?.category
                    ? ` · ${(rule.task as { request: { category: string } }).request.category}`
                    : ""}
                </td>
                <td class="state">{state}</td>
                <td>{showTime(rule.next_at, zone)}</td>
                <td>
                  {status?.last_run_at ? `${showTime(status.last_run_at, zone)} ${status.last_outcome}` : "—"}
                </td>
                <td>{status?.consecutive_failures ?? 0}</td>
                {canEdit && (
                  <td class="actions">
                    {rule.enabled ? (
                      <button onClick={act(() => api.disableRule(rule.id))}>Pause</button>
                    ) : (
                      <button onClick={act(() => api.enableRule(rule.id))}>Resume</button>
                    )}
                    {status?.paused && <button onClick={act(() => api.resetAttempts(rule.id))}>Reset attempts</button>}
                    <button onClick={() => setEditing(rule)}>Edit</button>
                    <button
                      class="danger"
                      onClick={act(async () => {
                        if (confirm(`Delete the rule ${rule.name} and its occurrences not run yet?`)) {
                          await api.deleteRule(rule.id);
                        }
                      })}
                    >
                      Delete
                    </button>
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
      <Pager offset={offset} total={total} page={PAGE} onOffset={setOffset} />
    </section>
  );
}

export function Pager(props: { offset: number; total: number; page: number; onOffset: (o: number) => void }) {
  const { offset, total, page, onOffset } = props;
  return (
    <div class="pager">
      <button disabled={offset === 0} onClick={() => onOffset(Math.max(0, offset - page))}>
        Previous
      </button>
      <span>
        {total === 0 ? 0 : offset + 1}–{Math.min(offset + page, total)} of {total}
      </span>
      <button disabled={offset + page >= total} onClick={() => onOffset(offset + page)}>
        Next
      </button>
    </div>
  );
}
