// The calendar of occurrences as GET /tasks computes them, live from /events.
import { Calendar, type EventInput, type EventSourceFuncArg } from "@fullcalendar/core";
import dayGridPlugin from "@fullcalendar/daygrid";
import interactionPlugin from "@fullcalendar/interaction";
import listPlugin from "@fullcalendar/list";
import luxonPlugin from "@fullcalendar/luxon3";
import timeGridPlugin from "@fullcalendar/timegrid";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { type Rule, type Task, type TaskFilters, api, eventsUrl, listAllRules, listTasks } from "../api";
import { useSession } from "../session";
import { CalendarFeedLink } from "./CalendarFeedLink";
import { OccurrenceDialog } from "./OccurrenceDialog";
import { STATUSES, StatusLegend } from "./StatusLegend";
import { ErrorAlert } from "./ErrorAlert";

/** What the calendar colours by: a scheduled occurrence switched off shows as disabled. */
export function shownStatus(task: Task): string {
  return task.status === "scheduled" && !task.enabled ? "disabled" : task.status;
}

const TERMINAL_EVENTS: Record<string, string> = {
  "task.dispatched": "dispatched",
  "task.failed": "failed",
  "task.missed": "missed",
  "task.skipped": "skipped",
};

interface Filters extends TaskFilters {
  target?: string;
}

function toEvent(task: Task, rules: Map<number, Rule>, canEdit: boolean): EventInput {
  const rule = task.rule_id ? rules.get(task.rule_id) : undefined;
  const status = shownStatus(task);
  const what = task.category ?? task.kind;
  return {
    id: task.id,
    title: `${rule?.name ?? "ad hoc"} · ${what} · ${status}`,
    start: task.scheduled_at,
    allDay: false,
    classNames: [`status-${status}`],
    editable: canEdit && task.status === "scheduled",
    extendedProps: { task },
  };
}

export function CalendarPage() {
  const { canEdit, zone } = useSession();
  const host = useRef<HTMLDivElement>(null);
  const calendar = useRef<Calendar | null>(null);
  const [rules, setRules] = useState<Map<number, Rule>>(new Map());
  const [filters, setFilters] = useState<Filters>({});
  const [open, setOpen] = useState<Task | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState(false);
  const state = useRef({ filters });
  state.current = { filters };

  // The window's occurrences are drawn once the rules (their names) are in, in one load.
  const rulesLoaded = useRef<Promise<Map<number, Rule>> | null>(null);
  if (rulesLoaded.current === null) {
    rulesLoaded.current = listAllRules()
      .then((list) => new Map(list.map((rule) => [rule.id, rule])))
      .catch((e: Error) => {
        setError(e.message);
        return new Map<number, Rule>();
      });
    rulesLoaded.current.then(setRules);
  }

  useEffect(() => {
    if (!host.current) return;
    const cal = new Calendar(host.current, {
      plugins: [dayGridPlugin, timeGridPlugin, listPlugin, interactionPlugin, luxonPlugin],
      timeZone: zone,
      initialView: "timeGridWeek",
      headerToolbar: { left: "prev,next today", center: "title", right: "dayGridMonth,timeGridWeek,timeGridDay,listWeek" },
      buttonText: { listWeek: "agenda" },
      height: "auto",
      nowIndicator: true,
      slotDuration: "01:00:00",
      eventTimeFormat: { hour: "2-digit", minute: "2-digit", hour12: false },
      slotLabelFormat: { hour: "2-digit", minute: "2-digit", hour12: false },
      firstDay: 1,
      eventDurationEditable: false,
      defaultTimedEventDuration: "00:30:00",
      events: (info: EventSourceFuncArg, success, failure) => {
        const { target, ...query } = state.current.filters;
        Promise.all([listTasks(info.startStr, info.endStr, query), rulesLoaded.current!])
          .then(([tasks, known]) => {
            const shown = target
              ? tasks.filter((t) => t.rule_id && (known.get(t.rule_id)?.task as { target?: string })?.target === target)
              : tasks;
            setError(null);
            success(shown.map((task) => toEvent(task, known, canEdit)));
          })
          .catch((e: Error) => {
            setError(e.message);
            failure(e);
          });
      },
      // FullCalendar's arrow icons are role="img" without a name; their buttons carry the name.
      datesSet: () => hideIcons(host.current),
      eventClick: (info) => setOpen(info.event.extendedProps.task as Task),
      eventDrop: (info) => {
        const task = info.event.extendedProps.task as Task;
        api
          .patchTask(task.id, { scheduled_at: info.event.startStr })
          .then(() => cal.refetchEvents())
          .catch((e: Error) => {
            info.revert();
            setError(`Could not move it: ${e.message}`);
          });
      },
    });
    cal.render();
    calendar.current = cal;
    return () => {
      cal.destroy();
      calendar.current = null;
    };
  }, [zone, canEdit]);

  const firstFilters = useRef(true);
  useEffect(() => {
    if (firstFilters.current) firstFilters.current = false;
    else calendar.current?.refetchEvents();
  }, [filters]);

  useEffect(() => listenToEvents(() => calendar.current, setLive), []);

  const categories = useMemo(
    () => [...new Set([...rules.values()].map((r) => (r.task as { request?: { category?: string } }).request?.category).filter(Boolean))] as string[],
    [rules],
  );
  const targets = useMemo(
    () => [...new Set([...rules.values()].map((r) => (r.task as { target?: string }).target).filter(Boolean))] as string[],
    [rules],
  );
  const set = (key: keyof Filters) => (e: Event) => {
    const value = (e.target as HTMLSelectElement).value;
    setFilters({ ...filters, [key]: key === "rule_id" ? (value ? Number(value) : undefined) : value || undefined });
  };

  return (
    <section aria-labelledby="calendar-heading">
      <h2 id="calendar-heading">Calendar</h2>
      <div class="bar">
        <label>
          Rule
          <select value={filters.rule_id ?? ""} onChange={set("rule_id")}>
            <option value="">all</option>
            {[...rules.values()].map((rule) => (
              <option key={rule.id} value={rule.id}>
                {rule.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Category
          <select value={filters.category ?? ""} onChange={set("category")}>
            <option value="">all</option>
            {categories.map((c) => (
              <option key={c}>{c}</option>
            ))}
          </select>
        </label>
        <label>
          Kind
          <select value={filters.kind ?? ""} onChange={set("kind")}>
            <option value="">all</option>
            {["rmf", "http", "sql", "file"].map((k) => (
              <option key={k}>{k}</option>
            ))}
          </select>
        </label>
        <label>
          Target
          <select value={filters.target ?? ""} onChange={set("target")}>
            <option value="">all</option>
            {targets.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select value={filters.status ?? ""} onChange={set("status")}>
            <option value="">all</option>
            {STATUSES.filter((s) => s !== "disabled").map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <StatusLegend />
        <CalendarFeedLink />
        <span class="note" data-live={live ? "on" : "off"}>
          {live ? "live" : "not live: reconnecting"}
        </span>
      </div>
      <ErrorAlert message={error} />
      <div class="panel" ref={host} />
      {open && (
        <OccurrenceDialog
          task={open}
          rule={open.rule_id ? rules.get(open.rule_id) : undefined}
          onClose={() => setOpen(null)}
          onChanged={() => calendar.current?.refetchEvents()}
        />
      )}
    </section>
  );
}

function hideIcons(root: HTMLElement | null): void {
  root?.querySelectorAll(".fc-icon").forEach((icon) => icon.setAttribute("aria-hidden", "true"));
}

/** Keep the calendar live: a task's own event recolours it, anything else refetches the window. */
function listenToEvents(calendar: () => Calendar | null, setLive: (live: boolean) => void): () => void {
  let socket: WebSocket | null = null;
  let closed = false;
  let refetch: number | undefined;
  const connect = () => {
    socket = new WebSocket(eventsUrl());
    socket.onopen = () => setLive(true);
    socket.onclose = () => {
      setLive(false);
      if (!closed) window.setTimeout(connect, 2000);
    };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data) as { type: string; task_id: string | null };
      const cal = calendar();
      if (!cal) return;
      const status = TERMINAL_EVENTS[event.type];
      const shown = event.task_id ? cal.getEventById(event.task_id) : null;
      if (status && shown) {
        const task = { ...(shown.extendedProps.task as Task), status } as Task;
        shown.setExtendedProp("task", task);
        shown.setProp("classNames", [`status-${status}`]);
        shown.setProp("title", shown.title.replace(/ · [a-z]+$/, ` · ${status}`));
        shown.setProp("editable", false);
      } else if (event.type.startsWith("task.") || event.type.startsWith("rule.")) {
        window.clearTimeout(refetch);
        refetch = window.setTimeout(() => cal.refetchEvents(), 300);
      }
    };
  };
  connect();
  return () => {
    closed = true;
    socket?.close();
  };
}
