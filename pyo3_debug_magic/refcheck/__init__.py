"""``%refcheck``: the leak engine (standard library only), what can be measured at the boundary, the process-wide heap counters, the report and its verdict, pytest's stall watchdog."""
