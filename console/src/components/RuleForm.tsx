// A rule's form: when (every recurrence kind), what (every task kind), and its next
// occurrences previewed as the form changes, in the rule's zone with clock changes called out.
import { useEffect, useState } from "preact/hooks";
import { type Occurrence, type Rule, type RuleSpec, api } from "../api";
import { useSession } from "../session";
import { offsetOf, timeOfDay } from "../time";
import { ErrorAlert } from "./ErrorAlert";

type Doc = Record<string, unknown>;

const SCHEDULE_KINDS = ["once", "interval", "daily", "weekly", "monthly", "monthly_weekday", "cron", "rrule"] as const;
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const CATEGORIES = ["clean", "patrol", "delivery", "compose"];

const SCHEDULE_DEFAULTS: Record<string, Doc> = {
  once: { at: "" },
  interval: { every: 2, unit: "hours" },
  daily: { every: 1, times: ["07:00"] },
  weekly: { every: 1, weekdays: ["mon", "wed", "fri"], times: ["07:00"] },
  monthly: { every: 1, days: [1], times: ["07:00"] },
  monthly_weekday: { every: 1, nth: 2, weekday: "tue", times: ["07:00"] },
  cron: { expression: "0 7 * * mon-fri" },
  rrule: { rrule: "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0" },
};

const TASK_DEFAULTS: Record<string, Doc> = {
  rmf: { kind: "rmf", target: "default", request: { category: "clean", description: { zone: "lobby" } } },
  http: { kind: "http", target: null, method: "POST", url: "http://localhost:8080/hook", body: null },
  sql: { kind: "sql", target: "reports", query: "purge_old", params: {} },
  file: { kind: "file", op: "copy", source: { target: "exports", path: "in.csv" }, destination: { target: "exports", path: "out.csv" } },
};

/** The occurrences where the offset or the wall-clock time differs from the one before. */
export function clockChanges(occurrences: Occurrence[]): Set<number> {
  const changed = new Set<number>();
  occurrences.forEach((o, i) => {
    const before = occurrences[i - 1];
    if (before && offsetOf(before.local) !== offsetOf(o.local)) changed.add(i);
  });
  return changed;
}

function listText(value: unknown): string {
  return Array.isArray(value) ? value.join(", ") : "";
}

function parseList(text: string, asNumber = false): (string | number)[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => (asNumber ? Number(s) : s));
}

export function RuleForm({ rule, onDone }: { rule: Rule | null; onDone: () => void }) {
  const { config } = useSession();
  const [name, setName] = useState(rule?.name ?? "");
  const [timezone, setTimezone] = useState(rule?.timezone ?? config.timezone);
  const [schedule, setSchedule] = useState<Doc>(
    (rule?.schedule as Doc) ?? { kind: "weekly", ...SCHEDULE_DEFAULTS.weekly },
  );
  const [task, setTask] = useState<Doc>((rule?.task as Doc) ?? TASK_DEFAULTS.rmf);
  const [taskText, setTaskText] = useState(JSON.stringify(rule?.task ?? TASK_DEFAULTS.rmf, null, 2));
  const [preview, setPreview] = useState<Occurrence[]>([]);
  const [previewError, setPreviewError] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const spec = (): RuleSpec =>
    ({
      name: name || "preview",
      timezone,
      schedule: Object.fromEntries(Object.entries(schedule).filter(([, v]) => v !== "" && v !== null)),
      task,
      ...(rule ? { policy: rule.policy, metadata: rule.metadata, description: rule.description, enabled: rule.enabled } : {}),
    }) as unknown as RuleSpec;

  useEffect(() => {
    const timer = window.setTimeout(() => {
      api
        .preview(spec(), 10)
        .then((list) => {
          setPreview(list);
          setPreviewError(null);
        })
        .catch((e: Error) => {
          setPreview([]);
          setPreviewError(e.message);
        });
    }, 250);
    return () => window.clearTimeout(timer);
  }, [name, timezone, schedule, task]);

  const field = (key: string, value: unknown) => setSchedule({ ...schedule, [key]: value });
  const kind = schedule.kind as string;
  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      if (rule) await api.replaceRule(rule.id, spec());
      else await api.createRule(spec());
      onDone();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  const changes = clockChanges(preview);

  return (
    <section aria-labelledby="rule-form-heading">
      <h2 id="rule-form-heading">{rule ? `Edit ${rule.name}` : "New rule"}</h2>
      <div class="columns">
        <form onSubmit={save} class="panel" aria-label="Rule">
          <fieldset>
            <legend>Rule</legend>
            <label>
              Name
              <input name="name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
            </label>
            <label>
              Time zone
              <input name="timezone" value={timezone} onInput={(e) => setTimezone(e.currentTarget.value)} />
            </label>
          </fieldset>
          <fieldset>
            <legend>When</legend>
            <label>
              Repeats
              <select
                name="schedule-kind"
                value={kind}
                onChange={(e) => {
                  const next = e.currentTarget.value;
                  setSchedule({ kind: next, start: schedule.start, ...SCHEDULE_DEFAULTS[next] });
                }}
              >
                {SCHEDULE_KINDS.map((k) => (
                  <option key={k}>{k}</option>
                ))}
              </select>
            </label>
            <ScheduleFields schedule={schedule} field={field} />
            <label>
              Start (wall clock)
              <input
                type="datetime-local"
                name="start"
                value={(schedule.start as string | undefined)?.slice(0, 16) ?? ""}
                onInput={(e) => field("start", e.currentTarget.value || null)}
              />
            </label>
            <label>
              End
              <input
                type="datetime-local"
                name="end"
                value={(schedule.end as string | undefined)?.slice(0, 16) ?? ""}
                onInput={(e) => field("end", e.currentTarget.value || null)}
              />
            </label>
            <label>
              Count
              <input
                type="number"
                min={1}
                name="count"
                value={(schedule.count as number | undefined) ?? ""}
                onInput={(e) => field("count", e.currentTarget.value ? Number(e.currentTarget.value) : null)}
              />
            </label>
            <label>
              Except dates (YYYY-MM-DD, …)
              <input
                name="except_dates"
                value={listText(schedule.except_dates)}
                onChange={(e) => field("except_dates", parseList(e.currentTarget.value))}
              />
            </label>
          </fieldset>
          <TaskFields
            task={task}
            text={taskText}
            onTask={(next) => {
              setTask(next);
              setTaskText(JSON.stringify(next, null, 2));
            }}
            onText={(text) => {
              setTaskText(text);
              try {
                setTask(JSON.parse(text));
              } catch {
                setPreviewError("the task is not valid JSON");
              }
            }}
          />
          <ErrorAlert message={error} />
          <div class="bar">
            <button type="submit" class="primary">
              {rule ? "Save" : "Create rule"}
            </button>
            <button type="button" onClick={onDone}>
              Cancel
            </button>
          </div>
        </form>
        <aside class="panel" aria-labelledby="preview-heading">
          <h3 id="preview-heading">Next occurrences ({timezone})</h3>
          {previewError ? (
            <p class="error">{previewError}</p>
          ) : (
            <ol class="preview" data-testid="preview">
              {preview.map((o, i) => (
                <li key={o.utc} class={changes.has(i) ? "dst" : undefined}>
                  {o.local.slice(0, 10)} {o.local.slice(11, 19)} ({offsetOf(o.local)})
                  {changes.has(i) &&
                    ` clock change: UTC${offsetOf(preview[i - 1].local)} to UTC${offsetOf(o.local)}` +
                      (timeOfDay(preview[i - 1].local) !== timeOfDay(o.local) ? ", wall-clock time shifts" : "")}
                </li>
              ))}
            </ol>
          )}
        </aside>
      </div>
    </section>
  );
}

function ScheduleFields({ schedule, field }: { schedule: Doc; field: (key: string, value: unknown) => void }) {
  const kind = schedule.kind as string;
  const every = (unitLabel: string) => (
    <label>
      Every ({unitLabel})
      <input
        type="number"
        min={1}
        name="every"
        value={schedule.every as number}
        onInput={(e) => field("every", Number(e.currentTarget.value))}
      />
    </label>
  );
  const times = (
    <label>
      Times (HH:MM, …)
      <input name="times" value={listText(schedule.times)} onChange={(e) => field("times", parseList(e.currentTarget.value))} />
    </label>
  );
  switch (kind) {
    case "once":
      return (
        <label>
          At (wall clock)
          <input type="datetime-local" name="at" value={(schedule.at as string).slice(0, 16)} onInput={(e) => field("at", e.currentTarget.value)} />
        </label>
      );
    case "interval":
      return (
        <>
          {every("units")}
          <label>
            Unit
            <select name="unit" value={schedule.unit as string} onChange={(e) => field("unit", e.currentTarget.value)}>
              {["seconds", "minutes", "hours"].map((u) => (
                <option key={u}>{u}</option>
              ))}
            </select>
          </label>
        </>
      );
    case "daily":
      return (
        <>
          {every("days")}
          {times}
        </>
      );
    case "weekly": {
      const chosen = (schedule.weekdays as string[]) ?? [];
      return (
        <>
          {every("weeks")}
          <div class="weekdays" role="group" aria-label="Weekdays">
            {WEEKDAYS.map((day) => (
              <label key={day}>
                <input
                  type="checkbox"
                  name={`weekday-${day}`}
                  checked={chosen.includes(day)}
                  onChange={(e) =>
                    field("weekdays", e.currentTarget.checked ? [...chosen, day] : chosen.filter((d) => d !== day))
                  }
                />
                {day}
              </label>
            ))}
          </div>
          {times}
        </>
      );
    }
    case "monthly":
      return (
        <>
          {every("months")}
          <label>
            Days (1–31, -1 = last, …)
            <input name="days" value={listText(schedule.days)} onChange={(e) => field("days", parseList(e.currentTarget.value, true))} />
          </label>
          {times}
        </>
      );
    case "monthly_weekday":
      return (
        <>
          {every("months")}
          <label>
            Which
            <select name="nth" value={String(schedule.nth)} onChange={(e) => field("nth", Number(e.currentTarget.value))}>
              {[
                [1, "1st"],
                [2, "2nd"],
                [3, "3rd"],
                [4, "4th"],
                [5, "5th"],
                [-1, "last"],
              ].map(([n, label]) => (
                <option key={n} value={n}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          <label>
            Weekday
            <select name="weekday" value={schedule.weekday as string} onChange={(e) => field("weekday", e.currentTarget.value)}>
              {WEEKDAYS.map((d) => (
                <option key={d}>{d}</option>
              ))}
            </select>
          </label>
          {times}
        </>
      );
    case "cron":
      return (
        <label>
          Cron expression
          <input name="expression" value={schedule.expression as string} onInput={(e) => field("expression", e.currentTarget.value)} />
        </label>
      );
    default:
      return (
        <label>
          RRULE (RFC 5545)
          <input name="rrule" size={40} value={schedule.rrule as string} onInput={(e) => field("rrule", e.currentTarget.value)} />
        </label>
      );
  }
}

interface TaskProps {
  task: Doc;
  text: string;
  onTask: (task: Doc) => void;
  onText: (text: string) => void;
}

function TaskFields({ task, text, onTask, onText }: TaskProps) {
  const kind = (task.kind as string) ?? "rmf";
  const request = (task.request as Doc) ?? {};
  return (
    <fieldset>
      <legend>What</legend>
      <label>
        Task kind
        <select name="task-kind" value={kind} onChange={(e) => onTask(TASK_DEFAULTS[e.currentTarget.value])}>
          {Object.keys(TASK_DEFAULTS).map((k) => (
            <option key={k}>{k}</option>
          ))}
        </select>
      </label>
      {kind === "rmf" && (
        <>
          <label>
            Target
            <input name="target" value={task.target as string} onInput={(e) => onTask({ ...task, target: e.currentTarget.value })} />
          </label>
          <label>
            Category
            <input
              name="category"
              list="rmf-categories"
              value={request.category as string}
              onInput={(e) => onTask({ ...task, request: { ...request, category: e.currentTarget.value } })}
            />
            <datalist id="rmf-categories">
              {CATEGORIES.map((c) => (
                <option key={c} value={c} />
              ))}
            </datalist>
          </label>
        </>
      )}
      {kind === "http" && (
        <>
          <label>
            Method
            <select name="method" value={task.method as string} onChange={(e) => onTask({ ...task, method: e.currentTarget.value })}>
              {["GET", "POST", "PUT", "PATCH", "DELETE"].map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </label>
          <label>
            URL
            <input name="url" size={36} value={(task.url as string) ?? ""} onInput={(e) => onTask({ ...task, url: e.currentTarget.value })} />
          </label>
        </>
      )}
      {kind === "sql" && (
        <>
          <label>
            Database target
            <input name="target" value={task.target as string} onInput={(e) => onTask({ ...task, target: e.currentTarget.value })} />
          </label>
          <label>
            Query (configured on the target)
            <input name="query" value={task.query as string} onInput={(e) => onTask({ ...task, query: e.currentTarget.value })} />
          </label>
        </>
      )}
      {kind === "file" && (
        <label>
          Operation
          <select name="op" value={task.op as string} onChange={(e) => onTask({ ...task, op: e.currentTarget.value })}>
            {["read", "write", "copy"].map((op) => (
              <option key={op}>{op}</option>
            ))}
          </select>
        </label>
      )}
      <label style="flex-basis: 100%">
        The task as JSON ({kind})
        <textarea name="task-json" rows={8} value={text} onChange={(e) => onText(e.currentTarget.value)} />
      </label>
    </fieldset>
  );
}
