"""The ``(native)`` prompt shared by the notebook, terminal IPython, pytest and the helper's terminal: its commands (a ``cmd.Cmd``) and the reader the Interrupt can cancel."""
