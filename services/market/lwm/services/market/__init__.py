"""`lwm serve`: every market service in one process, or one of them (a single machine, tests, the demo)."""
