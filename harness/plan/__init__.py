"""The cell plan: what to run, validated once.

:mod:`.cells` (cells, budgets, judged results as records), :mod:`.inputs` (input specs and
the arrays they make), :mod:`.implementations` (a built-in id or a user's function),
:mod:`.loader` (importing users' files) and :mod:`.suite` (suite TOML files into cells).
"""
