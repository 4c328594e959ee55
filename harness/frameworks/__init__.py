"""The frameworks under test: adapters and the implementations registered for them.

:mod:`.adapters` moves tensors bit-exactly in and out of numpy, torch, tensorflow/keras and
jax, and says which devices exist; :mod:`.registry` holds the :class:`Impl` records;
:mod:`.builtins` registers the framework built-ins; :mod:`.catalogue` is the full registry,
built-ins loaded. No framework is imported until one of its cells runs.
"""
