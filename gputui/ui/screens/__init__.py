"""Full screens the app shows one at a time: the overview, a host, the triage, connections, the audit log, the welcome."""
