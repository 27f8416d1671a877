"""The `flowdock` command line: run the system (`up`, `migrate`) and, later, use it (SDK-backed commands)."""
