"""Judging: what a verdict is and how it is computed.

Lowest layer of the harness, beside :mod:`harness.frameworks`. :mod:`.definitions` defines
the incidence categories and the ULP error; :mod:`.error_vs_input` the error-versus-input
profile; :mod:`.tally` the fused, blocked judge; :mod:`.summary` the mergeable
:class:`~harness.judgement.summary.Summary` a cell reports. Nothing here runs an
implementation or knows about cells.
"""
