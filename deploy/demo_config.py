"""The compose demo's configuration: the default target is the fake fleet."""

config = {
    "targets": {"default": {"kind": "rmf_http", "base_url": "http://fleet:8011"}},
    # The fake fleet's host name is not a loopback or private address the default
    # allowlist admits on its own; name it.
    "outbound_allowlist": ["fleet"],
}
