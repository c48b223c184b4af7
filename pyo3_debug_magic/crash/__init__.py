"""Crashes: the report files (where they live, the previous kernel's), post-mortems of core files, a report as a test run shows it, the error trail across the boundary."""
