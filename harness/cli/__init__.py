"""The ``fpharness`` command line: :mod:`.app` (parser and the error boundary),
:mod:`.base` (exit codes and the command registry), :mod:`.options` and :mod:`.session`
(shared by the commands that run cells), one module per command under :mod:`.commands`."""
