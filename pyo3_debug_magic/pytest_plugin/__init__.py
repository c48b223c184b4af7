"""The native debugger in a pytest run: the plugin's options, hooks and fixtures, one agent per test process."""
