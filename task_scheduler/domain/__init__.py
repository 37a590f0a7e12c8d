"""Pure domain logic: schedules, recurrence, rule and task documents. No I/O, no clock."""
