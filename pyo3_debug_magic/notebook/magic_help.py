"""Help text (``%native_break?``) without the reStructuredText literal-block marker ``::``
that IPython's ``magic_arguments`` puts before every usage line."""
from __future__ import annotations

import textwrap

MARK = "::\n\n"


def tidy(*magics_classes) -> None:
    """Each magic's help starts with its usage line, dedented."""
    for cls in magics_classes:
        for names in cls.magics.values():
            for method_name in names.values():
                function = getattr(cls, method_name, None)
                doc = getattr(function, "__doc__", None) or ""
                if doc.startswith(MARK):
                    usage, _, rest = doc[len(MARK):].partition("\n\n")
                    function.__doc__ = textwrap.dedent(usage) + "\n\n" + rest
