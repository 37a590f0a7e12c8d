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
    # IANA time zone for rules that do not name their own, and the zone in which the RMF
    # dashboard's /scheduled_tasks read their times and except dates (set it to the
    # dashboard users' zone, as the api-server's `timezone`).
    "timezone": "UTC",
    # DEBUG, INFO, WARNING, ERROR or CRITICAL.
    "log_level": "INFO",
    # "text" (one line a record) or "json" (one JSON object a line, for log collectors).
    # Both carry the request's id (X-Request-ID) on every line written for a request.
    "log_format": "text",
    # Browser origins allowed to call the API from another site, e.g. the RMF dashboard:
    #   ["https://dashboard.example.org"], or ["*"] for any. Empty: no CORS headers.
    "cors_origins": [],
    # Largest request body (bytes) the API reads; a larger one is answered 413.
    "max_body_bytes": 1048576,
    # API requests served at once; the rest wait their turn, in order (health checks and
    # metrics never wait). The dispatcher has its own thread and event loop, so API load
    # does not hold it up; a few at a time keep each request's latency short.
    "api_concurrency": 4,
    # CPU seconds one API request may use. Listings, previews, the calendar feed and
    # imports compute occurrences; one that asks for more (a rule firing every second
    # over years, one that fires once in decades) is answered 422 when this runs out,
    # instead of holding the CPU. A page of 1000 tasks takes about 0.1 s; the calendar
    # feed about 10 ms per rule, so raise this for a feed of more than ~400 rules.
    "request_cpu_s": 5.0,
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
    # Named connections a rule's task is sent through (task.target).  Targets made over the
    # API (/targets) come on top; these are read-only there.  Kinds:
    #   rmf_http: an RMF api-server; POST {base_url}/tasks/dispatch_task (or robot_task).
    #   rmf_ws:   an RMF websocket bridge at url, {request_id, json_msg} each way,
    #             reconnecting with backoff up to reconnect_max_s (30).
    #             Both RMF kinds authenticate with a ready bearer "token", or "jwt_secret"
    #             to mint HS256 tokens with the claims the RMF api-server checks
    #             (aud=jwt_audience, iss=jwt_issuer, preferred_username=username).
    #             timeout_s (10) bounds each request; an rmf_http target has at most
    #             max_connections (8) requests in flight, the rest wait their turn.
    #   http:     a web service for http tasks: base_url, headers, secret_headers and a
    #             bearer token (secret), timeout_s (10), max_connections (8),
    #             verify_tls (True).
    #   directory: a directory for file tasks: an absolute path (checked at each run),
    #             writable (False: read only), max_file_bytes (10 MiB) read or written.
    #             File tasks never leave it: no "..", no absolute path, no symbolic
    #             link followed below path, writes atomic (temporary file + rename).
    #   database: for sql tasks: url (postgres://user@host/db, mysql://user@host/db or
    #             sqlite:///abs/path), password (secret), queries ({name: {"sql": "...
    #             :param ...", "mode": "read"|"write", "max_rows": 100}}: the only SQL
    #             rules can run), timeout_s (60), max_connections (4). Example:
    #             "reports": {"kind": "database", "url": "postgres://reporter@127.0.0.1/reports",
    #                         "password": "...", "queries": {"purge_old": {"mode": "write",
    #                         "sql": "DELETE FROM audit_log WHERE age_days > :days"}}}
    "targets": {
        "default": {
            "kind": "rmf_http",
            "base_url": "http://127.0.0.1:8000",
            "token": None,
            "jwt_secret": None,
            "jwt_audience": "rmf_api_server",
            "jwt_issuer": "rmf_task_scheduler",
            "username": "task_scheduler",
            "timeout_s": 10.0,
            "max_connections": 8,
        },
    },
    # This replica's name in runs and /readyz; default: host name and process id.
    "replica_id": None,
    # The `requester` written into every task request.
    "requester": "task_scheduler",
    # At most this many dispatches in flight at once.  A replica holds at most six times a
    # target's max_connections of its tasks, so keep this above six times that of any
    # fleet that may be slow, and a slow fleet cannot hold up the rest.
    "dispatch_concurrency": 96,
    # At most this many due tasks claimed per database round trip.
    "dispatch_batch": 200,
    # A claim's lease (seconds): if this replica dies, another takes its tasks over after
    # at most this long. Renewed every third of it while a send is in flight.
    "lease_s": 10.0,
    # Longest sleep (seconds) of the dispatcher; it otherwise sleeps until the next due task
    # and wakes at once when rules or tasks change.
    "dispatch_poll_s": 30.0,
    # Tasks are claimed up to this long (seconds) before their time and sent at it, so that
    # the claim's database round trips, which wait behind API requests, do not make them
    # late. From then a task is being dispatched: edits to it are refused (409), and it goes
    # as it was claimed, with its time and target; a rule disabled, paused or deleted
    # before its time stops it.
    # At most a quarter of lease_s; 0 claims only what is due.
    "dispatch_claim_ahead_s": 0.25,
    # On shutdown, in-flight dispatches get this long (seconds) to finish; the rest are
    # handed back, due at once, for the next start or another replica.
    "shutdown_grace_s": 10.0,
    # False makes an API-only replica: it serves the API and stores occurrences but
    # dispatches nothing, so API traffic cannot delay dispatching. Keep at least one
    # replica with it on; on PostgreSQL that one hears of changes at once (LISTEN/NOTIFY).
    "run_dispatcher": True,
    # Days of run history kept; older runs are removed in the background, a small batch at
    # a time, hourly. None keeps every run (DELETE /runs removes by hand).
    "runs_retention_days": None,
    # Days finished tasks (dispatched, failed, missed, skipped, cancelled) are kept once no
    # run of them is left. None keeps them.
    "tasks_retention_days": None,
    # The only hosts the service calls (targets, http tasks, URLs): host names
    # ("fleet.example.com"), their subdomains ("*.example.com"), addresses or networks
    # ("10.0.0.0/8", "::1"), or "*" for any. A name not listed is called only at the
    # addresses it resolves to that are in a listed network. Hosts are read as resolvers
    # read them (127.1 and fullwidth digits are 127.0.0.1). Default: this machine only.
    "outbound_allowlist": ["localhost", "127.0.0.0/8", "::1"],
    # Require a bearer token on every route except /healthz, /readyz, /metrics, /docs,
    # /openapi.json and /auth/login.  Off, anyone who can reach the API acts as an admin:
    # for local development and demos only.  Roles: viewer reads; operator also creates,
    # edits, enables, disables and runs rules and tasks; admin also manages targets and
    # users and purges run history.  See docs/authentication.md.
    "auth_enabled": False,
    # HS256 secret that signs the tokens POST /auth/login hands out: at least 32
    # characters, required when auth_enabled is True (there is no built-in default).
    # Best set from the environment: RMF_TASK_SCHEDULER_AUTH_JWT_SECRET.
    "auth_jwt_secret": None,
    # How long (seconds) a token from /auth/login stays valid.
    "auth_token_ttl_s": 3600,
    # How long (seconds, 1 hour to 10 years) a calendar feed token from POST /auth/feed-token
    # stays valid.  It opens only GET /calendar.ics; changing auth_jwt_secret revokes them all.
    "auth_feed_token_ttl_s": 365 * 86400,
    # The first admin: created at start-up (or, if the name exists, made an enabled admin
    # with this password) only while no enabled admin exists.  Set both or neither; the
    # password needs 10 characters or more (RMF_TASK_SCHEDULER_AUTH_ADMIN_PASSWORD keeps it
    # out of the file).  `task_scheduler create-admin --username NAME` does the same by hand.
    "auth_admin_username": None,
    "auth_admin_password": None,
    # An external identity provider (the RMF dashboard's Keycloak, say): its RS256 public
    # key in PEM ("-----BEGIN PUBLIC KEY-----..."), and the aud and iss its tokens must
    # carry (the issuer is required with a key).  The user is the token's
    # preferred_username, as for the RMF api-server.  None accepts only built-in tokens.
    "auth_external_public_key": None,
    "auth_external_audience": "rmf_api_server",
    "auth_external_issuer": None,
    # An external user's role: the highest role auth_external_role_map gives to a value of
    # this claim (a dotted path to a string or a list: "roles", or Keycloak's
    # "realm_access.roles"), else auth_external_default_role (None refuses such users with
    # 403).  Built-in users of the same name never change an external user's role.
    "auth_external_role_claim": None,
    "auth_external_role_map": {"viewer": "viewer", "operator": "operator", "admin": "admin"},
    "auth_external_default_role": "viewer",
    # Login throttling: after this many failed logins for one username within
    # auth_login_window_s (seconds), or auth_login_max_failures_per_address from one client
    # address, POST /auth/login answers 429 with Retry-After, without checking the password.
    # A success clears the username's count. Counted per replica, in memory.
    "auth_login_max_failures": 5,
    "auth_login_max_failures_per_address": 20,
    "auth_login_window_s": 300.0,
    # Password hashes computed at once (each takes 64 MiB and a core for a moment), in
    # threads beside the API; a login that finds none free within auth_login_wait_s
    # (seconds) gets 503 with Retry-After.
    "auth_login_concurrency": 2,
    "auth_login_wait_s": 5.0,
    # Encrypts the secrets (tokens, passwords, secret headers) of targets made over the API
    # in the database: a Fernet key, or several separated by commas, the first encrypting
    # and all decrypting (to rotate: put the new key first, then run
    # `task_scheduler rotate-secrets`, then drop the old one). Make one with
    #   python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'
    # Best set from the environment: RMF_TASK_SCHEDULER_SECRETS_KEY. None stores secrets in
    # plain text (a warning at start-up).
    "secrets_key": None,
}
