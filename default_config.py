"""Every option of rmf-task-scheduler, with its default.

Copy this file, change what you need and point ``RMF_TASK_SCHEDULER_CONFIG`` at the copy;
options you leave out keep these defaults.  Unknown keys stop start-up.  Any option whose
value is a string, number or boolean can also be set from the environment as
``RMF_TASK_SCHEDULER_<OPTION>`` (for example ``RMF_TASK_SCHEDULER_LOG_LEVEL=DEBUG``).
"""

config = {
    # Address and port the HTTP API listens on.
    "host": "127.0.0.1",
    "port": 8010,
    # Database URL.  The default is a SQLite file in the working directory, so rules and
    # history survive a restart with nothing else to install.  Production examples:
    #   "postgres://user:password@db-host:5432/task_scheduler"  (pip install .[postgres])
    #   "mysql://user:password@db-host:3306/task_scheduler"     (pip install .[mysql])
    # SQLite runs in WAL mode with synchronous=NORMAL: a crash of the service loses no
    # committed change, a power cut may roll back the last moments; append
    # "?synchronous=FULL" to the URL to rule that out too, at about twice the cost per write.
    "db_url": "sqlite://task_scheduler.sqlite3",
    # Apply the shipped schema migrations when the service starts.  Set to False to run
    # them yourself with `task_scheduler migrate` before starting the service.
    "migrate_on_start": True,
    # IANA time zone for rules that do not name their own.
    "timezone": "UTC",
    # DEBUG, INFO, WARNING, ERROR or CRITICAL.
    "log_level": "INFO",
    # How far ahead (seconds) occurrences are stored as tasks.  Later occurrences are
    # computed on the fly in listings and stored when the horizon reaches them.
    "expansion_horizon_s": 86400,
    # At most this many occurrences are stored per rule per expansion pass, so creating a
    # rule costs the same whatever its length; the expander tops up the rest.
    "expansion_batch": 100,
    # Period (seconds) of the expander's top-up pass; creating or changing a rule expands it
    # at once. Keep expansion_batch x (shortest rule period) above this period.
    "expansion_poll_s": 60.0,
    # RMF task categories accepted besides clean, patrol, delivery and compose: map a
    # category name to a JSON schema for its description, or to None to accept any.
    "rmf_extra_categories": {},
}
