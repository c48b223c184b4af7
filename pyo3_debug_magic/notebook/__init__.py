"""What IPython and Jupyter show: the magics (argument parsing and display only), the pause console thread, the kernel hooks, the widgets."""
