"""``%refcheck``'s engine (``RefChecker``, standard library only), what can be measured at the
boundary, the process-wide heap counters, the report and its verdict, ``%refcheck CALL`` text to
a call. (Not named ``refcheck``: that is the public function ``pyo3_debug_magic.refcheck``.)"""
