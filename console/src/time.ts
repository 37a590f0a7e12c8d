// Times as the operator reads them: in the chosen zone, with the offset when it matters.
import { DateTime } from "luxon";

export function browserZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

export function showTime(iso: string | null | undefined, zone: string): string {
  if (!iso) return "—";
  return DateTime.fromISO(iso, { setZone: false }).setZone(zone).toFormat("yyyy-LL-dd HH:mm:ss");
}

/** A value for <input type="datetime-local"> in `zone`. */
export function toLocalInput(iso: string, zone: string): string {
  return DateTime.fromISO(iso).setZone(zone).toFormat("yyyy-LL-dd'T'HH:mm");
}

/** An <input type="datetime-local"> value read in `zone`, as an instant with its offset. */
export function fromLocalInput(value: string, zone: string): string {
  return DateTime.fromISO(value, { zone }).toISO() ?? value;
}

/** The local occurrence's UTC offset, e.g. "+02:00" from "2026-03-29T09:00:00+02:00". */
export function offsetOf(local: string): string {
  const match = /([+-]\d\d:\d\d|Z)$/.exec(local);
  return match ? match[1] : "";
}

export function timeOfDay(local: string): string {
  return local.slice(11, 16);
}
