"""Running cells: the runner, worker processes and the reference hook.

:mod:`.runner` runs one group of cells on one batch of inputs and judges them;
:mod:`.parallel` spreads groups over spawned worker processes; :mod:`.schedule` picks
serial or parallel; :mod:`.references` builds the oracle-cache hook; :mod:`.progress`
draws the progress bar. Everything here returns results and prints nothing to stdout.
"""
