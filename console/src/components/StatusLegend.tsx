// The colours of the calendar, named.
export const STATUSES = ["scheduled", "dispatching", "dispatched", "failed", "missed", "skipped", "disabled"] as const;

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge status-${status}`}>{status}</span>;
}

export function StatusLegend() {
  return (
    <div class="legend" aria-label="Status colours">
      {STATUSES.map((status) => (
        <StatusBadge key={status} status={status} />
      ))}
    </div>
  );
}
